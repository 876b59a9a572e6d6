"""The native engine: the blog's ``convert`` arithmetic in NumPy and Numba, identical to ImageMagick.

Same interface as :mod:`magicmask.engines.wand` (``load_background``, ``render_frame``, ``Fold``,
``version``), same outputs: mask TIFFs with the pixels, depth, channels and compression ``convert``
writes, and clean/keyframe JPEGs byte-identical to ``convert``'s. Reproduces::

    convert BG FRAME -compose difference -composite -threshold 5% -blur 0x3 -threshold 20% -blur 0x3 NAME-mask.tiff
    convert FRAME NAME-mask.tiff -compose multiply -flatten NAME-clean.jpg
    convert *.tiff -background black -compose lighten -flatten background.tiff
    convert *.tiff -background white -compose darken -flatten keyframes.jpg

The arithmetic is ImageMagick 6.9.11 Q16 (no HDRI), read from its source and checked against the
real ``convert`` (see FIDELITY.md, "The arithmetic, for an engine of our own"):

- difference of opaque images: ``|S - D|`` per channel, on Quantum values (8-bit samples * 257).
- ``-threshold T``: ``0.212656*R + 0.715158*G + 0.072186*B`` (double) ``<= T`` -> 0, else 65535, where
  ``T% = T * (65536/100)``.
- ``-blur RxS``: the kernel list ``blur:RxS;blur:RxS+90`` (GetOptimalKernelWidth1D, KernelRank 3,
  normalised), a horizontal then a vertical pass, each rounded to Quantum (ClampToQuantum), edges
  repeating the border pixel.
- the mask file: gray, at the background's depth; 8-bit samples are ScaleQuantumToChar, and the
  second command multiplies with those samples read back (``257 * m``).
- multiply-flatten: ``ClampToQuantum(65535*((QS*m)*(QS*f)))``; JPEG samples ScaleQuantumToChar.
- lighten/darken: per-channel max/min.

Codecs: TIFF is read with tifffile (imagecodecs decoders) and written by this module in the layout
libtiff gives ImageMagick's writer (same bytes for uncompressed and PackBits files); JPEG is written
by Pillow (libjpeg-turbo) with ImageMagick's settings (quality 92, 4:4:4, optimised Huffman tables,
the frame's density and comment).

Frames this engine reads: gray or RGB TIFFs of 8 or 16 bits per sample, without alpha. Others (alpha,
palette, CMYK, 1-bit, float) raise :class:`~magicmask.errors.MagicmaskError` naming the file.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import re
import struct
import threading
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from magicmask.errors import MagicmaskError
from magicmask.files import check_tiff
from magicmask.params import MaskParams

QUANTUM_RANGE = 65535
MAGICK_EPSILON = 1.0e-12
MAGICK_SQ2PI = 2.50662827463100024161235523934010416269302368164062
KERNEL_RANK = 3
TIFF_STRIP_SIZE_DEFAULT = 1048576  # ImageMagick's TIFFStripSizeDefault (bytes per strip)
JPEG_QUALITY = 92
BYTE_ORDER = "<"  # convert writes little-endian TIFFs here, whatever the order of the file it read

# TIFF compression codes this engine writes: none, PackBits (both byte for byte as convert), LZW and
# Deflate (same pixels, the horizontal predictor as ImageMagick sets it; encoder bytes may differ).
NONE, LZW, ADOBE_DEFLATE, PACKBITS, DEFLATE = 1, 5, 8, 32773, 32946
WRITABLE_COMPRESSIONS = (NONE, PACKBITS, LZW, ADOBE_DEFLATE, DEFLATE)
_COMPRESSION_NAMES = {NONE: "none", LZW: "LZW", ADOBE_DEFLATE: "Deflate", PACKBITS: "PackBits", DEFLATE: "Deflate", 7: "JPEG", 6: "old JPEG", 34712: "JPEG 2000", 50000: "ZSTD", 50001: "WebP", 34925: "LZMA"}

# The sRGB chromaticities ImageMagick gives every image read from a TIFF, as libtiff writes them.
_PRIMARY_CHROMATICITIES = (5368709, 8388608, 11072963, 33554432, 5033165, 16777216, 5033165, 8388608, 5033165, 33554432, 16106127, 268435456)
_WHITE_POINT = (10492471, 33554432, 689963, 2097152)

_ENGINE_HINT = "the native engine reads 8- or 16-bit gray or RGB TIFFs without alpha; use the wand engine for this file"


class UnsupportedImage(MagicmaskError):
    """A readable TIFF this engine does not handle (alpha, palette, CMYK, other than 8 or 16 bits)."""


# --------------------------------------------------------------------------------------------------
# lazy imports: numba, tifffile and Pillow load only when an image is processed


THREADS = True
"""Frames may be rendered in threads of one process: the kernels release the GIL (``nogil``), and so
do Pillow's and tifffile's codecs; one process pays Numba's start-up once."""


def kernels():
    """The engine's Numba kernels (:mod:`magicmask.engines._native_kernels`), compiled or loaded from the cache
    on first use; other modules' exact arithmetic on arrays (medians, threshold maps) uses them too."""
    from magicmask.engines import _native_kernels

    return _native_kernels


_kernels = kernels


class _QuietReads(logging.Filter):
    """Drop tifffile's log warnings about the file being read in this thread: the error says it once."""

    local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "reading", False)


_QUIET = _QuietReads()


def _tifffile():
    import tifffile

    log = logging.getLogger("tifffile")
    if _QUIET not in log.filters:
        log.addFilter(_QUIET)
    return tifffile


# --------------------------------------------------------------------------------------------------
# pictures: decoded TIFF samples plus the attributes convert carries into its outputs


@dataclass(frozen=True, eq=False)
class Picture:
    """One decoded TIFF image and the attributes ImageMagick keeps from it.

    Attributes
    ----------
    samples : ndarray
        ``(rows, columns, channels)``, ``uint8`` or ``uint16``; one channel (gray) or three (RGB).
    compression : int
        TIFF compression code, inherited by the files written from this image.
    x_resolution, y_resolution : float
        As ImageMagick holds them (float precision, 0 when the file has none).
    resolution_unit : int
        TIFF ResolutionUnit: 1 none, 2 inch, 3 centimetre.
    description, page_name : bytes or None
        ImageDescription and PageName, which ImageMagick writes back (and the description as a
        JPEG comment).
    path : str or None
        The file read, for error messages.
    """

    samples: np.ndarray
    compression: int = NONE
    x_resolution: float = 0.0
    y_resolution: float = 0.0
    resolution_unit: int = 2
    description: bytes | None = None
    page_name: bytes | None = None
    path: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, as Wand reports it."""
        return self.samples.shape[1], self.samples.shape[0]

    @property
    def depth(self) -> int:
        return 16 if self.samples.dtype == np.uint16 else 8

    @property
    def scale(self) -> int:
        """The factor to Quantum: 257 for 8-bit samples (ScaleCharToQuantum), 1 for 16-bit."""
        return 257 if self.samples.dtype == np.uint8 else 1


def _tag(page, name):
    tag = page.tags.get(name)
    return None if tag is None else tag.value


def _ascii(value) -> bytes | None:
    if value is None:
        return None
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
    data = data.split(b"\0", 1)[0]
    return data or None


def _resolution(value) -> float:
    """A TIFF RATIONAL as ImageMagick holds it: libtiff's float."""
    if value is None:
        return 0.0
    if isinstance(value, tuple):
        numerator, denominator = value[0], value[1]
        value = numerator / denominator if denominator else 0.0
    return float(np.float32(value))


def read_picture(path: str | os.PathLike, role: str = "frame") -> Picture:
    """Read the first image of a TIFF file, refusing anything that is not a TIFF by its first bytes.

    Raises
    ------
    MagicmaskError
        When the file is not a TIFF, cannot be decoded (truncated, corrupt), or holds an image this
        engine does not handle (alpha, palette, CMYK, other than 8 or 16 bits).
    """
    path = check_tiff(path, role)
    tifffile = _tifffile()
    _QUIET.local.reading = True
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise MagicmaskError(f"cannot decode {role} as TIFF: the file is truncated or holds no image", path, "the file is damaged; re-extract it")
            page = tif.pages.first
            photometric = int(page.photometric)
            samples_per_pixel = int(page.samplesperpixel)
            bits = int(page.bitspersample)
            if page.extrasamples:
                raise UnsupportedImage(f"{role} has an alpha or extra channel", path, _ENGINE_HINT)
            if not ((photometric == 1 and samples_per_pixel == 1) or (photometric == 2 and samples_per_pixel == 3)):
                kind = {0: "min-is-white gray", 3: "palette", 5: "CMYK", 6: "YCbCr", 8: "CIELab"}.get(photometric, f"photometric {photometric}")
                raise UnsupportedImage(f"{role} is a {kind} TIFF with {samples_per_pixel} samples per pixel", path, _ENGINE_HINT)
            if bits not in (8, 16) or int(page.sampleformat) != 1:
                raise UnsupportedImage(f"{role} has {bits}-bit samples (format {int(page.sampleformat)})", path, _ENGINE_HINT)
            size = os.path.getsize(path)
            for offset, count in zip(page.dataoffsets, page.databytecounts):
                if count and offset + count > size:
                    raise MagicmaskError(f"cannot decode {role} as TIFF: the image data is truncated", path, "the file is damaged; re-extract it")
            samples = _strip_samples(path, page, tif.byteorder)
            if samples is None and bits == 8 and int(page.planarconfig) == 1:
                samples = _pillow_samples(path, page)
            if samples is None:
                samples = page.asarray()
            if samples_per_pixel == 3 and int(page.planarconfig) == 2:
                samples = np.moveaxis(samples, 0, -1)
            samples = samples.reshape(page.imagelength, page.imagewidth, samples_per_pixel)
            samples = np.ascontiguousarray(samples, dtype=np.uint8 if bits == 8 else np.uint16)
            x_resolution = _tag(page, "XResolution")
            y_resolution = _tag(page, "YResolution")
            has_resolution = x_resolution is not None and y_resolution is not None
            unit = _tag(page, "ResolutionUnit")
            return Picture(
                samples=samples,
                compression=int(page.compression),
                x_resolution=_resolution(x_resolution) if has_resolution else 0.0,
                y_resolution=_resolution(y_resolution) if has_resolution else 0.0,
                resolution_unit=int(unit) if unit is not None else 2,
                description=_ascii(_tag(page, "ImageDescription")),
                page_name=_ascii(_tag(page, "PageName")),
                path=os.fspath(path),
            )
    except MagicmaskError:
        raise
    except Exception as exc:  # tifffile, imagecodecs and numpy errors on damaged files
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise MagicmaskError(f"cannot decode {role} as TIFF: {reason}", path, "the file is damaged; re-extract it") from exc
    finally:
        _QUIET.local.reading = False


def _strip_samples(path: Path, page, byteorder: str) -> np.ndarray | None:
    """The samples of an uncompressed or PackBits TIFF (what ffmpeg writes), decoded from the file's
    bytes by one kernel that releases the GIL; None for other layouts, or when a strip does not decode
    to exactly its size (the other readers then decode it, or say what is wrong)."""
    if int(page.compression) not in (NONE, PACKBITS) or int(page.planarconfig) != 1 or int(page.fillorder) != 1:
        return None
    rows, columns, channels = page.imagelength, page.imagewidth, page.samplesperpixel
    sample_bytes = page.bitspersample // 8
    row_bytes = columns * channels * sample_bytes
    per_strip = min(int(page.rowsperstrip) or rows, rows)
    strips = len(page.dataoffsets)
    if rows == 0 or columns == 0 or strips != -(-rows // per_strip):
        return None
    sizes = np.full(strips, per_strip * row_bytes, dtype=np.int64)
    sizes[-1] = (rows - per_strip * (strips - 1)) * row_bytes
    data = np.fromfile(path, dtype=np.uint8)
    out = np.empty(rows * row_bytes, dtype=np.uint8)
    offsets = np.asarray(page.dataoffsets, dtype=np.int64)
    counts = np.asarray(page.databytecounts, dtype=np.int64)
    if not _kernels().unpack_strips(data, offsets, counts, sizes, int(page.compression) == PACKBITS, out):
        return None
    if sample_bytes == 1:
        return out.reshape(rows, columns, channels)
    samples = out.view(byteorder + "u2").reshape(rows, columns, channels)
    return samples if samples.dtype.isnative else samples.astype(np.uint16)


def _pillow_samples(path: Path, page) -> np.ndarray | None:
    """8-bit samples decoded by Pillow, whose codecs release the GIL (tifffile decodes strip by strip
    under it), so frames decode in parallel threads; None when Pillow cannot read the file as expected."""
    from PIL import Image

    try:
        with Image.open(path, formats=["TIFF"]) as image:
            if image.mode not in ("L", "RGB") or image.size != (page.imagewidth, page.imagelength):
                return None
            image.load()
            return np.asarray(image)
    except Exception:  # the tifffile path reports damaged files
        return None


def check_same_size(background: Picture, frame: Picture, frame_path, background_path=None) -> None:
    """Refuse a frame whose size differs from the background's (``convert`` would silently crop)."""
    if background.size != frame.size:
        bw, bh = background.size
        fw, fh = frame.size
        where = f" of {background_path}" if background_path else ""
        raise MagicmaskError(f"frame is {fw}x{fh} but the background{where} is {bw}x{bh}", frame_path, "use frames and a background from the same video")


# --------------------------------------------------------------------------------------------------
# the blur kernel and the threshold value, as ImageMagick computes them


def _perceptible_reciprocal(x: float) -> float:
    sign = -1.0 if x < 0.0 else 1.0
    if sign * x >= MAGICK_EPSILON:
        return 1.0 / x
    return sign / MAGICK_EPSILON


def optimal_kernel_width(radius: float, sigma: float) -> int:
    """ImageMagick's GetOptimalKernelWidth1D: grow the width until the edge weight drops below 1/65535."""
    if radius > MAGICK_EPSILON:
        return int(2.0 * math.ceil(radius) + 1.0)
    gamma = abs(sigma)
    if gamma <= MAGICK_EPSILON:
        return 3
    alpha = _perceptible_reciprocal(2.0 * gamma * gamma)
    beta = _perceptible_reciprocal(MAGICK_SQ2PI * gamma)
    width = 5
    while True:
        normalize = 0.0
        j = (width - 1) // 2
        for i in range(-j, j + 1):
            normalize += math.exp(-float(i * i) * alpha) * beta
        value = math.exp(-float(j * j) * alpha) * beta / normalize
        if value < 1.0 / QUANTUM_RANGE or value < MAGICK_EPSILON:
            break
        width += 2
    return width - 2


def blur_kernel(radius: float, sigma: float) -> np.ndarray:
    """The 1-D kernel of ``-blur RADIUSxSIGMA`` (morphology.c BlurKernel with KernelRank 3).

    A Gaussian of sigma*3 sampled at ``u = -v..v`` is summed into ``width`` buckets of three, then
    CalcKernelMetaData zeroes values below MagickEpsilon and ScaleKernelInfo (CorrelateNormalize)
    multiplies every value by ``1/sum``.
    """
    sigma = abs(sigma)
    width = int(radius) * 2 + 1 if radius >= 1.0 else optimal_kernel_width(radius, sigma)
    values = [0.0] * width
    v = (width * KERNEL_RANK - 1) // 2
    if sigma > MAGICK_EPSILON:
        sigma *= KERNEL_RANK
        alpha = 1.0 / (2.0 * sigma * sigma)
        beta = 1.0 / (MAGICK_SQ2PI * sigma)
        for u in range(-v, v + 1):
            values[(u + v) // KERNEL_RANK] += math.exp(-float(u * u) * alpha) * beta
    else:
        values[(width - 1) // 2] = 1.0
    positive = negative = 0.0
    for i, value in enumerate(values):
        if abs(value) < MAGICK_EPSILON:
            values[i] = value = 0.0
        if value < 0:
            negative += value
        else:
            positive += value
    positive_scale = 1.0 / (positive if abs(positive) >= MAGICK_EPSILON else 1.0)
    negative_scale = 1.0 / (-negative if abs(negative) >= MAGICK_EPSILON else 1.0)
    return np.array([value * (positive_scale if value >= 0 else negative_scale) for value in values], dtype=np.float64)


_NUMBER = re.compile(r"\s*([+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(%?)\s*")


def threshold_quantum(text_or_fraction) -> float:
    """The ``-threshold`` value in Quantum units, as convert's StringToDoubleInterval computes it.

    ``"5%"`` -> ``5 * (65536/100)``; ``"3276.8"`` -> 3276.8; a float is a fraction of 65536 (the unit of
    :attr:`MaskParams.steps` and of Wand's ``threshold``).
    """
    if isinstance(text_or_fraction, str):
        match = _NUMBER.fullmatch(text_or_fraction)
        if match:
            value = float(match.group(1))
            return value * ((QUANTUM_RANGE + 1.0) / 100.0) if match.group(2) else value
    return float(text_or_fraction) * (QUANTUM_RANGE + 1.0)


def _chain(params: MaskParams) -> list[tuple[str, object]]:
    """``params.steps`` with thresholds in Quantum units, computed from the text convert would parse."""
    texts = iter([getattr(params, "threshold", None), getattr(params, "threshold2", None)])
    chain = []
    for step, value in params.steps:
        if step == "threshold_map":
            next(texts, None)  # the map takes the first threshold's place
            picture = load_threshold_map(value)
            chain.append(("threshold_map", (map_quantum(picture), picture.path)))
        elif step == "threshold":
            text = next(texts, None)
            chain.append(("threshold", threshold_quantum(text if text is not None else value)))
        else:
            chain.append(("blur", blur_kernel(*value)))
    return chain


def load_threshold_map(path: str | os.PathLike) -> Picture:
    """A threshold map (a gray TIFF, see :mod:`magicmask.thresholds`), read once per process while the
    file is unchanged.

    Raises
    ------
    MagicmaskError
        When the file is not a gray 8- or 16-bit TIFF.
    """
    path = os.fspath(path)
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise MagicmaskError(f"cannot read the threshold map: {exc.strerror}", path, "make it with --threshold adaptive") from None
    return _cached_map(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _cached_map(path: str, mtime_ns: int, size: int) -> Picture:
    picture = read_picture(path, "threshold map")
    if picture.samples.shape[2] != 1:
        raise MagicmaskError("the threshold map is not a gray image", path, "a threshold map has one channel; make it with --threshold adaptive")
    return picture


def map_quantum(picture: Picture) -> np.ndarray:
    """The map's values in Quantum, ``(rows, columns)`` uint16 (``257 * m`` for 8-bit maps), as
    ``-compose minus_src`` reads them."""
    samples = picture.samples[:, :, 0]
    if samples.dtype == np.uint8:
        return samples.astype(np.uint16) * np.uint16(257)
    return np.ascontiguousarray(samples)


# --------------------------------------------------------------------------------------------------
# the mask and the clean image


def mask_quantum(background: Picture, frame: Picture, params: MaskParams = MaskParams()) -> np.ndarray:
    """The mask of ``frame`` against ``background`` in Quantum values, before it is written.

    Returns a ``(rows, columns)`` uint16 array when the chain thresholds (R = G = B from then on),
    else ``(rows, columns, 3)``.
    """
    k = _kernels()
    rows, columns = background.samples.shape[:2]
    chain = _chain(params)
    if chain and chain[0][0] in ("threshold", "threshold_map"):
        image = np.empty((rows, columns), dtype=np.uint16)
        _first_threshold(background, frame, chain[0], image)
        chain = chain[1:]
    else:
        image = np.empty((rows, columns, 3), dtype=np.uint16)
        k.difference(background.samples, background.scale, frame.samples, frame.scale, image)
    return apply_chain(image, chain)


def apply_chain(image: np.ndarray, chain: list[tuple[str, object]]) -> np.ndarray:
    """The steps of ``chain`` (from :func:`_chain`: thresholds in Quantum, blur kernels) on a Quantum image,
    ``(rows, columns)`` or ``(rows, columns, 3)``; blurs work in place."""
    k = _kernels()
    rows, columns = image.shape[:2]
    spare = np.empty((rows, columns), dtype=np.uint16)
    for step, value in chain:
        if step == "threshold":
            out = np.empty((rows, columns), dtype=np.uint16)
            (k.threshold_rgb if image.ndim == 3 else k.threshold_gray)(image, value, out)
            image = out
        elif image.ndim == 2:
            k.blur_rows(image, value, spare)
            k.blur_columns(spare, value, image)
        else:
            for c in range(3):
                channel = np.ascontiguousarray(image[:, :, c])
                k.blur_rows(channel, value, spare)
                k.blur_columns(spare, value, channel)
                image[:, :, c] = channel
    return image


def difference_threshold(background: Picture, frame: Picture, threshold: float, out: np.ndarray) -> tuple[int, int, int, int]:
    """The difference composite and the first ``-threshold`` into ``out`` (see
    :func:`_native_kernels.difference_threshold`); 8-bit RGB pairs look their products up in tables.
    Returns the bounding box of the pixels set."""
    k = _kernels()
    if background.samples.dtype == frame.samples.dtype == np.uint8 and background.samples.shape[2] == frame.samples.shape[2] == 3:
        return k.difference_threshold_8bit(background.samples, frame.samples, *intensity_tables(), threshold, out)
    return k.difference_threshold(background.samples, background.scale, frame.samples, frame.scale, threshold, out)


def difference_map_threshold(background: Picture, frame: Picture, limit: np.ndarray, out: np.ndarray, map_path=None) -> tuple[int, int, int, int]:
    """The difference composite and a per-pixel threshold into ``out`` (see
    :func:`_native_kernels.difference_map_threshold`): ``limit`` is the map in Quantum, ``(rows, columns)``
    (:func:`map_quantum`). Returns the bounding box of the pixels set."""
    k = _kernels()
    if limit.shape != out.shape:
        raise MagicmaskError(f"the threshold map is {limit.shape[1]}x{limit.shape[0]} but the frames are {out.shape[1]}x{out.shape[0]}", map_path, "use the map made with this video's background")
    if background.samples.dtype == frame.samples.dtype == np.uint8 and background.samples.shape[2] == frame.samples.shape[2] == 3:
        return k.difference_map_threshold_8bit(background.samples, frame.samples, *intensity_tables(), limit, out)
    return k.difference_map_threshold(background.samples, background.scale, frame.samples, frame.scale, limit, out)


def _first_threshold(background: Picture, frame: Picture, step: tuple[str, object], out: np.ndarray) -> tuple[int, int, int, int]:
    """The difference and the chain's first step, ``-threshold T`` or a threshold map, into ``out``."""
    kind, value = step
    if kind == "threshold_map":
        return difference_map_threshold(background, frame, value[0], out, value[1])
    return difference_threshold(background, frame, value, out)


@functools.cache
def intensity_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_native_kernels.intensity_tables`, made once per process."""
    return _kernels().intensity_tables()


@functools.cache
def intensity_fixed_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """:func:`_native_kernels.intensity_fixed_tables`, made once per process."""
    return _kernels().intensity_fixed_tables()


@functools.cache
def _multiply_tables() -> tuple[np.ndarray, np.ndarray]:
    """:func:`_native_kernels.multiply_tables` for 8-bit frames, made once per process."""
    return _kernels().multiply_tables(257)


def _as_file_samples(image: np.ndarray, depth: int) -> tuple[np.ndarray, bool]:
    """The samples ImageMagick's TIFF coder writes for a Quantum image at ``depth``, and whether gray."""
    k = _kernels()
    if image.ndim == 3:
        if k.is_gray(image):
            image = np.ascontiguousarray(image[:, :, 0])
        else:
            return (_to_char(image) if depth == 8 else image), False
    gray = np.empty(image.shape, dtype=np.uint16)
    k.gray_luma_quantum(image, gray)
    return (_to_char(gray) if depth == 8 else gray)[:, :, None], True


def _to_char(image: np.ndarray) -> np.ndarray:
    out = np.empty(image.shape, dtype=np.uint8)
    _kernels().quantum_to_char(np.ascontiguousarray(image), out)
    return out


def mask_samples(background: Picture, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(the mask file's samples, the mask as convert reads it back)``: the samples at the background's
    depth, and in Quantum values (``257 * m`` for 8-bit files)."""
    samples, _ = _as_file_samples(mask, background.depth)
    return samples, _read_back(samples)


def _read_back(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.uint16) * 257 if samples.dtype == np.uint8 else samples


def _by_tables(frame: Picture, samples: np.ndarray) -> bool:
    """Whether :func:`clean_samples` multiplies by table look-up (an 8-bit frame, an 8-bit gray mask file)."""
    return samples.dtype == np.uint8 and frame.samples.dtype == np.uint8 and samples.shape[2:] == (1,)


def _mask_and_clean(background: Picture, frame: Picture, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """The mask file's samples, and :func:`clean_samples` of ``frame`` (the read-back mask made only
    when the multiply needs it)."""
    samples, _ = _as_file_samples(mask, background.depth)
    return samples, *clean_samples(frame, None if _by_tables(frame, samples) else _read_back(samples), samples)


def mask_file(background: Picture, mask: np.ndarray) -> tuple[bytes, np.ndarray]:
    """``(NAME-mask.tiff bytes, the mask as convert reads it back)``: the file at the background's depth
    and attributes, and its samples in Quantum values (``257 * m`` for 8-bit files)."""
    samples, read_back = mask_samples(background, mask)
    return tiff_bytes(samples, background), read_back


def clean_jpeg(frame: Picture, read_back: np.ndarray) -> bytes:
    """``convert FRAME NAME-mask.tiff -compose multiply -flatten NAME-clean.jpg`` as JPEG bytes."""
    out, gray = clean_samples(frame, read_back)
    return jpeg_bytes(out[:, :, :1] if gray else out, frame)


def clean_samples(frame: Picture, read_back: np.ndarray, samples: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """The 8-bit samples ``NAME-clean.jpg`` is encoded from (the frame's channels, or RGB for an RGB
    mask), and whether R = G = B everywhere (``convert`` then writes a one-component JPEG).

    ``samples``, the mask file's samples (see :func:`mask_samples`), lets an 8-bit frame with an 8-bit
    gray mask be multiplied by table look-up (same arithmetic, the tables made by it).
    """
    k = _kernels()
    if samples is not None and _by_tables(frame, samples):
        quantum, char = _multiply_tables()
        out = np.empty(frame.samples.shape, dtype=np.uint8)
        gray = k.multiply_flatten_8bit(frame.samples, np.ascontiguousarray(samples[:, :, 0]), quantum, char, out)
        return out, bool(gray)
    mask = np.ascontiguousarray(read_back[:, :, 0]) if read_back.ndim == 3 and read_back.shape[2] == 1 else read_back
    if mask.ndim == 3:  # an RGB mask (a chain without threshold): multiply channel by channel
        rows, columns = mask.shape[:2]
        out = np.empty((rows, columns, 3), dtype=np.uint8)
        for c in range(3):
            plane = np.empty((rows, columns, 1), dtype=np.uint8)
            k.multiply_flatten(np.ascontiguousarray(frame.samples[:, :, min(c, frame.samples.shape[2] - 1)][:, :, None]), frame.scale, np.ascontiguousarray(mask[:, :, c]), plane)
            out[:, :, c] = plane[:, :, 0]
        gray = bool((out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 1] == out[:, :, 2]).all())
        return out, gray
    out = np.empty(frame.samples.shape, dtype=np.uint8)
    gray = k.multiply_flatten(frame.samples, frame.scale, mask, out)
    return out, bool(gray)


# --------------------------------------------------------------------------------------------------
# TIFF writing, in the layout libtiff gives ImageMagick's TIFF coder


def _rows_per_strip(row_bytes: int, rows: int) -> int:
    """ImageMagick's strip height: TIFFStripSizeDefault / scanline, rounded to 16, at most the image height."""
    per_strip = TIFF_STRIP_SIZE_DEFAULT // max(row_bytes, 1)
    per_strip = 16 * ((max(per_strip, 16) + 1) // 16)
    return max(1, min(per_strip, rows))


def _rational(value: float) -> tuple[int, int]:
    """libtiff's conversion of a (float) resolution to a RATIONAL: exact for integers and binary fractions."""
    if value == int(value) and value <= 0xFFFFFFFF:
        return int(value), 1
    fraction = Fraction(value)
    if fraction.numerator > 0xFFFFFFFF or fraction.denominator > 0xFFFFFFFF:
        fraction = fraction.limit_denominator(0xFFFFFFFF)
    return fraction.numerator, fraction.denominator


def _predict(samples: np.ndarray) -> np.ndarray:
    """Horizontal differencing (TIFF predictor 2) per sample, modulo the sample size."""
    out = samples.copy()
    out[:, 1:, :] = samples[:, 1:, :] - samples[:, :-1, :]
    return out


def _strips(samples: np.ndarray, picture: Picture, per_strip: int) -> tuple[list[bytes], bool]:
    """The encoded strips of ``samples`` in ``picture``'s compression, and whether a predictor was used."""
    rows = samples.shape[0]
    order = BYTE_ORDER
    compression = picture.compression
    if compression in (LZW, ADOBE_DEFLATE, DEFLATE):
        samples = _predict(samples)
    data = samples if samples.dtype == np.uint8 else samples.astype(order + "u2")
    raw = np.ascontiguousarray(data).view(np.uint8).reshape(rows, -1)
    bounds = [(start, min(start + per_strip, rows)) for start in range(0, rows, per_strip)]
    if compression == NONE:
        return [raw[a:b].tobytes() for a, b in bounds], False
    if compression == PACKBITS:
        row_bytes = raw.shape[1]
        out = np.empty(rows * (row_bytes + row_bytes // 32 + 8), dtype=np.uint8)
        ends = np.empty(rows, dtype=np.int64)
        _kernels().packbits_rows(raw, out, ends)
        starts = np.concatenate(([0], ends))
        return [out[starts[a] : starts[b]].tobytes() for a, b in bounds], False
    import imagecodecs

    if compression == LZW:
        return [imagecodecs.lzw_encode(raw[a:b].tobytes()) for a, b in bounds], True
    return [imagecodecs.zlib_encode(raw[a:b].tobytes(), level=7) for a, b in bounds], True


_TYPE_CODE = {2: "B", 3: "H", 4: "I", 5: "I"}


def writable(picture: Picture) -> bool:
    """Whether this engine writes TIFFs in ``picture``'s compression (which the files made from it inherit)."""
    return picture.compression in WRITABLE_COMPRESSIONS


def image_tiff(pixels: np.ndarray, form: Picture) -> bytes:
    """``pixels`` (``(rows, columns, 1 or 3)``, ``form``'s dtype) as a TIFF in ``form``'s depth, compression and
    attributes, laid out as ImageMagick writes an image (gray samples when R = G = B everywhere)."""
    quantum = pixels.astype(np.uint16) * np.uint16(form.scale)
    samples, _ = _as_file_samples(quantum, form.depth)
    return tiff_bytes(np.ascontiguousarray(samples), form)


def check_writable(picture: Picture, role: str = "background") -> None:
    """Refuse, before any work, an image whose compression the outputs would inherit and this engine cannot write."""
    if not writable(picture):
        name = _COMPRESSION_NAMES.get(picture.compression, f"code {picture.compression}")
        raise MagicmaskError(
            f"{role} is a {name}-compressed TIFF, which convert's outputs inherit and the native engine does not write",
            picture.path,
            "use the wand engine, or frames with no, PackBits, LZW or Deflate compression",
        )


def tiff_bytes(samples: np.ndarray, picture: Picture, *, chromaticities: bool = True) -> bytes:
    """A TIFF file of ``samples`` ((rows, columns, 1 or 3), uint8 or uint16) with ``picture``'s attributes.

    Laid out as ImageMagick 6.9.11 with libtiff 4.5 writes it: strips from offset 8, the IFD after
    them (word aligned), then the values that do not fit in an entry, in libtiff's order.
    ``chromaticities=False`` leaves out the sRGB white point and primaries, as ImageMagick does for an
    image in the gray colourspace (``-colorspace gray``).
    """
    rows, columns, channels = samples.shape
    bits = 8 if samples.dtype == np.uint8 else 16
    check_writable(picture)
    row_bytes = columns * channels * bits // 8
    per_strip = _rows_per_strip(row_bytes, rows)
    strips, predictor = _strips(samples, picture, per_strip)
    order = BYTE_ORDER
    offsets, position = [], 8
    for strip in strips:
        offsets.append(position)
        position += len(strip)
    ifd_offset = position + (position & 1)

    def short_or_long(value):
        return (3, [value]) if value <= 0xFFFF else (4, [value])

    entries = {  # tag: (type, values)
        256: short_or_long(columns),
        257: short_or_long(rows),
        258: (3, [bits] * channels),
        259: (3, [ADOBE_DEFLATE if picture.compression == DEFLATE else picture.compression]),  # libtiff writes old Deflate as 8
        262: (3, [2 if channels == 3 else 1]),
        266: (3, [1]),
        273: (4, offsets),
        274: (3, [1]),
        277: (3, [channels]),
        278: short_or_long(per_strip),
        279: (4, [len(strip) for strip in strips]),
        284: (3, [1]),
        297: (3, [0, 1]),
        318: (5, list(_WHITE_POINT)),
        319: (5, list(_PRIMARY_CHROMATICITIES)),
    }
    if not chromaticities:
        del entries[318], entries[319]
    if picture.x_resolution != 0.0 and picture.y_resolution != 0.0:
        entries[282] = (5, list(_rational(picture.x_resolution)))
        entries[283] = (5, list(_rational(picture.y_resolution)))
        entries[296] = (3, [picture.resolution_unit if picture.resolution_unit in (2, 3) else 1])
    if predictor:
        entries[317] = (3, [2])
    if picture.description:
        entries[270] = (2, list(picture.description + b"\0"))
    if picture.page_name:
        entries[285] = (2, list(picture.page_name + b"\0"))

    def pack(kind, values):
        return struct.pack(f"{order}{len(values)}{_TYPE_CODE[kind]}", *values)

    count = len(entries)
    data_offset = ifd_offset + 2 + 12 * count + 4
    outside = {}
    extra = bytearray()
    for tag in (282, 283, 258, 279, 273, 319, 318, 285, 270):  # libtiff's order for out-of-line values
        if tag not in entries:
            continue
        kind, values = entries[tag]
        payload = pack(kind, values)
        if len(payload) > 4:
            if len(extra) & 1:  # libtiff starts every value at an even offset (the gap reads as 0)
                extra += b"\0"
            outside[tag] = data_offset + len(extra)
            extra += payload
    ifd = bytearray(struct.pack(f"{order}H", count))
    for tag in sorted(entries):
        kind, values = entries[tag]
        counted = len(values) // 2 if kind == 5 else len(values)
        if tag in outside:
            field = struct.pack(f"{order}I", outside[tag])
        else:
            field = pack(kind, values).ljust(4, b"\0")
        ifd += struct.pack(f"{order}HHI", tag, kind, counted) + field
    ifd += struct.pack(f"{order}I", 0)
    header = b"II*\0" + struct.pack(f"{order}I", ifd_offset)
    body = b"".join(strips)
    return b"".join((header, body, b"\0" * (ifd_offset - position), bytes(ifd), bytes(extra)))


# --------------------------------------------------------------------------------------------------
# JPEG writing, with ImageMagick's settings


def _jfif_density(picture: Picture) -> tuple[int, int, int]:
    """``(unit, x, y)`` of the JFIF header as ImageMagick's JPEG coder sets it from the image resolution."""
    if picture.x_resolution != 0.0 and picture.y_resolution != 0.0:
        unit = {2: 1, 3: 2}.get(picture.resolution_unit, 0)
        return unit, int(picture.x_resolution) & 0xFFFF, int(picture.y_resolution) & 0xFFFF
    return 0, 1, 1


ALIKE_SHARE = 2 / 3
"""From this share of 8x8 blocks whose pixels are all alike (the black around a clean image's foreground),
:func:`jpeg_bytes` encodes with magicmask's own encoder (:mod:`magicmask.engines._jpeg`: such blocks need no
DCT, and it runs beside the other frames' threads); below it with Pillow, whose libjpeg-turbo SIMD code is
faster on busy images but holds the GIL. Both write the same bytes (tested). Measured on 1080p images, one
thread: at 90% alike blocks the own encoder takes 8.0 ms against Pillow's 10.8, at two thirds 17 against 13
(the CPU break-even is near 80%); below 90% what it buys is the other threads' time while Pillow would hold
the GIL."""


@functools.cache
def _jpeg_encoder():
    from magicmask.engines._jpeg import Encoder

    return Encoder(JPEG_QUALITY)


def jpeg_bytes(samples: np.ndarray, picture: Picture) -> bytes:
    """JPEG bytes of 8-bit ``samples`` ((rows, columns, 1 or 3)) as ``convert`` writes them.

    Quality 92, 4:4:4 sampling (ImageMagick's choice at quality >= 90), optimised Huffman tables
    (``jpeg:optimize-coding``), one component for gray images, the JFIF density of ``picture`` and
    its description as a comment. Encoded by :mod:`magicmask.engines._jpeg` or Pillow (see
    :data:`ALIKE_SHARE`); by the former also when Pillow cannot: with optimised tables its buffer holds
    as many bytes as the image has pixels, and a JPEG of noise needs more.
    """
    from magicmask.engines import _jpeg

    samples = np.ascontiguousarray(samples)
    density = _jfif_density(picture)
    comment = picture.description or b""
    alike = np.empty((samples.shape[0] // 8, samples.shape[1] // 8), dtype=np.uint8)
    own = len(comment) <= _jpeg.MAX_COMMENT and max(samples.shape[:2]) <= _jpeg.MAX_SIDE
    if own and alike.size and _jpeg.alike_blocks(samples, alike) >= ALIKE_SHARE * alike.size:
        return _jpeg_encoder().encode(samples, density, comment, alike)
    try:
        return pillow_jpeg_bytes(samples, density, comment)
    except OSError:  # Pillow's buffer for optimised tables holds as many bytes as pixels: noise needs more
        if not own:
            raise
        return _jpeg_encoder().encode(samples, density, comment)


def pillow_jpeg_bytes(samples: np.ndarray, density: tuple[int, int, int], comment: bytes) -> bytes:
    """:func:`jpeg_bytes` by Pillow (libjpeg-turbo): ``density`` (unit, x, y) goes in the JFIF header."""
    from PIL import Image

    image = Image.fromarray(samples[:, :, 0] if samples.shape[2] == 1 else samples)
    options = dict(format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    if comment:
        options["comment"] = comment
    buffer = io.BytesIO()
    image.save(buffer, **options)
    data = bytearray(buffer.getvalue())
    if data[2:4] != b"\xff\xe0" or data[6:11] != b"JFIF\0":
        raise MagicmaskError("Pillow wrote a JPEG without a JFIF header", hint="check the Pillow installation")
    unit, x_density, y_density = density
    data[13] = unit
    data[14:18] = struct.pack(">HH", x_density, y_density)
    return bytes(data)


# --------------------------------------------------------------------------------------------------
# the engine interface


def load_background(path: str | os.PathLike) -> Picture:
    """The background image, read once for every frame."""
    background = read_picture(path, "background")
    check_writable(background)
    return background


def render_frame(background: Picture, frame: str | os.PathLike, params: MaskParams = MaskParams(), background_path=None) -> tuple[bytes, bytes]:
    """``(NAME-mask.tiff bytes, NAME-clean.jpg bytes)`` for one frame: both of the blog's loop commands.

    The clean image multiplies the frame by the mask as the second command reads it back from the
    mask file (8-bit samples for 8-bit backgrounds), so the mask file is never read.

    Raises
    ------
    MagicmaskError
        When the frame is not a readable TIFF of a kind this engine handles, or its size differs
        from the background's.
    """
    return render_samples(background, frame, params, background_path)[:2]


def render_samples(background: Picture, frame: str | os.PathLike, params: MaskParams = MaskParams(), background_path=None) -> tuple[bytes, bytes, np.ndarray, np.ndarray]:
    """:func:`render_frame`, and the samples it had in hand: ``(mask bytes, clean bytes, mask samples, frame
    samples)`` (the mask file's samples, at the background's depth; the frame's as read), for what is
    measured or cut out of the same pass."""
    picture = read_picture(frame)
    check_same_size(background, picture, frame, background_path)
    mask, clean, gray = _foreground(background, picture, params)
    return tiff_bytes(mask, background, chromaticities=getattr(params, "threshold_map", None) is None), jpeg_bytes(clean[:, :, :1] if gray else clean, picture), mask, picture.samples


def warm_up(depths: tuple[int, ...] = (8,)) -> None:
    """Load Numba's compiled kernels (about a second from its cache) and the codecs, on a tiny image.

    Meant for a background thread started before the first frame is ready, so that the cost overlaps
    with ffmpeg's work instead of delaying the first mask.
    """
    import tempfile

    tifffile = _tifffile()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="magicmask-warm-") as folder:
        for depth in depths:
            dtype = np.uint8 if depth == 8 else np.uint16
            top = np.iinfo(dtype).max
            paths = []
            for name in ("a", "b"):
                path = Path(folder) / f"{name}{depth}.tiff"
                tifffile.imwrite(path, rng.integers(0, top, size=(9, 7, 3), dtype=dtype), photometric="rgb", compression="packbits")
                paths.append(path)
            render_frame(load_background(paths[0]), paths[1])
        for channels in (1, 3):  # magicmask's own JPEG encoder, for clean images that are mostly black
            _jpeg_encoder().encode(np.zeros((16, 16, channels), dtype=np.uint8))


class Fold:
    """A running ``-background COLOUR -compose OP -flatten`` over frames, one frame in memory at a time.

    ``Fold("lighten", "black")`` is ``convert *.tiff -background black -compose lighten -flatten``;
    ``Fold("darken", "white")`` the keyframe display with ``-background white -compose darken``.
    Lighten and darken are per-channel max/min: exact and associative, so folding frame by frame, or
    folding parts and combining them, gives the same result as flattening the whole stack. The
    result has the first frame's size, depth, compression, resolution and description.
    """

    def __init__(self, compose: str, colour: str):
        compose = compose.lower()
        if compose not in ("lighten", "darken"):
            raise MagicmaskError(f"the native engine folds with lighten or darken, not {compose!r}", hint="use -compose lighten or darken")
        canvas = {"black": 0, "white": QUANTUM_RANGE}.get(colour.lower())
        if canvas is None:
            raise MagicmaskError(f"the native engine fills the canvas with black or white, not {colour!r}", hint="use -background black or white")
        self.compose = compose
        self.colour = colour
        self._fill = canvas
        self.canvas: np.ndarray | None = None  # (rows, columns, 3) uint16 Quantum
        self.first: Picture | None = None
        self.first_path: Path | None = None
        self.count = 0

    def add(self, picture: Picture, path=None) -> None:
        rows, columns = picture.samples.shape[:2]
        if self.canvas is None:
            check_writable(picture, "the first frame")
            self.canvas = np.full((rows, columns, 3), self._fill, dtype=np.uint16)
            self.first = replace(picture, samples=picture.samples[:0, :0])
            self.first_path = Path(path) if path is not None else None
        elif self.canvas.shape[:2] != (rows, columns):
            ch, cw = self.canvas.shape[:2]
            raise MagicmaskError(f"frame is {columns}x{rows} but {self.first_path} is {cw}x{ch}", path, "flatten frames of one video only")
        k = _kernels()
        (k.fold_lighten if self.compose == "lighten" else k.fold_darken)(self.canvas, picture.samples, picture.scale)
        self.count += 1

    def add_file(self, path) -> None:
        self.add(read_picture(path), path)

    def combine(self, other: "Fold") -> None:
        """Fold another partial result (of later frames) into this one."""
        if other.canvas is None:
            return
        if self.canvas is None:
            self.canvas = other.canvas.copy()
            self.first, self.first_path, self.count = other.first, other.first_path, other.count
            return
        if self.canvas.shape != other.canvas.shape:
            (ch, cw), (oh, ow) = self.canvas.shape[:2], other.canvas.shape[:2]
            raise MagicmaskError(f"frame is {ow}x{oh} but {self.first_path} is {cw}x{ch}", other.first_path, "flatten frames of one video only")
        (np.maximum if self.compose == "lighten" else np.minimum)(self.canvas, other.canvas, out=self.canvas)
        self.count += other.count

    def encode(self, format: str = "tiff") -> bytes:
        """The flattened image as TIFF (the first frame's depth; gray when R = G = B everywhere) or JPEG bytes."""
        if self.canvas is None:
            raise MagicmaskError("no frames to flatten", hint="pass TIFF frames, e.g. t*.tiff")
        if format in ("jpeg", "jpg"):
            k = _kernels()
            image = np.ascontiguousarray(self.canvas[:, :, :1]) if k.is_gray(self.canvas) else self.canvas
            return jpeg_bytes(_to_char(image), self.first)
        samples, _ = _as_file_samples(self.canvas, self.first.depth)
        return tiff_bytes(samples, self.first)

    def close(self) -> None:
        self.canvas = None


def version() -> str:
    """The versions of the libraries doing the work."""
    import numba
    import PIL
    import tifffile

    return f"numba {numba.__version__}, numpy {np.__version__}, tifffile {tifffile.__version__}, Pillow {PIL.__version__}"


# --------------------------------------------------------------------------------------------------
# decoded frames (the foreground video): the same chain on arrays, nothing encoded


def foreground(background: Picture, frame: Picture, params: MaskParams = MaskParams()) -> tuple[np.ndarray, np.ndarray]:
    """``(mask, clean)`` samples of one frame: what the blog's two loop commands write, before encoding.

    ``mask`` is ``NAME-mask.tiff``'s samples (``(rows, columns, channels)``, the background's depth) and
    ``clean`` the 8-bit samples ``NAME-clean.jpg`` is encoded from (``(rows, columns, channels)``): the
    same steps as :func:`render_frame` (:func:`mask_quantum`, :func:`mask_samples`, :func:`clean_samples`),
    without the TIFF and JPEG codecs. Every kernel releases the GIL, so threads can work on several
    frames at once.

    Notes
    -----
    When the chain starts with ``-threshold``, the steps after it run only on the part of the frame
    that can be non-zero (see :func:`moving_region`); everywhere else the mask, and so the clean image,
    is exactly 0. Same samples, less work when little of the frame moves.
    """
    mask, clean, _ = _foreground(background, frame, params)
    return mask, clean


def _foreground(background: Picture, frame: Picture, params: MaskParams) -> tuple[np.ndarray, np.ndarray, bool]:
    """:func:`foreground`, and whether the clean image has R = G = B everywhere (a gray JPEG)."""
    check_same_size(background, frame, frame.path, background.path)
    chain = _chain(params)
    if not chain or chain[0][0] not in ("threshold", "threshold_map"):
        return _mask_and_clean(background, frame, mask_quantum(background, frame, params))
    rows, columns = background.samples.shape[:2]
    first = np.empty((rows, columns), dtype=np.uint16)
    box = _first_threshold(background, frame, chain[0], first)
    region = _region(box, first.shape, chain)
    if region == (slice(0, rows), slice(0, columns)):
        return _mask_and_clean(background, frame, apply_chain(first, chain[1:]))
    mask = np.zeros((rows, columns, 1), dtype=background.samples.dtype)
    clean = np.zeros((rows, columns, frame.samples.shape[2]), dtype=np.uint8)
    if region[0].start == region[0].stop:  # nothing passes the first threshold
        return mask, clean, True
    samples, clean[region], gray = _mask_and_clean(background, replace(frame, samples=np.ascontiguousarray(frame.samples[region])), apply_chain(np.ascontiguousarray(first[region]), chain[1:]))
    mask[region] = samples
    return mask, clean, gray


def moving_region(first: np.ndarray, chain: list[tuple[str, object]]) -> tuple[slice, slice]:
    """``(rows, columns)`` slices outside which a mask is exactly 0, from its first ``-threshold``'s result.

    After ``-threshold`` a pixel is 0 or 65535. A 0 stays 0 through any later ``-threshold`` (0 <= T)
    and a blur of zeros is 0, so each ``-blur`` of ``chain`` can spread non-zero values by at most half its
    kernel width. The region is the bounding box of ``first``'s non-zero pixels widened by the sum of
    those half widths plus one, so its border is 0 at every step: a blur of the region, its edges
    repeated, reads exactly the samples the whole frame's blur reads (zeros beyond the region, the same
    repeated pixels at the frame's own edges). An empty region (``start == stop``) means all 0.
    """
    moving_rows = np.flatnonzero(first.any(axis=1))
    if moving_rows.size == 0:
        return slice(0, 0), slice(0, 0)
    moving_columns = np.flatnonzero(first.any(axis=0))
    box = (int(moving_rows[0]), int(moving_rows[-1]), int(moving_columns[0]), int(moving_columns[-1]))
    return _region(box, first.shape, chain)


def _region(box: tuple[int, int, int, int], shape: tuple[int, int], chain: list[tuple[str, object]]) -> tuple[slice, slice]:
    """:func:`moving_region` from the bounding box ``(top, bottom, left, right)`` (inclusive) of the
    non-zero pixels, as :func:`_native_kernels.difference_threshold` returns it (top > bottom: none)."""
    top, bottom, left, right = box
    if top > bottom:
        return slice(0, 0), slice(0, 0)
    rows, columns = shape
    margin = 1 + sum(len(value) // 2 for step, value in chain[1:] if step == "blur")
    return (
        slice(max(0, top - margin), min(rows, bottom + 1 + margin)),
        slice(max(0, left - margin), min(columns, right + 1 + margin)),
    )


def to_char(samples: np.ndarray) -> np.ndarray:
    """8-bit samples of an 8- or 16-bit image, as ImageMagick scales Quantum to char (ScaleQuantumToChar)."""
    return samples if samples.dtype == np.uint8 else _to_char(samples)


def fold_picture(fold: Fold) -> Picture:
    """The image a :class:`Fold` encodes as TIFF, as it reads back (``background.tiff`` without the file)."""
    if fold.canvas is None:
        raise MagicmaskError("no frames to flatten", hint="pass frames to fold")
    samples, _ = _as_file_samples(fold.canvas, fold.first.depth)
    return replace(fold.first, samples=np.ascontiguousarray(samples))
