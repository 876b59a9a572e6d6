"""Generated scenes with a known ground truth, to measure how good a background is (bench/quality.py).

Each scene is the sample's stone wall (:func:`magicmask.sample.scene`) with one or more textured
cut-out figures moving over it, and optionally what makes backgrounds hard: a brightness drift (an
offset added to every pixel, ``+-amplitude`` of full scale), a light that changes in one part of the
frame only, camera noise, a figure that stops. Nothing is downloaded: frames are drawn with NumPy and
encoded by ffmpeg (H.264) through :func:`magicmask.media.encode.encode_raw_video`.

``Scene.frame(i)`` is frame ``i`` as 8-bit RGB, ``Scene.truth(i)`` where the figures are in it.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from magicmask.media import encode as keyframes
from magicmask.files import atomic_path
from magicmask.sample import ellipse, limb, scene as wall

Path2D = Callable[[float], tuple[float, float]]
"""``path(t)``: the figure's centre at ``t`` seconds, as fractions of the frame's width and height."""


@dataclass(frozen=True)
class Figure:
    """A textured cut-out of a walking person: ``path`` moves it, ``size`` is its height / frame height.

    Its proportions are a clothed person's (a coat's body, sleeves and trousers), as a photo cut-out has:
    the blog's chain loses a band of about two pixels around every edge to its blurs, so thin limbs would
    cap every background's score well below the issue's figures (IoU .925 with the true background for
    stick-thin limbs, .95 for these).
    """

    path: Path2D
    size: float = 0.62
    palette: tuple = ((0.78, 0.58, 0.47), (0.62, 0.52, 0.40), (0.16, 0.20, 0.34))  # skin, shirt (close to the wall), trousers
    step: float = 1.6  # walking cycles per second (arms and legs)
    seed: int = 1

    def draw(self, height: int, width: int, t: float) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
        """``(rows, cols, shape, colours)`` of the figure at ``t``: a bounding box, its mask and RGB inside it."""
        fx, fy = self.path(t)
        s = self.size * height / 180.0  # the figure is 180 units tall
        cx, cy = fx * width, fy * height
        x0, x1 = max(0, int(cx - 50 * s)), min(width, int(cx + 50 * s) + 2)
        y0, y1 = max(0, int(cy - 92 * s)), min(height, int(cy + 96 * s) + 2)
        if x0 >= x1 or y0 >= y1:
            return None
        y, x = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        u, v = (x - cx) / s, (y - cy) / s  # figure units, centre at the waist
        swing = math.sin(2 * math.pi * self.step * t)
        head = ellipse(u, v, 0, -70, 12, 14)
        torso = ellipse(u, v, 0, -22, 28, 42)
        arms = limb(u, v, 0, -48, 32 * swing, -8, 10) | limb(u, v, 0, -48, -30 * swing, -10, 10)
        legs = limb(u, v, 0, 8, 18 * swing, 80, 15) | limb(u, v, 0, 8, -18 * swing, 80, 15)
        shape = head | torso | arms | legs
        if not shape.any():
            return None
        skin, shirt, trousers = (np.asarray(c, dtype=np.float64) for c in self.palette)
        colours = np.empty(shape.shape + (3,))
        colours[...] = trousers
        upper = torso | arms
        colours[upper] = shirt
        colours[head] = skin
        # a photo's texture: folds and shading that move with the figure
        rng = np.random.default_rng(self.seed)
        a, b, c = rng.uniform(0.05, 0.12, size=3)
        shade = 1.0 + 0.18 * np.sin(u * a * 3 + v * b) * np.cos(v * c * 2) - 0.12 * (u / 45.0)
        stripes = 1.0 + 0.10 * (np.sin(v * 0.9 + u * 0.2) > 0.6) * upper
        colours *= (shade * stripes)[..., None]
        return slice(y0, y1), slice(x0, x1), shape, np.clip(colours, 0, 1)


@dataclass(frozen=True)
class Scene:
    """A generated video with ground truth.

    Parameters
    ----------
    name, title : str
        A short name (file names) and what happens (tables).
    seconds, fps, keyint : float, int, int
        Length, frame rate, and frames between keyframes.
    figures : tuple of Figure
    drift : (amplitude, period)
        Brightness offset ``amplitude * sin(2 pi t / period)`` of full scale added to every pixel.
    lamp : float
        A light in the right third of the frame brightening from 0 to ``lamp`` of full scale over the video.
    noise : float
        Camera noise: Gaussian, this standard deviation (of full scale) per pixel, channel and frame.
    spans : tuple of (start, end)
        The parts of the video in which no figure stands still, in seconds: what someone who has watched it
        would pass to ``--span`` (empty: the whole video).
    """

    name: str
    title: str
    seconds: float
    figures: tuple[Figure, ...]
    fps: int = 25
    keyint: int = 25
    drift: tuple[float, float] = (0.0, 1.0)
    lamp: float = 0.0
    noise: float = 0.0
    spans: tuple[tuple[float, float], ...] = ()
    width: int = 1280
    height: int = 720
    seed: int = 7
    notes: str = field(default="", compare=False)

    @property
    def count(self) -> int:
        return int(round(self.seconds * self.fps))

    def resized(self, width: int, height: int) -> "Scene":
        """The same scene at another size (e.g. small for tests)."""
        from dataclasses import replace

        return replace(self, width=width, height=height)

    @functools.cached_property
    def _wall(self) -> np.ndarray:
        return wall(self.width, self.height, self.seed)

    @functools.cached_property
    def _lamp_shape(self) -> np.ndarray:
        u = np.linspace(0, 1, self.width)[None, :]
        v = np.linspace(0, 1, self.height)[:, None]
        return np.exp(-(((u - 0.85) / 0.14) ** 2 + ((v - 0.45) / 0.45) ** 2))[..., None]

    def time(self, index: int) -> float:
        return index / self.fps

    def truth(self, index: int) -> np.ndarray:
        """Where any figure is in frame ``index`` (bool, ``height x width``)."""
        mask = np.zeros((self.height, self.width), dtype=bool)
        for figure in self.figures:
            drawn = figure.draw(self.height, self.width, self.time(index))
            if drawn is not None:
                rows, cols, shape, _ = drawn
                mask[rows, cols] |= shape
        return mask

    def background(self, index: int) -> np.ndarray:
        """The true background of frame ``index``, 8-bit RGB: the frame without figures and noise."""
        return self._render(index, figures=False, noise=False)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as 8-bit RGB (``height x width x 3``)."""
        return self._render(index)

    def _render(self, index: int, figures: bool = True, noise: bool = True) -> np.ndarray:
        t = self.time(index)
        image = self._wall.copy()
        if self.lamp:
            image += self.lamp * (t / max(self.seconds, 1e-9)) * self._lamp_shape
        for figure in self.figures if figures else ():
            drawn = figure.draw(self.height, self.width, t)
            if drawn is not None:
                rows, cols, shape, colours = drawn
                image[rows, cols][shape] = colours[shape]
        amplitude, period = self.drift
        if amplitude:
            image += amplitude * math.sin(2 * math.pi * t / period)
        if self.noise and noise:
            image += np.random.default_rng((self.seed, index)).normal(0, self.noise, size=image.shape)
        return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)

    def write(self, path: str | os.PathLike) -> Path:
        """Encode the scene to ``path`` (H.264 MP4, a keyframe every ``keyint`` frames), atomically."""
        chunks = (self.frame(index).tobytes() for index in range(self.count))
        with atomic_path(path) as tmp:
            keyframes.encode_raw_video(chunks, tmp, self.width, self.height, "rgb24", self.fps, self.keyint)
        return Path(path)


def _sweep(start: float, end: float, t0: float, t1: float, y: float = 0.52) -> Path2D:
    def path(t: float) -> tuple[float, float]:
        f = min(max((t - t0) / (t1 - t0), 0.0), 1.0)
        return start + (end - start) * f, y

    return path


def _linger_then_sweep(t: float) -> tuple[float, float]:
    if t < 5.0:
        return 0.24 + 0.11 * math.sin(math.pi * t), 0.52  # paces to and fro for 5 s, back at the start every 2 s
    return _sweep(0.24, 0.9, 5.0, 12.0)(t)


def _stop(t: float) -> tuple[float, float]:
    if t < 2.0:
        return _sweep(-0.05, 0.45, 0.0, 2.0)(t)
    if t < 8.0:
        return 0.45 + 0.004 * math.sin(2 * math.pi * t / 3.0), 0.52  # stands, swaying a little
    return _sweep(0.45, 1.05, 8.0, 10.0)(t)


SWEEP = Figure(_sweep(0.1, 0.9, 0.0, 10.0))

SCENES = {
    "sweep": Scene("sweep", "figure sweeps (25 keyframes)", 10.0, (SWEEP,), keyint=10),
    "linger": Scene("linger", "figure lingers 5 s, then sweeps (6 keyframes)", 12.0, (Figure(_linger_then_sweep),), keyint=50),
    "drift": Scene("drift", "same as the first, brightness drifting +-6%", 10.0, (SWEEP,), keyint=10, drift=(0.06, 10.0)),
    "crowd": Scene(
        "crowd", "two figures cross, camera noise (ours)", 10.0,
        (Figure(_sweep(0.05, 0.8, 0.0, 10.0)), Figure(_sweep(0.95, 0.15, 0.0, 10.0, 0.56), size=0.5, seed=2, step=2.1,
                                                        palette=((0.55, 0.40, 0.32), (0.20, 0.45, 0.30), (0.35, 0.30, 0.28)))),
        noise=0.02,
    ),
    "lamp": Scene("lamp", "a light brightens one part of the frame (ours)", 10.0, (Figure(_sweep(0.1, 0.9, 0.0, 10.0)),), lamp=0.15),
    "stop": Scene("stop", "figure stands still for 6 s of 10 (ours)", 10.0, (Figure(_stop),), spans=((0.0, 2.0), (8.0, 10.0))),
}
"""The bench's scenes: the three of issue 9's table, then ours."""
