"""Mask quality on real footage with hand-labelled ground truth: CDnet 2014 clips (issue 15).

For each clip of bench/data/cdnet (or --data): the keyframes are extracted and the median of every
frame made (``--background median --from video``); the masks are the seed's chain with the first threshold
at its default (5%), at a hand-picked 10%, ``--threshold auto`` and ``--threshold adaptive`` (the threshold
map learned with the median, :mod:`magicmask.thresholds`), beside OpenCV's KNN and MOG2 subtractors
(default settings, learning on every frame, shadows counted as background; bench-only:
``pip install opencv-python-headless``).

Scored by CDnet's rule: labels 85 (outside the region of interest) and 170 (unknown) not scored, shadow (50)
is background, a mask pixel is foreground when >= 50% (>= 128 for 8-bit masks); TP, FP, FN summed over the
scored frames: precision, recall, F-measure. Rows for the keyframes (the masks the pipeline writes, TIFF
keyframes, native engine) and for every frame (the same chain on every decoded frame, as ``video`` renders it).

Writes bench/quality_real.md and bench/quality_real.png (per clip, the keyframe where the methods disagree
most: frame | ground truth | each method's mask; white true positive, red false positive, blue missed, green
not scored).

    .venv/bin/python bench/quality_real.py [--clips fall,traffic] [--data DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from quality import opencv_masks  # noqa: E402

from magicmask.media.decode import iter_frames  # noqa: E402
from magicmask.media.extract import extract_keyframes  # noqa: E402
from magicmask.media.probe import frame_times, keyframe_times, video_info  # noqa: E402
from magicmask import thresholds  # noqa: E402
from magicmask.engines import native  # noqa: E402
from magicmask.params import MaskParams  # noqa: E402
from magicmask.statistics import make_backgrounds, mask_with_backgrounds, read_frame  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "cdnet"
OUT = HERE / "out" / "quality_real"
METHODS = ("5%", "10%", "auto", "adaptive", "knn", "mog2")
LABELS = {"5%": "`-threshold 5%` (the seed's default)", "10%": "`--threshold 10%` (hand-picked)", "auto": "`--threshold auto`", "adaptive": "`--threshold adaptive`", "knn": "OpenCV KNN", "mog2": "OpenCV MOG2"}


def counts(masks, labels) -> np.ndarray:
    """``[TP, FP, FN]`` of boolean masks against CDnet labels."""
    total = np.zeros(3, dtype=np.int64)
    for mask, label in zip(masks, labels):
        scored = (label != 85) & (label != 170)
        truth = label == 255
        total += [(mask & truth & scored).sum(), (mask & ~truth & scored).sum(), (~mask & truth & scored).sum()]
    return total


def f_measure(total) -> tuple[float, float, float]:
    tp, fp, fn = (int(v) for v in total)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return (2 * precision * recall / (precision + recall) if precision + recall else 0.0), precision, recall


def run_clip(name: str, data: Path) -> dict:
    video = data / f"{name}.mp4"
    labels = np.load(data / f"{name}-groundtruth.npz")["labels"]
    folder = OUT / name
    frames = extract_keyframes(video, folder / "frames")
    info = video_info(video)
    fps = info.frames / info.duration
    indices = [int(round(t * fps)) for t in keyframe_times(video) - frame_times(video)[0]]
    decoded = list(iter_frames(video, info=info))
    seconds = {}

    start = time.perf_counter()
    backgrounds = make_backgrounds(video, frames, folder / "median", "median", "video")
    seconds["median"] = time.perf_counter() - start
    start = time.perf_counter()
    background, limit = thresholds.median_and_map(iter(decoded), len(decoded))
    seconds["median+map"] = time.perf_counter() - start
    base = next(iter(backgrounds.values()))
    assert (read_frame(base) == background).all(), "the median made with the map differs from make_backgrounds'"
    limit_path = thresholds.write_threshold_map(limit, folder / "median" / thresholds.MAP_NAME, frames[0])
    auto = thresholds.auto_threshold(backgrounds)
    params = {"5%": MaskParams(), "10%": MaskParams("10%"), "auto": MaskParams(auto), "adaptive": MaskParams(threshold_map=str(limit_path))}
    print(f"{name}: {len(decoded)} frames, {len(frames)} keyframes; auto threshold {auto} ({int(auto) / 655.36:.2f}%); median {seconds['median']:.2f} s, median+map {seconds['median+map']:.2f} s", flush=True)

    result = {"name": name, "frames": frames, "indices": indices, "labels": labels, "decoded": decoded, "scores": {}, "masks": {}, "auto": auto, "seconds": seconds}
    picture = native.load_background(base)
    for method in METHODS:
        if method in ("knn", "mog2"):
            every = opencv_masks(video, list(range(len(decoded))), method)
            keyed = [every[i] for i in indices]
        else:
            out = folder / method.replace("%", "pct")
            outputs = mask_with_backgrounds(backgrounds, out, params[method], jobs=1)
            keyed = [read_frame(mask, "mask")[..., 0] >= 128 for mask, _ in outputs]
            every = [native.foreground(picture, native.Picture(frame), params[method])[0][..., 0] >= 128 for frame in decoded]
        result["masks"][method] = keyed
        result["scores"][method] = {"keyframes": f_measure(counts(keyed, labels[indices])), "every frame": f_measure(counts(every, labels))}
        k, e = result["scores"][method]["keyframes"], result["scores"][method]["every frame"]
        print(f"  {method:9s} keyframes F {k[0]:.3f} (P {k[1]:.3f} R {k[2]:.3f})   every frame F {e[0]:.3f} (P {e[1]:.3f} R {e[2]:.3f})", flush=True)
    return result


def coloured(mask: np.ndarray, label: np.ndarray) -> np.ndarray:
    scored = (label != 85) & (label != 170)
    truth = label == 255
    out = np.zeros(mask.shape + (3,), np.uint8)
    out[mask & truth & scored] = (255, 255, 255)
    out[mask & ~truth & scored] = (230, 40, 40)
    out[~mask & truth & scored] = (40, 80, 255)
    out[~scored] = (0, 70, 0)
    return out


def picture(results: list[dict], path: Path, width: int = 240) -> Path:
    import cv2

    rows = []
    for result in results:
        per = []
        for method in METHODS:
            per.append([f_measure(counts([m], [result["labels"][i]]))[0] for m, i in zip(result["masks"][method], result["indices"])])
        pick = int(np.argmax(np.array(per).std(axis=0)[1:])) + 1
        index = result["indices"][pick]
        label = result["labels"][index]
        tiles = [result["decoded"][index], np.repeat(label[..., None], 3, axis=2)] + [coloured(result["masks"][m][pick], label) for m in METHODS]
        names = ["frame", "ground truth", *METHODS]
        height = int(round(label.shape[0] * width / label.shape[1]))
        row = []
        for column, (image, text) in enumerate(zip(tiles, names)):
            small = cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_AREA)
            small[:, -1] = 128
            caption = text if column < 2 else f"{text} F {per[column - 2][pick]:.2f}"
            cv2.putText(small, caption, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
            row.append(small)
        title = np.full((22, width * len(tiles), 3), 255, np.uint8)
        cv2.putText(title, f"{result['name']}: video frame {index} (keyframe {result['frames'][pick].name})", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        rows += [title, np.hstack(row)]
    cv2.imwrite(str(path), np.ascontiguousarray(np.vstack(rows)[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path


def table(results: list[dict]) -> str:
    lines = ["| method | " + " | ".join(f"{r['name']} {scope}" for r in results for scope in ("keyframes", "every frame")) + " |", "|---|" + "---|" * (2 * len(results))]
    for method in METHODS:
        cells = []
        for r in results:
            for scope in ("keyframes", "every frame"):
                f, p, rc = r["scores"][method][scope]
                cells.append(f"**{f:.3f}** (P {p:.2f}, R {rc:.2f})")
        label = LABELS[method] + (" = " + ", ".join(f"{r['name']} `-threshold {r['auto']}`" for r in results) if method == "auto" else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="fall,traffic", help="comma-separated clip names")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of NAME.mp4 and NAME-groundtruth.npz")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = [run_clip(name, args.data) for name in args.clips.split(",")]
    text = table(results)
    print()
    print(text)
    png = picture(results, HERE / "quality_real.png")
    timing = "\n".join(f"| {r['name']} | {r['seconds']['median']:.2f} | {r['seconds']['median+map']:.2f} |" for r in results)
    (HERE / "quality_real.md").write_text(f"""# Mask quality on real footage (CDnet 2014)

Made by `bench/quality_real.py` on {', '.join(r['name'] for r in results)} (see bench/data/cdnet/README.md: H.264 crf 12,
101 frames, a keyframe every 5). Background: the median of every frame (`--background median --from video`) for every
magicmask row; the masks are the seed's chain (native engine, identical to `convert`) with the first threshold as named.
OpenCV's subtractors: default settings, learning on every frame, shadow output counted as background. Scored by CDnet's rule
(85 and 170 not scored, shadow 50 = background, mask >= 50% = foreground), TP/FP/FN summed over the frames: F-measure
(precision, recall).

{text}

![per clip, the keyframe where the methods disagree most: white true positive, red false positive, blue missed, green not scored](quality_real.png)

Seconds taken here (101 frames, all of them held by the median; shared 2-core machine): the median background
through `make_backgrounds` (decoding included), and the median with its threshold map from already decoded frames.
What the map costs beside the median on the same frames, side by side: `bench/bench_threshold_map.py`.

| clip | median (make_backgrounds) | median + map (median_and_map) |
|---|---|---|
{timing}

{time.perf_counter() - start:.0f} s in all. The same thresholds on the generated scenes: `bench/quality.py --methods
median,median-auto,median-adaptive,median-span,median-span-auto,median-span-adaptive` (figures in README.md).
""")
    print(f"wrote {HERE / 'quality_real.md'} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
