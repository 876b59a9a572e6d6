"""magicmask: foreground masks from video keyframes, identical to ImageMagick's ``convert``.

The blog post "Creating image masks from video file" as a library and a command line tool:
extract keyframes with ffmpeg, build a background, and write for every frame ``NAME-mask.tiff``
and ``NAME-clean.jpg`` exactly as the post's ``convert`` commands do.
"""

__version__ = "0.1.0"

import os as _os

# ImageMagick reads its policy when MagickWand starts: point it at magicmask's own resource limits
# (magicmask/policy/policy.xml) unless the user chose a configuration path.
_os.environ.setdefault("MAGICK_CONFIGURE_PATH", _os.path.join(_os.path.dirname(__file__), "policy"))
# Wand looks for MagickWand under a dozen names, asking ldconfig and gcc for each (about 0.25 s per
# process, workers included); Debian's ImageMagick 6 Q16 is tried first, the others still after it.
_os.environ.setdefault("WAND_MAGICK_LIBRARY_SUFFIX", "-6.Q16")

from magicmask.errors import MagicmaskError  # noqa: E402

__all__ = ["MagicmaskError", "__version__"]
