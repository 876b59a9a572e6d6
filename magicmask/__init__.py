"""magicmask: foreground masks from video keyframes, identical to ImageMagick's ``convert``.

The blog post "Creating image masks from video file" as a library and a command line tool:
extract keyframes with ffmpeg, build a background, and write for every frame ``NAME-mask.tiff``
and ``NAME-clean.jpg`` exactly as the post's ``convert`` commands do.
"""

__version__ = "0.1.0"

from magicmask.errors import MagicmaskError  # noqa: E402

__all__ = ["MagicmaskError", "__version__"]
