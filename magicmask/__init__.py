"""magicmask: foreground masks from video keyframes, identical to ImageMagick's ``convert``.

The blog post "Creating image masks from video file" as a library and a command line tool:
extract keyframes with ffmpeg, build a background, and write for every frame ``NAME-mask.tiff``
and ``NAME-clean.jpg`` exactly as the post's ``convert`` commands do.

>>> import magicmask                                                  # doctest: +SKIP
>>> result = magicmask.run("dance.mp4", "dance")                      # the blog's recipe, one folder
>>> magicmask.verify(result.folder)                                   # re-run the commands, compare exactly

Importing magicmask changes nothing in the process (no environment variable, no allocator setting):
the command line makes those choices for itself.
"""

__version__ = "0.2.0.dev0"

from magicmask.errors import MagicmaskError  # noqa: E402

POLICY_FOLDER = __path__[0] + "/policy"
"""A folder holding magicmask's ImageMagick policy (larger resource limits than Debian's): the command line
points ``MAGICK_CONFIGURE_PATH`` at it; library users of the wand engine may do the same before importing Wand."""

__all__ = [
    "MagicmaskError",
    "MaskParams",
    "Options",
    "RunResult",
    "__version__",
    "backgrounds",
    "check",
    "display",
    "masks",
    "run",
    "run_many",
    "verify",
]

_LAZY = {
    "Options": ("magicmask.options", "Options"),
    "MaskParams": ("magicmask.params", "MaskParams"),
    "RunResult": ("magicmask.job", "RunResult"),
    "run": ("magicmask.job", "run"),
    "run_many": ("magicmask.job", "run_many"),
    "masks": ("magicmask.masks", "mask_frames"),
    "backgrounds": ("magicmask.statistics", "make_backgrounds"),
    "display": ("magicmask.background", "keyframe_display"),
    "check": ("magicmask.check", "check"),
    "verify": ("magicmask.provenance.verify", "verify"),
}


def __getattr__(name: str):
    """The public functions, imported on first use (``import magicmask`` stays light for the command line)."""
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'magicmask' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
