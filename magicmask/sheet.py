"""The contact sheet: every keyframe of a folder as frame | mask | clean thumbnails, in a grid, in one image.

Modelled on ImageMagick's ``montage``::

    montage -label %t t01.tiff t01-mask.tiff t01-clean.jpg t02.tiff ... -tile 3x -geometry 240x+4+4 sheet.jpg

drawn with Pillow (no ImageMagick resource limits, any number of rows up to JPEG's 65,500 pixels).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
THUMBNAIL_WIDTH = 240  # a contact sheet's thumbnails, by default
REDUCING_GAP = 1.0
"""Pillow's ``reducing_gap`` for thumbnails: shrink by the largest whole factor that keeps the box filled
(a box average, as JPEG's own downscaling does for the clean images), then Lanczos for the rest (none when
the factor is whole: 1920 to 240 pixels is a box average of 8x8). A 1080p frame's thumbnail takes about
2.2 ms so, against 4.2 ms with 2.0 (by 4, then Lanczos from 480 pixels)."""
_ROWS_AT_ONCE = 16  # rows whose thumbnails are made together (memory: their decoded frames, one per thread)


def sheet_frames(folder: str | os.PathLike) -> list[Path]:
    """The keyframes of ``folder``: its TIFFs that are not magicmask outputs, by name (``t01.tiff``...)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MagicmaskError("not a folder", folder, "pass the folder magicmask run wrote")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff") and p.is_file() and not is_output_name(p))


def video_folders(root: str | os.PathLike) -> list[Path]:
    """The folders of a batch's ``root``: its subfolders holding a run's record, by name."""
    try:
        return sorted(path for path in Path(root).iterdir() if (path / "magicmask.json").is_file())
    except OSError:
        return []


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
    """``path`` as a gray or RGB Pillow image fitted into ``box``, or None when missing or unreadable."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return thumbnail_of_bytes(data, box)


def thumbnail_of_bytes(data: bytes, box: tuple[int, int]):
    """A TIFF's or JPEG's bytes as a gray or RGB Pillow image fitted into ``box``, or None when unreadable."""
    from PIL import Image

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
        return _fitted(image, box)
    except MagicmaskError:
        raise
    except Exception:  # a damaged file shows as a gap, not as a failed sheet
        return None


def thumbnail_of_samples(samples: np.ndarray, box: tuple[int, int]):
    """Samples (rows, columns, channels) as :func:`thumbnail_of_bytes` shows their TIFF: the same image."""
    from PIL import Image

    return _fitted(Image.fromarray(_shown(samples)), box)


def _fitted(image, box: tuple[int, int]):
    from PIL import Image

    if image.mode in ("L", "RGB"):  # each band resampled alike: shrink first; gray stays gray (a third of the
        image.thumbnail(box, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)  # memory; pasted as RGB)
        return image
    image = image.convert("RGB")
    image.thumbnail(box, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    return image


def _frame_size(frame: Path | None, thumbnails: Mapping[Path, Thumbnails] | None = None) -> tuple[int, int]:
    """The width and height of ``frame``, from its thumbnails when made, else its file; 4x3 when unknown."""
    made = (thumbnails or {}).get(frame)
    if made is not None:
        return made.size
    first = _open(frame, (1 << 16, 1 << 16)) if frame is not None else None
    return (first.width, first.height) if first is not None else (4, 3)


def tile_box(size: tuple[int, int], width: int) -> tuple[int, int]:
    """The box a thumbnail ``width`` wide of a frame of ``size`` (width, height) is fitted into."""
    return width, max(1, int(round(width * (size[1] / size[0]))))


@dataclass(frozen=True)
class Thumbnails:
    """A keyframe's three thumbnails (frame, mask, clean image; gray or RGB Pillow images), made while it was rendered
    from the samples and bytes in hand, as :func:`contact_sheet` would make them from the files."""

    size: tuple[int, int]
    """The frame's width and height."""
    width: int
    """The thumbnail width they were made for."""
    images: tuple


def frame_thumbnails(frame: np.ndarray, mask: np.ndarray, clean: bytes, width: int) -> Thumbnails:
    """The :class:`Thumbnails` of a keyframe from its samples, its mask's samples and its clean JPEG's bytes."""
    size = (frame.shape[1], frame.shape[0])
    box = tile_box(size, width)
    return Thumbnails(size, width, (thumbnail_of_samples(frame, box), thumbnail_of_samples(mask, box), thumbnail_of_bytes(clean, box)))


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

    samples = np.asarray(tifffile.imread(io.BytesIO(data), key=0))
    if samples.ndim == 3 and samples.shape[0] in (3, 4) and samples.shape[-1] not in (1, 2, 3, 4):
        samples = np.moveaxis(samples, 0, -1)  # planar
    return Image.fromarray(_shown(samples))


def _shown(samples: np.ndarray) -> np.ndarray:
    """8-bit gray or RGB samples to show: 16-bit scaled as ImageMagick does, alpha dropped."""
    samples = _eight_bit(samples)
    if samples.ndim == 3:
        samples = samples[:, :, 0] if samples.shape[2] in (1, 2) else samples[:, :, :3]
    return np.ascontiguousarray(samples)


TARGET_ASPECT = 16 / 9
"""The shape a sheet is laid out to approach: a screen's."""
GAP = 3 * PAD  # between keyframes (cells)
LABEL = 14  # the label's font size
INDEX_NAME = "index.jpg"
INDEX_SHOWN = 6  # keyframes shown per video on the index sheet


def grid_columns(count: int, cell: tuple[int, int], top: int = 0, target: float = TARGET_ASPECT) -> int:
    """How many columns of ``cell`` (width, height) sized cells make a sheet of ``count`` cells (with ``top``
    pixels of title above) closest to ``target`` in shape (width / height, compared by ratio)."""
    best, best_score = 1, math.inf
    for columns in range(1, max(1, count) + 1):
        rows = -(-count // columns)
        if columns > 1 and -(-count // (columns - 1)) == rows:
            continue  # as many rows with fewer columns: the same sheet, wider
        width, height = _extent(columns, rows, cell, top)
        score = abs(math.log(width / height / target))
        if score < best_score:
            best, best_score = columns, score
    return best


def _extent(columns: int, rows: int, cell: tuple[int, int], top: int) -> tuple[int, int]:
    return 2 * PAD + columns * (cell[0] + GAP) - GAP, top + rows * (cell[1] + GAP) - GAP + PAD


def _title(folder: Path, count: int) -> str:
    """The sheet's title: the video (from the folder's record, if any) and the keyframes."""
    import json

    keyframes = f"{count} keyframe{'s' if count != 1 else ''}"
    try:
        video = Path(json.loads((folder / "magicmask.json").read_text())["video"]["path"]).name
    except (OSError, ValueError, KeyError, TypeError):
        return f"{folder.resolve().name}: {keyframes}"
    return f"{video}: {keyframes} ({folder.resolve().name})"


def contact_sheet(
    folder: str | os.PathLike,
    output: str | os.PathLike | None = None,
    width: int = THUMBNAIL_WIDTH,
    progress: Callable[[Path], None] | None = None,
    frames: list[Path] | None = None,
    title: str | None = None,
    thumbnails: Mapping[Path, Thumbnails] | None = None,
) -> Path:
    """Write a contact sheet of ``folder``: every keyframe as frame | mask | clean, named, in a grid.

    The keyframes are laid out in reading order, in as many columns as make the sheet closest to a
    screen's shape (16:9), under a title naming the video; thumbnails keep ``width`` whatever the number
    of keyframes (of 4:3 frames, 68 keyframes make a sheet of 4494x2658 pixels, 400 one of 11244x5928).

    Parameters
    ----------
    folder : path
        A folder with keyframes (``t01.tiff``...) and their ``NAME-mask.tiff`` and ``NAME-clean.jpg``.
    output : path, optional
        The sheet; ``folder/sheet.jpg`` by default. ``.png`` writes PNG, anything else JPEG (quality 90).
    width : int
        Width of each thumbnail in pixels; made smaller only when the sheet would pass JPEG's 65,500 pixels.
    progress : callable, optional
        Called with each keyframe once its cell is drawn.
    frames : list of paths, optional
        The keyframes to show (a run's own); by default every keyframe TIFF of ``folder``.
    title : str, optional
        The title; by default the video the folder's record names (or the folder's name) and the count.
    thumbnails : mapping, optional
        Keyframes' :class:`Thumbnails` made while they were rendered (``magicmask run``): used instead of
        reading their files when made for this sheet's thumbnail width.

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
    title = title if title is not None else _title(folder, len(frames))
    thumbnails = thumbnails or {}
    size = _frame_size(frames[0], thumbnails)
    font, small, big = _font(LABEL), _font(12), _font(18)
    top = 18 + 12 + 4 * PAD  # title and legend
    label_height = LABEL + PAD
    while True:
        tile_height = tile_box(size, width)[1]
        cell = (len(COLUMNS) * (width + PAD) - PAD, label_height + tile_height)
        columns = grid_columns(len(frames), cell, top)
        sheet_width, sheet_height = _extent(columns, -(-len(frames) // columns), cell, top)
        if max(sheet_width, sheet_height) <= MAX_SIDE:
            break
        if width <= 16:
            raise MagicmaskError(f"{len(frames)} keyframes do not fit in one sheet", folder, "make sheets of fewer keyframes (copy some to another folder)")
        width = max(16, int(width * MAX_SIDE / max(sheet_width, sheet_height)) - 1)
    sheet = Image.new("RGB", (sheet_width, sheet_height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, PAD), title, fill=TEXT, font=big)
    draw.text((PAD, 2 * PAD + 18), "each keyframe: " + " | ".join(COLUMNS), fill=DIM, font=small)

    def cells(frame: Path) -> tuple[Path, Path, Path]:
        name = frame_name(frame)
        return frame, folder / f"{name}{MASK_SUFFIX}", folder / f"{name}{CLEAN_SUFFIX}"

    # thumbnails in threads (Pillow decodes and resamples without the GIL), a few keyframes at a time
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="magicmask-sheet") as pool:
        for start in range(0, len(frames), _ROWS_AT_ONCE):
            chunk = frames[start : start + _ROWS_AT_ONCE]
            made = [thumbnails.get(frame) for frame in chunk]
            made = [m.images if m is not None and m.width == width and m.size == size else None for m in made]
            opened = iter(pool.map(lambda path: _open(path, (width, tile_height)), [path for frame, m in zip(chunk, made) if m is None for path in cells(frame)]))
            images = iter([image for m in made for image in (m if m is not None else [next(opened) for _ in COLUMNS])])
            for number, frame in enumerate(chunk, start):
                x0 = PAD + (number % columns) * (cell[0] + GAP)
                y0 = top + (number // columns) * (cell[1] + GAP)
                draw.text((x0, y0), frame_name(frame), fill=TEXT, font=font)
                y = y0 + label_height
                for column in range(len(COLUMNS)):
                    x = x0 + column * (width + PAD)
                    _paste(sheet, draw, next(images), (x, y), (width, tile_height), small)
                if progress is not None:
                    progress(frame)
    return _save(sheet, output)


def _paste(sheet, draw, image, at: tuple[int, int], box: tuple[int, int], font) -> None:
    """A thumbnail centred in its box, or an outlined box saying "missing"."""
    (x, y), (width, height) = at, box
    if image is None:
        draw.rectangle((x, y, x + width - 1, y + height - 1), outline=DIM)
        draw.text((x + PAD, y + PAD), "missing", fill=DIM, font=font)
        return
    sheet.paste(image, (x + (width - image.width) // 2, y + (height - image.height) // 2))


def _save(sheet, output: Path) -> Path:
    buffer = io.BytesIO()
    if output.suffix.lower() == ".png":
        sheet.save(buffer, format="PNG")
    else:
        sheet.save(buffer, format="JPEG", quality=90)
    return write_atomic(output, buffer.getvalue())


def spread(count: int, shown: int) -> list[int]:
    """The indices of up to ``shown`` of ``count`` items spread evenly over them, first and last included
    (one: the middle one)."""
    if count <= shown:
        return list(range(count))
    if shown == 1:
        return [(count - 1) // 2]
    return sorted({round(i * (count - 1) / (shown - 1)) for i in range(shown)})


def index_sheet(folders: list[str | os.PathLike], output: str | os.PathLike, width: int = 160, shown: int = INDEX_SHOWN, titles: list[str] | None = None) -> Path:
    """Write the index sheet of a batch: for every video's folder, its title and the clean images of up to
    ``shown`` keyframes spread over the video, the videos laid out in a screen-shaped grid.

    A folder without keyframes (a video that failed) shows its title and "no keyframes".

    Raises
    ------
    MagicmaskError
        When ``folders`` is empty.
    """
    from PIL import Image, ImageDraw

    folders = [Path(folder) for folder in folders]
    if not folders:
        raise MagicmaskError("no video folders for an index sheet", hint="run magicmask run on several videos first")
    if shown < 1:
        raise MagicmaskError(f"an index sheet shows at least one keyframe per video, not {shown}")
    output = Path(output)
    chosen: list[list[Path]] = []
    for folder in folders:
        try:
            frames = sheet_frames(folder)
        except MagicmaskError:
            frames = []
        chosen.append([frames[i] for i in spread(len(frames), shown)])
    titles = titles or [_title(folder, len(sheet_frames(folder)) if folder.is_dir() else 0) for folder in folders]
    sample = next((frames[0] for frames in chosen if frames), None)
    font, small, big = _font(LABEL), _font(12), _font(18)
    top = 18 + 12 + 4 * PAD
    tile_height = tile_box(_frame_size(sample), width)[1]
    label_height = LABEL + PAD
    cell = (shown * (width + PAD) - PAD, label_height + tile_height)
    columns = grid_columns(len(folders), cell, top)
    sheet_width, sheet_height = _extent(columns, -(-len(folders) // columns), cell, top)
    if max(sheet_width, sheet_height) > MAX_SIDE:
        raise MagicmaskError(f"{len(folders)} videos do not fit in one index sheet", output, "make index sheets of fewer videos")
    sheet = Image.new("RGB", (sheet_width, sheet_height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, PAD), f"{len(folders)} videos", fill=TEXT, font=big)
    draw.text((PAD, 2 * PAD + 18), f"each video: the clean images of up to {shown} keyframes; its folder's sheet.jpg shows them all", fill=DIM, font=small)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="magicmask-sheet") as pool:
        for number, (folder, frames, title) in enumerate(zip(folders, chosen, titles)):
            x0 = PAD + (number % columns) * (cell[0] + GAP)
            y0 = top + (number // columns) * (cell[1] + GAP)
            draw.text((x0, y0), title, fill=TEXT, font=font)
            if not frames:
                draw.text((x0, y0 + label_height), "no keyframes", fill=DIM, font=small)
                continue
            cleans = [folder / f"{frame_name(frame)}{CLEAN_SUFFIX}" for frame in frames]
            for column, image in enumerate(pool.map(lambda path: _open(path, (width, tile_height)), cleans)):
                _paste(sheet, draw, image, (x0 + column * (width + PAD), y0 + label_height), (width, tile_height), small)
    return _save(sheet, output)
