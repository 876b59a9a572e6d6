"""Mask quality of every background method, by IoU against the ground truth of generated scenes (issue 9).

For each scene of :data:`magicmask.scenes.SCENES` (1280x720, 25 fps, H.264): the video is written, its
keyframes extracted, and for each method the backgrounds made (:func:`magicmask.statistics.make_backgrounds`)
and the masks of every keyframe made by the seed's own chain (:func:`magicmask.statistics.mask_with_backgrounds`
with the default engine, identical to ``convert``; ``--engine wand`` runs ImageMagick itself). OpenCV's KNN
and MOG2 subtractors (bench-only: ``pip install opencv-python-headless``) see every decoded frame and are
read at the keyframes.

Score: IoU of (mask > 50%) with the true figures, per keyframe (1 when both are empty), mean over keyframes.
Writes bench/quality.md (the table) and bench/quality.png (per scene, the keyframe, past the first, where the
methods disagree most: frame | true mask | the mask of each method). The first row masks each keyframe with its
true background (the scene without figures): the best the seed's chain can do on that figure.

    .venv/bin/python bench/quality.py [--scenes sweep,linger] [--size 1280x720] [--jobs N] [--engine E] [--fresh]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from magicmask.media.decode import iter_frames  # noqa: E402
from magicmask.media.extract import extract_keyframes  # noqa: E402
from magicmask.media.probe import keyframe_times  # noqa: E402
from magicmask.engines import DEFAULT_ENGINE, ENGINES  # noqa: E402
from magicmask import thresholds  # noqa: E402
from magicmask.params import MaskParams  # noqa: E402
from magicmask.scenes import SCENES, Scene  # noqa: E402
from magicmask.statistics import background_path, make_backgrounds, mask_with_backgrounds, read_frame, write_background  # noqa: E402

OUT = HERE / "out" / "quality"

# name: (label, make_backgrounds options); None marks an OpenCV subtractor
METHODS = {
    "true": ("the true background of each keyframe (the chain's ceiling)", "true"),
    "first": ("first frame (seed)", dict(method="first", source="keyframes")),
    "lighten": ("lighten of keyframes (seed)", dict(method="lighten", source="keyframes")),
    "median-kf": ("median of keyframes", dict(method="median", source="keyframes")),
    "mean": ("mean of every frame", dict(method="mean", source="video")),
    "median": ("median of every frame", dict(method="median", source="video")),
    "median-w4": ("median of frames within +-2 s of each keyframe (`--window 4`)", dict(method="median", source="video", window=4)),
    "median-x": ("median of every frame, `--match-exposure`", dict(method="median", source="video", match_exposure=True)),
    "median-w4-x": ("median within +-2 s, `--match-exposure`", dict(method="median", source="video", window=4, match_exposure=True)),
    "median-span": ("median of the frames in the spans where no figure stands still (`--span 0-2 --span 8-` on the stop scene; every frame elsewhere)", dict(method="median", source="video", spans="scene")),
    "median-auto": ("median of every frame, `--threshold auto`", dict(method="median", source="video", threshold="auto")),
    "median-adaptive": ("median of every frame, `--threshold adaptive` (its threshold map)", dict(method="median", source="video", threshold="adaptive")),
    "median-span-auto": ("as median-span, `--threshold auto`", dict(method="median", source="video", spans="scene", threshold="auto")),
    "median-span-adaptive": ("as median-span, `--threshold adaptive`", dict(method="median", source="video", spans="scene", threshold="adaptive")),
    "knn": ("OpenCV KNN subtractor (every frame)", None),
    "mog2": ("OpenCV MOG2 subtractor (every frame)", None),
}


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(predicted, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(predicted, truth).sum() / union)


def opencv_masks(video: Path, indices: list[int], kind: str) -> list[np.ndarray]:
    """Foreground (255, shadows excluded) of OpenCV's subtractor at the given frame indices, default settings."""
    import cv2

    subtractor = cv2.createBackgroundSubtractorKNN() if kind == "knn" else cv2.createBackgroundSubtractorMOG2()
    wanted = set(indices)
    found = {}
    for index, frame in enumerate(iter_frames(video)):
        mask = subtractor.apply(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV takes BGR
        if index in wanted:
            found[index] = mask > 127
            if len(found) == len(wanted):
                break
    return [found[i] for i in indices]


def learned_backgrounds(video: Path, frames: list[Path], out: Path, threshold: str | None = None, **options) -> tuple[dict, MaskParams]:
    """``make_backgrounds``, and the mask parameters of ``threshold``: the default (None), ``auto`` (from the
    keyframes against their backgrounds) or ``adaptive`` (the median and its threshold map, learned by
    ``make_backgrounds`` from the frames the median holds, as ``run --threshold adaptive`` does; one map for the
    run)."""
    if threshold != "adaptive":
        backgrounds = make_backgrounds(video, frames, out, **options)
        return backgrounds, MaskParams(thresholds.auto_threshold(backgrounds)) if threshold == "auto" else MaskParams()
    maps: dict = {}
    backgrounds = make_backgrounds(video, frames, out, maps=maps, **options)
    limits = set(maps.values())
    assert len(limits) == 1, "one map for the run (no window)"
    return backgrounds, MaskParams(threshold_map=str(limits.pop()))


def run_scene(scene: Scene, jobs: int | None, fresh: bool, methods: list[str], engine: str) -> dict:
    folder = OUT / f"{scene.name}-{scene.width}x{scene.height}"
    video = folder / "scene.mp4"
    if fresh and folder.exists():
        shutil.rmtree(folder)
    start = time.perf_counter()
    if not video.exists():
        scene.write(video)
    frames = extract_keyframes(video, folder / "frames")
    indices = [int(round(t * scene.fps)) for t in keyframe_times(video)]
    truths = [scene.truth(i) for i in indices]
    print(f"{scene.name}: {scene.count} frames, {len(frames)} keyframes, made in {time.perf_counter() - start:.1f} s", flush=True)
    result = {"scene": scene, "frames": frames, "truths": truths, "scores": {}, "per_keyframe": {}, "masks": {}, "seconds": {}}
    for name in methods:
        label, options = METHODS[name]
        start = time.perf_counter()
        if options is None:
            masks = opencv_masks(video, indices, name)
        else:
            out = folder / name
            if out.exists():
                shutil.rmtree(out)
            if options == "true":
                backgrounds = {f: write_background(scene.background(i), background_path(f, out), frames[0]) for f, i in zip(frames, indices)}
                params = MaskParams()
            else:
                if options.get("spans") == "scene":
                    options = {**options, "spans": scene.spans}
                backgrounds, params = learned_backgrounds(video, frames, out, jobs=jobs, engine=engine, **options)
            outputs = mask_with_backgrounds(backgrounds, out, params, jobs=jobs, engine=engine)
            masks = [read_frame(mask, "mask")[..., 0] > 127 for mask, _ in outputs]
        scores = [iou(m, t) for m, t in zip(masks, truths)]
        result["per_keyframe"][name] = scores
        result["scores"][name] = float(np.mean(scores))
        result["masks"][name] = masks
        result["seconds"][name] = time.perf_counter() - start
        print(f"  {name:12s} IoU {result['scores'][name]:.3f}  ({result['seconds'][name]:.1f} s)", flush=True)
    return result


def picture(results: list[dict], methods: list[str], path: Path, tile: tuple[int, int] = (192, 108)) -> Path:
    """Per scene, one row: frame | true mask | mask of each method, at the keyframe where methods disagree most."""
    import cv2

    width, height = tile
    label_h = 34
    rows = []
    header = np.full((label_h, width * (len(methods) + 2), 3), 255, np.uint8)
    for column, text in enumerate(["frame", "true mask", *methods]):
        cv2.putText(header, text, (column * width + 6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    rows.append(header)
    for result in results:
        per = np.array([result["per_keyframe"][m] for m in methods])  # methods x keyframes
        spread = per.std(axis=0)
        spread[0] = -1  # not the first keyframe: there the first frame and the subtractors fail trivially
        pick = int(np.argmax(spread)) if per.shape[1] > 1 else 0
        frame = read_frame(result["frames"][pick])
        tiles = [frame, result["truths"][pick]] + [result["masks"][m][pick] for m in methods]
        row = []
        for column, image in enumerate(tiles):
            if image.dtype == bool:
                image = np.repeat((image * 255).astype(np.uint8)[..., None], 3, axis=2)
            small = cv2.resize(np.ascontiguousarray(image), tile, interpolation=cv2.INTER_AREA)
            small[:, -1] = 128
            if column >= 2:
                score = per[column - 2, pick]
                cv2.putText(small, f"{score:.2f}", (6, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 64, 64), 1, cv2.LINE_AA)
            row.append(small)
        caption = np.full((22, width * len(tiles), 3), 255, np.uint8)
        cv2.putText(caption, f"{result['scene'].name}: {result['scene'].title}, keyframe {result['frames'][pick].name}", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        rows += [caption, np.hstack(row)]
    image = np.vstack(rows)
    cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path


def table(results: list[dict], methods: list[str]) -> str:
    scenes = [r["scene"] for r in results]
    lines = ["| background | name | " + " | ".join(s.title for s in scenes) + " |", "|---|---|" + "---|" * len(scenes)]
    for name in methods:
        cells = [f"{r['scores'][name]:.3f}".lstrip("0") for r in results]
        lines.append(f"| {METHODS[name][0]} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default=",".join(SCENES), help="comma-separated scene names")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated method names")
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the scenes")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes for the masks (all cores by default)")
    parser.add_argument("--fresh", action="store_true", help="regenerate the videos")
    parser.add_argument("--engine", default=DEFAULT_ENGINE, choices=ENGINES, help="the engine running the mask chain")
    parser.add_argument("--real", action="store_true", help="then the real-footage rows: bench/quality_real.py on the CDnet clips (quality_real.md, .png)")
    args = parser.parse_args(argv)
    width, height = map(int, args.size.lower().split("x"))
    methods = args.methods.split(",")
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = []
    for name in args.scenes.split(","):
        scene = SCENES[name]
        if (width, height) != (scene.width, scene.height):
            scene = scene.resized(width, height)
        results.append(run_scene(scene, args.jobs, args.fresh, methods, args.engine))
    elapsed = time.perf_counter() - start
    text = table(results, methods)
    print()
    print(text)
    print(f"\n{elapsed:.0f} s in all")
    png = picture(results, methods, HERE / "quality.png")
    timing = "\n".join(
        f"| {r['scene'].name} | {r['scene'].count} | {len(r['frames'])} | " + " | ".join(f"{r['seconds'][m]:.1f}" for m in methods) + " |"
        for r in results
    )
    report = f"""# Mask quality by background method

Made by `bench/quality.py` ({width}x{height}, 25 fps, H.264 crf 18; generated scenes, nothing downloaded). Every mask
is the seed's chain (engine `{args.engine}`, identical to `convert`) run on the keyframes, with the background the method
made; OpenCV's subtractors (default settings, shadows not counted) see every frame. Score: IoU of (mask > 50%) with the true
figure shape, mean over keyframes (a keyframe where both are empty scores 1). The first row masks each keyframe
with its true background (the scene without the figures, rendered, not encoded): the best the seed's chain (its
thresholds and blurs) can do on these figures, so the ceiling for every background.

{text}

The scenes (`magicmask/scenes.py`): a textured cut-out figure (a clothed person's proportions) walking over the sample's stone wall. "Brightness drifting
+-6%" adds 0.06 * sin(2 pi t / 10 s) of full scale to every pixel. Ours: two figures crossing with camera noise (Gaussian,
sigma 2% of full scale per pixel and frame); a light brightening the right third of the frame by up to 15% over the
video; a figure standing still for 6 of 10 seconds.

![frame, true mask and the mask of each method at one keyframe per scene](quality.png)

Seconds per method (backgrounds and masks of every keyframe, {args.jobs or 'all'} worker(s); shared 2-core machine),
total {elapsed:.0f} s:

| scene | frames | keyframes | {' | '.join(methods)} |
|---|---|---|{'---|' * len(methods)}
{timing}
"""
    (HERE / "quality.md").write_text(report)
    print(f"wrote {HERE / 'quality.md'} and {png}")
    if args.real:  # real footage with hand-labelled ground truth, scored by CDnet's rule
        import quality_real

        quality_real.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
