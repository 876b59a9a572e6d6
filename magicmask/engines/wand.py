"""The reference engine: every image step run by ImageMagick itself, through Wand (MagickWand).

Each function maps onto ``convert`` options; see FIDELITY notes in the docstrings for the details
that keep the results identical to the command line.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from magicmask.errors import MagicmaskError
from magicmask.files import check_tiff
from magicmask.params import MaskParams

try:
    from wand.color import Color
    from wand.exceptions import WandError, WandException, WandRuntimeError
    from wand.image import Image
except ImportError as _exc:  # libMagickWand missing
    _IMPORT_ERROR = _exc
    Image = None
else:
    _IMPORT_ERROR = None


THREADS = False
"""Frames are rendered in worker processes, each with one ImageMagick thread."""


def available() -> bool:
    """Whether ImageMagick's MagickWand library could be loaded."""
    return _IMPORT_ERROR is None


def _need_wand():
    if _IMPORT_ERROR is not None:
        raise MagicmaskError(
            f"ImageMagick's MagickWand library is not available ({_IMPORT_ERROR})",
            hint="install it: apt-get install libmagickwand-dev imagemagick",
        )


def read_tiff(path: str | os.PathLike, role: str = "frame") -> "Image":
    """Read one TIFF image with the decoder fixed to TIFF, never chosen by content.

    Raises
    ------
    MagicmaskError
        When the file is not a TIFF or ImageMagick cannot decode it (truncated, corrupt).
    """
    _need_wand()
    path = check_tiff(path, role)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MagicmaskError(f"cannot read {role}: {exc.strerror}", path, "check the file") from None
    try:
        # from memory, with the coder fixed: no file name reaches ImageMagick, so none of its
        # name syntax ([0], globs, %d, "coder:") can apply, and no other decoder can be chosen
        image = Image(blob=data, format="tiff")
    except (WandException, WandRuntimeError) as exc:
        reason = str(exc).split(" @ ")[0].strip() or type(exc).__name__
        raise MagicmaskError(f"cannot decode {role} as TIFF: {reason}", path, "the file is damaged; re-extract it") from exc
    if len(image.sequence) > 1:
        # convert reads every page; a frame is one picture: keep the first, as the blog's frames have.
        first = image.sequence[0].clone()
        image.close()
        image = first
    return image


def check_same_size(background: "Image", frame: "Image", frame_path, background_path=None) -> None:
    """Refuse a frame whose size differs from the background's (``convert`` would silently crop)."""
    if background.size != frame.size:
        bw, bh = background.size
        fw, fh = frame.size
        where = f" of {background_path}" if background_path else ""
        raise MagicmaskError(
            f"frame is {fw}x{fh} but the background{where} is {bw}x{bh}",
            frame_path,
            "use frames and a background from the same video",
        )


def mask_image(background: "Image", frame: "Image", params: MaskParams = MaskParams()) -> "Image":
    """The mask of ``frame`` against ``background``, as a new image.

    Reproduces::

        convert BG FRAME -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3

    The background is the destination of the composite, so the mask has its size and attributes
    (depth, compression). The thresholds act on pixel intensity (Wand's ``threshold`` without a
    channel), as ``-threshold`` does.
    """
    mask = background.clone()
    try:
        mask.composite(frame, left=0, top=0, operator="difference")
        for step, value in params.steps:
            if step == "threshold_map":
                threshold_by_map(mask, value)
            elif step == "threshold":
                mask.threshold(value)
            else:
                radius, sigma = value
                mask.blur(radius=radius, sigma=sigma)
    except WandError as exc:
        mask.close()
        raise MagicmaskError(f"ImageMagick failed on the mask: {exc}") from exc
    except MagicmaskError:
        mask.close()
        raise
    return mask


def threshold_by_map(image: "Image", map_path: str | os.PathLike) -> None:
    """A per-pixel ``-threshold``: white where the intensity of ``image`` exceeds the map's value, in place.

    Reproduces::

        -colorspace gray MAP -compose minus_src -composite -threshold 0

    ``-colorspace gray`` stores ``ClampToQuantum(0.212656*R + 0.715158*G + 0.072186*B)``; ``minus_src``
    with the image as destination and the map as source leaves ``max(gray - map, 0)``, and
    ``-threshold 0`` makes every pixel above 0 white.

    Raises
    ------
    MagicmaskError
        When the map is not a gray TIFF of the image's size.
    """
    with read_tiff(map_path, "threshold map") as limit:
        if limit.colorspace != "gray":
            raise MagicmaskError("the threshold map is not a gray image", map_path, "a threshold map has one channel; make it with --threshold adaptive")
        if limit.size != image.size:
            (mw, mh), (w, h) = limit.size, image.size
            raise MagicmaskError(f"the threshold map is {mw}x{mh} but the frames are {w}x{h}", map_path, "use the map made with this video's background")
        image.transform_colorspace("gray")
        image.composite(limit, left=0, top=0, operator="minus_src")
    image.threshold(0.0)


def as_read_back(mask: "Image") -> "Image":
    """The mask as ``convert`` reads it back from ``NAME-mask.tiff``: quantised to the file's depth.

    The blog's second command reads the mask file, so its multiply uses the mask at the file's
    depth. For 8-bit masks a raw gray round trip at depth 8 gives exactly those values; 16-bit masks
    are already exact in memory.
    """
    if mask.depth > 8:
        return mask.clone()
    width, height = mask.size
    mask.depth = 8
    raw = mask.make_blob("gray")
    return Image(blob=raw, format="gray", width=width, height=height, depth=8)


def clean_image(frame: "Image", mask: "Image") -> "Image":
    """``frame`` multiplied by its (read-back) ``mask``, as a new image.

    Reproduces::

        convert FRAME NAME-mask.tiff -compose multiply -flatten NAME-clean.jpg

    Flatten composes every image onto a white canvas of the first image's size; for an opaque frame
    white x frame = frame exactly, so the result is one multiply composite of the mask onto the frame.
    Frames with transparency go through ImageMagick's flatten itself.
    """
    if frame.alpha_channel:
        return _flatten_images([frame, mask], "multiply", "white")
    clean = frame.clone()
    clean.composite(mask, left=0, top=0, operator="multiply")
    return clean


def _flatten_images(images, compose: str, colour: str) -> "Image":
    canvas = _canvas_like(images[0], colour)
    for image in images:
        canvas.composite(image, left=0, top=0, operator=compose)
    return canvas


def _canvas_like(first: "Image", colour: str) -> "Image":
    """``-flatten``'s canvas: a clone of the first image filled with the background colour."""
    canvas = first.clone()
    width, height = first.size
    with Image(width=width, height=height, background=Color(colour)) as solid:
        canvas.composite(solid, left=0, top=0, operator="src")
    return canvas


class Fold:
    """A running ``-background COLOUR -compose OP -flatten`` over frames, one frame in memory at a time.

    Lighten and darken are per-channel max/min: exact and associative, so folding frame by frame,
    or folding parts and combining them, gives the same result as flattening the whole stack.
    """

    def __init__(self, compose: str, colour: str):
        _need_wand()
        self.compose = compose
        self.colour = colour
        self.canvas: Image | None = None
        self.first_path: Path | None = None
        self.count = 0

    def add(self, image: "Image", path=None) -> None:
        if self.canvas is None:
            self.canvas = _canvas_like(image, self.colour)
            self.first_path = path
        elif image.size != self.canvas.size:
            (cw, ch), (fw, fh) = self.canvas.size, image.size
            raise MagicmaskError(
                f"frame is {fw}x{fh} but {self.first_path} is {cw}x{ch}",
                path,
                "flatten frames of one video only",
            )
        self.canvas.composite(image, left=0, top=0, operator=self.compose)
        self.count += 1

    def add_file(self, path) -> None:
        with read_tiff(path) as image:
            self.add(image, path)

    def combine(self, other: "Fold") -> None:
        """Fold another partial result into this one (lighten/darken are associative)."""
        if other.canvas is not None:
            self.add(other.canvas, other.first_path)
            self.count += other.count - 1

    def encode(self, format: str = "tiff") -> bytes:
        """The flattened image as TIFF or JPEG bytes."""
        if self.canvas is None:
            raise MagicmaskError("no frames to flatten", hint="pass TIFF frames, e.g. t*.tiff")
        return encode(self.canvas, format)

    def close(self) -> None:
        if self.canvas is not None:
            self.canvas.close()


def save_tiff(image: "Image", path: str | os.PathLike) -> None:
    """Write ``image`` as TIFF to ``path`` (the same bytes ``convert`` writes)."""
    image.save(filename="tiff:" + os.fspath(path))


def save_jpeg(image: "Image", path: str | os.PathLike) -> None:
    """Write ``image`` as JPEG to ``path`` as ``convert`` does, with Huffman optimisation fixed on.

    ImageMagick optimises the Huffman tables only when its memory resource can be acquired at that
    moment; setting ``jpeg:optimize-coding`` makes the bytes independent of what else is in memory.
    """
    image.options["jpeg:optimize-coding"] = "true"
    image.save(filename="jpeg:" + os.fspath(path))


def encode(image: "Image", format: str) -> bytes:
    """``image`` as the bytes ``save_tiff``/``save_jpeg`` write (through a file: a TIFF blob may differ by one
    alignment byte from the file ``convert`` writes)."""
    save = save_jpeg if format in ("jpeg", "jpg") else save_tiff
    with tempfile.TemporaryDirectory(prefix="magicmask-") as folder:
        path = Path(folder) / f"out.{format}"
        save(image, path)
        return path.read_bytes()


IMAGES_HELD = 6  # at most this many frame-sized images live at once in one process (frame, background, mask, clean, copies)


def check_limits(width: int, height: int, path=None) -> None:
    """Refuse, before any work, frames too large for ImageMagick's resource limits in force.

    ImageMagick keeps each image in its pixel cache (8 bytes a pixel in Q16), in memory, then
    memory-mapped, then on disk, up to the policy's limits. magicmask points ImageMagick at its own
    policy (magicmask/policy/policy.xml); a configuration chosen through MAGICK_CONFIGURE_PATH or a
    changed system policy can lower them.
    """
    from wand.resource import limits

    need = IMAGES_HELD * width * height * 8
    room = limits["memory"] + limits["map"] + limits["disk"]
    if need > room:
        raise MagicmaskError(
            f"{width}x{height} frames need about {need >> 20} MiB of ImageMagick's pixel cache, but its policy allows {room >> 20} MiB",
            path,
            "raise the memory/map/disk limits in a policy.xml found through MAGICK_CONFIGURE_PATH",
        )
    if width > limits["width"] or height > limits["height"] or width * height > limits["area"]:
        raise MagicmaskError(
            f"{width}x{height} frames exceed ImageMagick's width/height/area limits",
            path,
            "raise them in a policy.xml found through MAGICK_CONFIGURE_PATH",
        )


def load_background(path: str | os.PathLike) -> "Image":
    """The background image, read once for every frame (close it when done)."""
    image = read_tiff(path, "background")
    try:
        check_limits(*image.size, path)
    except MagicmaskError:
        image.close()
        raise
    return image


def render_frame(background: "Image", frame: str | os.PathLike, params: MaskParams = MaskParams(), background_path=None) -> tuple[bytes, bytes]:
    """``(NAME-mask.tiff bytes, NAME-clean.jpg bytes)`` for one frame: both of the blog's loop commands.

    The mask is quantised in memory as the second command reads it back from the mask file
    (:func:`as_read_back`), so the frame is read once and the mask file is never read.
    """
    with read_tiff(frame) as image:
        check_same_size(background, image, frame, background_path)
        with mask_image(background, image, params) as mask:
            mask_bytes = encode(mask, "tiff")
            with as_read_back(mask) as read_back, clean_image(image, read_back) as clean:
                clean_bytes = encode(clean, "jpeg")
    return mask_bytes, clean_bytes


def warm_up() -> None:
    """Nothing to load ahead: ImageMagick starts with the process."""


def version() -> str:
    _need_wand()
    from wand.version import MAGICK_VERSION

    return MAGICK_VERSION
