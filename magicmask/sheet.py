"""The contact sheet: every keyframe of a folder as a row of frame | mask | clean thumbnails, in one image.

Modelled on ImageMagick's ``montage``::

    montage -label %t t01.tiff t01-mask.tiff t01-clean.jpg t02.tiff ... -tile 3x -geometry 240x+4+4 sheet.jpg

drawn with Pillow (no ImageMagick resource limits, any number of rows up to JPEG's 65,500 pixels).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from magicmask.errors import MagicmaskError
from magicmask.files import CLEAN_SUFFIX, MASK_SUFFIX, TIFF_MAGIC, frame_name, is_output_name, write_atomic

SHEET_NAME = "sheet.jpg"
COLUMNS = ("frame", "mask", "clean")
MAX_SIDE = 65500  # JPEG's limit on either side
PAD = 6
BACKGROUND = (40, 40, 40)
TEXT = (235, 235, 235)
DIM = (150, 150, 150)
_ROWS_AT_ONCE = 16  # rows whose thumbnails are made together (memory: their decoded frames, one per thread)


def sheet_frames(folder: str | os.PathLike) -> list[Path]:
    """The keyframes of ``folder``: its TIFFs that are not magicmask outputs, by name (``t01.tiff``...)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MagicmaskError("not a folder", folder, "pass the folder magicmask run wrote")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff") and p.is_file() and not is_output_name(p))


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _eight_bit(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.uint8:
        return samples
    if samples.dtype == np.uint16:
        return ((samples.astype(np.uint32) + 128 - ((samples.astype(np.uint32) + 128) >> 8)) >> 8).astype(np.uint8)
    raise MagicmaskError(f"cannot show {samples.dtype} samples", hint="the sheet shows 8- and 16-bit images")


def _open(path: Path, box: tuple[int, int]):
    """``path`` as an RGB Pillow image fitted into ``box``, or None when missing or unreadable."""
    from PIL import Image

    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if data.startswith(TIFF_MAGIC):
            image = _pillow_tiff(data)
            if image is None:  # 16-bit, planar, alpha...: tifffile reads them all
                image = _tifffile_image(data)
        elif data.startswith(b"\xff\xd8\xff"):
            image = Image.open(io.BytesIO(data))
            image.draft("RGB", box)  # JPEG's own downscaling while decoding: fast
        else:
            return None
        if image.mode in ("L", "RGB"):  # each band resampled alike: shrink first, then a third of the work
            image.thumbnail(box, Image.Resampling.LANCZOS, reducing_gap=2.0)
            return image.convert("RGB")
        image = image.convert("RGB")
        image.thumbnail(box, Image.Resampling.LANCZOS, reducing_gap=2.0)
        return image
    except MagicmaskError:
        raise
    except Exception:  # a damaged file shows as a gap, not as a failed sheet
        return None


def _pillow_tiff(data: bytes):
    """An 8-bit gray or RGB TIFF (ffmpeg's keyframes, magicmask's masks) decoded by Pillow's libtiff, five
    times faster than tifffile here; None for anything else."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        bits = image.tag_v2.get(258, (8,))  # Pillow would read 16-bit RGB as RGB too, scaled its own way
        if image.mode not in ("L", "RGB") or any(b != 8 for b in (bits if isinstance(bits, tuple) else (bits,))):
            return None
        image.load()
        return image
    except Exception:
        return None


def _tifffile_image(data: bytes):
    """The first image of any TIFF tifffile reads, 8-bit (16-bit scaled as ImageMagick does), gray or RGB."""
    import tifffile
    from PIL import Image

    samples = _eight_bit(np.asarray(tifffile.imread(io.BytesIO(data), key=0)))
    if samples.ndim == 3 and samples.shape[0] in (3, 4) and samples.shape[-1] not in (1, 2, 3, 4):
        samples = np.moveaxis(samples, 0, -1)  # planar
    if samples.ndim == 3:
        samples = samples[:, :, 0] if samples.shape[2] in (1, 2) else samples[:, :, :3]
    return Image.fromarray(np.ascontiguousarray(samples))


def contact_sheet(
    folder: str | os.PathLike,
    output: str | os.PathLike | None = None,
    width: int = 240,
    progress: Callable[[Path], None] | None = None,
    frames: list[Path] | None = None,
) -> Path:
    """Write a contact sheet of ``folder``: one row per keyframe, frame | mask | clean, named.

    Parameters
    ----------
    folder : path
        A folder with keyframes (``t01.tiff``...) and their ``NAME-mask.tiff`` and ``NAME-clean.jpg``.
    output : path, optional
        The sheet; ``folder/sheet.jpg`` by default. ``.png`` writes PNG, anything else JPEG (quality 90).
    width : int
        Width of each thumbnail in pixels; made smaller when the sheet would pass JPEG's 65,500 pixels.
    progress : callable, optional
        Called with each keyframe once its row is drawn.
    frames : list of paths, optional
        The keyframes to show (a run's own); by default every keyframe TIFF of ``folder``.

    Returns
    -------
    Path
        The sheet.

    Raises
    ------
    MagicmaskError
        When ``folder`` holds no keyframes, or more than one sheet can show.

    Notes
    -----
    A missing or unreadable file leaves its cell empty with the word "missing". Thumbnails keep the
    frames' aspect ratio; 16-bit images are scaled to 8 bits as ImageMagick does.
    """
    from PIL import Image, ImageDraw

    folder = Path(folder)
    frames = sheet_frames(folder) if frames is None else [Path(frame) for frame in frames]
    if not frames:
        raise MagicmaskError("no keyframes (t01.tiff ...) in this folder", folder, "run magicmask run VIDEO -o FOLDER first")
    if width < 16:
        raise MagicmaskError(f"thumbnail width {width} is too small", hint="use --width 16 or more")
    output = Path(output) if output is not None else folder / SHEET_NAME
    first = _open(frames[0], (1 << 16, 1 << 16))
    aspect = first.height / first.width if first is not None else 0.75
    label_size = 14
    font, small = _font(label_size), _font(12)
    label_width = max(int(font.getlength(frame_name(f))) for f in frames) + 2 * PAD
    title_height = 2 * label_size + 3 * PAD
    row_height = int(round(width * aspect)) + PAD
    if title_height + len(frames) * row_height + PAD > MAX_SIDE:
        row_height = (MAX_SIDE - title_height - PAD) // len(frames)
        width = int((row_height - PAD) / aspect)
        if row_height - PAD < 12:
            raise MagicmaskError(f"{len(frames)} keyframes do not fit in one sheet", folder, "make sheets of fewer keyframes (copy some to another folder)")
    tile_height = row_height - PAD
    sheet_width = label_width + len(COLUMNS) * (width + PAD) + PAD
    sheet_height = title_height + len(frames) * row_height + PAD
    sheet = Image.new("RGB", (sheet_width, sheet_height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, PAD), f"{folder.resolve().name}: {len(frames)} keyframes", fill=TEXT, font=font)
    for column, heading in enumerate(COLUMNS):
        x = label_width + column * (width + PAD)
        draw.text((x, PAD + label_size + PAD), heading, fill=DIM, font=small)
    def cells(frame: Path) -> tuple[Path, Path, Path]:
        name = frame_name(frame)
        return frame, folder / f"{name}{MASK_SUFFIX}", folder / f"{name}{CLEAN_SUFFIX}"

    # thumbnails in threads (Pillow decodes and resamples without the GIL), a few rows at a time
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="magicmask-sheet") as pool:
        for start in range(0, len(frames), _ROWS_AT_ONCE):
            chunk = frames[start : start + _ROWS_AT_ONCE]
            images = iter(pool.map(lambda path: _open(path, (width, tile_height)), [path for frame in chunk for path in cells(frame)]))
            for row, frame in enumerate(chunk, start):
                y = title_height + row * row_height
                draw.text((PAD, y + tile_height // 2 - label_size // 2), frame_name(frame), fill=TEXT, font=font)
                for column in range(len(COLUMNS)):
                    x = label_width + column * (width + PAD)
                    image = next(images)
                    if image is None:
                        draw.rectangle((x, y, x + width - 1, y + tile_height - 1), outline=DIM)
                        draw.text((x + PAD, y + PAD), "missing", fill=DIM, font=small)
                        continue
                    sheet.paste(image, (x + (width - image.width) // 2, y + (tile_height - image.height) // 2))
                if progress is not None:
                    progress(frame)
    buffer = io.BytesIO()
    if output.suffix.lower() == ".png":
        sheet.save(buffer, format="PNG")
    else:
        sheet.save(buffer, format="JPEG", quality=90)
    return write_atomic(output, buffer.getvalue())
