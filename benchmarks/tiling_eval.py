"""Tiled inference against plain resizing: how many small problems each finds in large frames, and at what cost.

Not a test: it prints numbers (docs/drone.md records them). Each frame is a mosaic of real street
photos (tests/drone_scenes.py) with real problem photos pasted in at known places and sizes:
fire photos and overflowing-bin photos from the shared sets, each one the shipped model finds
when it sees the photo alone, so what is measured is the effect of scale, not the model's
recall. A pasted problem counts as found when a problem of its type has its box centre inside
the pasted photo. Problems elsewhere are counted as "other": the backgrounds hold real bins and
street clutter the model sometimes flags, so these are not all false alarms, but their rise
with tiling is the price of looking closer.

    python benchmarks/tiling_eval.py --frames 12 --width 4000 --height 3000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from drone_scenes import DATASETS, FIRES, background, paste  # noqa: E402

from model.images import load_image_file  # noqa: E402
from model.registry import promoted_model  # noqa: E402
from model.runtime import Detector  # noqa: E402
from model.tiling import detect_images  # noqa: E402

SIDES = (96, 160, 256, 400)
"""Longer side of a pasted problem photo, in frame pixels."""
OVERFLOWING = DATASETS / "garbage-cn" / "valid"


def found_alone(detector: Detector, photos: list[Path], kind: str, count: int) -> list[Path]:
    """The first `count` photos in which the model, seeing each alone, raises a `kind` problem."""
    chosen = []
    for photo in photos:
        if any(p.type == kind for p in detector.problems(detector.detect([load_image_file(photo).pixels])[0])):
            chosen.append(photo)
        if len(chosen) == count:
            break
    return chosen


def overflow_photos() -> list[Path]:
    """garbage-cn validation photos with an `overflow` (class 2) box."""
    return [
        OVERFLOWING / "images" / f"{label.stem}.jpg"
        for label in sorted((OVERFLOWING / "labels").glob("*.txt"))
        if any(line.split()[:1] == ["2"] for line in label.read_text().splitlines())
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the promoted one)")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    model = args.model or promoted_model()
    detector = Detector.load(model)
    problems = [("burning", p) for p in found_alone(detector, sorted(FIRES.glob("*.jpg")), "burning", 8)]
    problems += [("overflowing_garbage", p) for p in found_alone(detector, overflow_photos(), "overflowing_garbage", 8)]
    cells = [(kind, side) for kind in ("burning", "overflowing_garbage") for side in SIDES]
    found = {mode: dict.fromkeys(cells, 0) for mode in ("off", "auto")}
    pasted = dict.fromkeys(found["off"], 0)
    other = dict.fromkeys(found, 0)
    seconds = dict.fromkeys(found, 0.0)
    for index in range(args.frames):
        frame = background(args.width, args.height, first=index * 5)
        truth = []
        for row, side in enumerate(SIDES):  # one problem per size, each in its own band of the frame
            kind, photo = rng.choice(problems)
            band = args.height // len(SIDES)
            x = rng.randrange(0, args.width - side)
            y = min(row * band + rng.randrange(0, max(1, band - side)), args.height - side)
            truth.append((kind, side, paste(frame, photo, side, x, y)))
            pasted[(kind, side)] += 1
        for mode in found:
            start = time.perf_counter()
            raised = detector.problems(detect_images(detector, [frame], mode=mode, aerial=[True])[0])  # drone frames
            seconds[mode] += time.perf_counter() - start
            hit = np.zeros(len(raised), bool)
            for kind, side, (x1, y1, x2, y2) in truth:
                centres = [((p.box[0] + p.box[2]) / 2, (p.box[1] + p.box[3]) / 2) for p in raised]
                inside = [
                    i
                    for i, (p, (cx, cy)) in enumerate(zip(raised, centres, strict=True))
                    if p.type == kind and x1 <= cx <= x2 and y1 <= cy <= y2
                ]
                found[mode][(kind, side)] += bool(inside)
                hit[inside] = True
            other[mode] += int((~hit).sum())

    size = f"{args.width}x{args.height}"
    print(f"{args.frames} frames of {size}, {sum(pasted.values())} pasted problems, model {model.name}, CPU")
    print(f"{'problem':<20} {'side px':>7} {'pasted':>6} {'resized':>8} {'tiled':>6}")
    for (kind, side), count in pasted.items():
        if count:
            print(f"{kind:<20} {side:7d} {count:6d} {found['off'][(kind, side)]:8d} {found['auto'][(kind, side)]:6d}")
    total = sum(pasted.values())
    for mode, name in (("off", "resized"), ("auto", "tiled")):
        recall, extra, cost = sum(found[mode].values()) / total, other[mode] / args.frames, seconds[mode] / args.frames
        print(f"{name:<8} recall {recall:6.1%}   other problems per frame {extra:5.1f}   seconds per frame {cost:6.2f}")


if __name__ == "__main__":
    main()
