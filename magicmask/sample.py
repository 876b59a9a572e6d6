"""A built-in sample video: a figure moving over a still, textured scene, made at run time.

Nothing is downloaded: frames are drawn with NumPy and encoded by ffmpeg (H.264). The first
frame shows the empty scene (the blog's "lucky" case), then a dark figure walks across with
swinging arms, so both of the blog's backgrounds (first frame, lighten) make sense on it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from magicmask.media import encode as keyframes
from magicmask.files import atomic_path


def scene(width: int, height: int, seed: int = 7) -> np.ndarray:
    """A still, textured scene: a lit wall of uneven stones over a floor, as float RGB in 0..1."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / width, y / height
    # stones: a brick-like grid with jittered joints and a tone per stone
    rows = max(4, height // 24)
    row = np.floor(v * rows)
    offset = (row % 2) * 0.5
    cols = max(4, width // 40)
    col = np.floor(u * cols + offset)
    tone = rng.uniform(0.55, 0.9, size=(rows + 1, cols + 2))[row.astype(int), col.astype(int)]
    fu, fv = (u * cols + offset) % 1.0, (v * rows) % 1.0
    joint = np.minimum(np.minimum(fu, 1 - fu) * width / cols, np.minimum(fv, 1 - fv) * height / rows)
    mortar = np.clip(joint / 2.0, 0, 1)
    grain = rng.normal(0, 0.035, size=(height, width))
    light = 0.75 + 0.25 * np.exp(-(((u - 0.3) / 0.5) ** 2 + ((v - 0.2) / 0.6) ** 2))
    wall = (0.35 + (tone - 0.35) * mortar + grain) * light
    image = np.stack([wall * 1.0, wall * 0.9, wall * 0.78], axis=-1)
    floor = v > 0.8
    boards = 0.45 + 0.08 * np.sin(u * 60.0) + rng.normal(0, 0.02, size=(height, width))
    image[floor] = np.stack([boards * 0.8, boards * 0.62, boards * 0.45], axis=-1)[floor]
    return np.clip(image, 0, 1)


def ellipse(y, x, cy, cx, ry, rx):
    """Inside the ellipse centred on (cy, cx) with radii (ry, rx)."""
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def limb(y, x, y0, x0, y1, x1, width):
    """A thick segment from (y0, x0) to (y1, x1)."""
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((y - y0) * dy + (x - x0) * dx) / max(dy * dy + dx * dx, 1e-9), 0, 1)
    return (y - (y0 + t * dy)) ** 2 + (x - (x0 + t * dx)) ** 2 <= width * width


def figure_mask(width: int, height: int, t: float) -> np.ndarray:
    """Where the figure is at time ``t`` in 0..1: off-screen at 0, walking left to right."""
    shape = np.zeros((height, width), dtype=bool)
    s = height / 240.0
    cx = -40 * s + t * (width + 80 * s)
    cy = height * 0.5
    # draw only inside the figure's bounding box
    x0, x1 = max(0, int(cx - 50 * s)), min(width, int(cx + 50 * s) + 1)
    y0, y1 = max(0, int(cy - 80 * s)), min(height, int(cy + 100 * s) + 1)
    if x0 >= x1 or y0 >= y1:
        return shape
    y, x = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    swing = np.sin(t * 7 * np.pi + 0.9)
    part = ellipse(y, x, cy - 62 * s, cx, 13 * s, 11 * s)  # head
    part |= ellipse(y, x, cy - 10 * s, cx, 38 * s, 17 * s)  # torso
    part |= limb(y, x, cy - 35 * s, cx, cy + 5 * s, cx + 32 * s * swing, 6 * s)  # arms
    part |= limb(y, x, cy - 35 * s, cx, cy - 5 * s, cx - 30 * s * swing, 6 * s)
    part |= limb(y, x, cy + 20 * s, cx, cy + 85 * s, cx + 20 * s * swing, 8 * s)  # legs
    part |= limb(y, x, cy + 20 * s, cx, cy + 85 * s, cx - 20 * s * swing, 8 * s)
    shape[y0:y1, x0:x1] = part
    return shape


def frames(width: int, height: int, count: int, seed: int = 7, scale: int = 255, dtype=np.uint8):
    """Yield ``count`` frames as integer RGB arrays in 0..``scale``."""
    still = np.round(scene(width, height, seed) * scale).astype(dtype)
    clothes = np.round(np.array([0.12, 0.1, 0.16]) * scale).astype(dtype)
    for index in range(count):
        t = index / max(count - 1, 1)
        image = still.copy()
        if index > 0:
            image[figure_mask(width, height, t)] = clothes
        yield image


def make_sample_video(
    path: str | os.PathLike,
    width: int = 320,
    height: int = 240,
    count: int = 60,
    keyint: int = 10,
    fps: int = 25,
    deep: bool = False,
) -> Path:
    """Write the sample video to ``path`` (H.264 in MP4; 10-bit 4:2:0 when ``deep``).

    With ``count`` frames and a keyframe every ``keyint`` frames, the video has
    ``ceil(count / keyint)`` keyframes.
    """
    dtype, pix_fmt, scale = (np.uint16, "rgb48le", 65535) if deep else (np.uint8, "rgb24", 255)
    raw = (frame.tobytes() for frame in frames(width, height, count, scale=scale, dtype=dtype))
    with atomic_path(path) as tmp:
        keyframes.encode_raw_video(raw, tmp, width, height, pix_fmt, fps, keyint, deep)
    return Path(path)
