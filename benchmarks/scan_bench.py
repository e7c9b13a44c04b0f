"""Whole-process speed of `envwatch scan` with and without the photo classifier, against `yolo predict`.

Not a test: it prints numbers. Three commands read the same folder of real photos, each a fresh
process as a user runs it (start-up, decoding, the networks, writing results):

- `envwatch scan` with the promoted model (detector and photo classifier, fusion), once per
  runtime asked for (`--runtime`, ENVWATCH_RUNTIME: model/networks.py);
- `envwatch scan` with the model's detector alone (its graph taken out of the file);
- Ultralytics' `yolo predict` on that detector ONNX, saving nothing.

They alternate round by round, so a busy machine slows all alike: compare the ratios. Needs the
`train` extra (Ultralytics).

    python benchmarks/scan_bench.py --images 200 --rounds 2
    python benchmarks/scan_bench.py --images 60 --rounds 2 --megapixels 12 --aspect 4:3   # phone photos
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from shared_photos import SHARED_DATASETS, aspect_ratio, centre_crop, photos_in_turn

from model.networks import AUTO, fastest_runtime
from model.registry import Registry
from training.scene import save_detector_graph

SOURCES = (
    "garbage-cn/valid/images",
    "fire-smoke-pd/valid/images",
    "fire-continuous/test/images",
    "fire-scenes-cair/fire",
)


def copy_photos(count: int, folder: Path, megapixels: float | None = None, aspect: float | None = None) -> int:
    """`count` photos taken in turn from each shared set (mixed sizes and cameras), copied into `folder`.

    `megapixels`: each enlarged to about that size instead (bicubic, JPEG quality 92), standing in for
    full-size phone photos, which no shared set holds (its largest are under 4 MP). Enlarged photos
    are smoother than a phone's own, so they show the cost of decoding a large file, not how a
    reduced decode changes what the model finds on real detail. `aspect` (width / height): each
    cropped about its centre to that shape first (`centre_crop`).
    """
    paths = photos_in_turn([SHARED_DATASETS / source for source in SOURCES], count)
    for index, path in enumerate(paths):
        target = folder / f"{index:05d}-{path.name}"
        if megapixels is None and aspect is None:
            shutil.copy(path, target)
            continue
        photo = Image.open(path).convert("RGB")
        if aspect:
            photo = photo.crop(centre_crop(photo.width, photo.height, aspect))
        if megapixels:
            gain = (megapixels * 1e6 / (photo.width * photo.height)) ** 0.5
            photo = photo.resize((round(photo.width * gain), round(photo.height * gain)), Image.Resampling.BICUBIC)
        photo.save(target, "JPEG", quality=92)
    return len(paths)


def seconds(command: list[str], runtime: str) -> float:
    start = time.perf_counter()
    env = {**os.environ, "ENVWATCH_RUNTIME": runtime}
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def named(runtime: str) -> str:
    """`runtime` as the scan's row names it: `auto` with what it chooses on this machine (model/networks.py)."""
    return f"auto = {fastest_runtime()}" if runtime == AUTO else runtime


def main() -> None:
    registry = Registry()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=registry.promoted_path(), help="default: the promoted one")
    parser.add_argument(
        "--runtime", nargs="+", default=["onnxruntime", "auto"], help="ENVWATCH_RUNTIME of each full scan"
    )
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--megapixels", type=float, help="enlarge each photo to this size (phone photos: 12)")
    parser.add_argument(
        "--aspect", type=aspect_ratio, help="crop each photo to this width:height first (phone photos: 4:3)"
    )
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        count = copy_photos(args.images, folder, args.megapixels, args.aspect)
        out = Path(tmp) / "out.jsonl"
        alone = save_detector_graph(args.model, Path(tmp) / "detector.onnx")
        scan = [str(bin_dir / "envwatch"), "scan", str(folder), "--out", str(out), "--no-progress", "--model"]
        commands = {
            **{(f"scan, {named(runtime)}", runtime): [*scan, str(args.model)] for runtime in args.runtime},
            ("scan, detector alone", "onnxruntime"): [*scan, str(alone)],
            ("yolo predict (detector)", "onnxruntime"): [
                str(bin_dir / "yolo"), "predict", f"model={alone}", f"source={folder}",
                "imgsz=416", "save=False", "verbose=False", "device=cpu", f"project={tmp}",
            ],
        }  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name, _ in commands}
        for _ in range(args.rounds):
            for (name, runtime), command in commands.items():
                times[name].append(seconds(command, runtime))
    size = f"enlarged to {args.megapixels:g} MP" if args.megapixels else "as stored"
    size += f", cropped to {args.aspect:.2f}:1" if args.aspect else ""
    print(f"{count} photos ({size}), {args.rounds} rounds, best round per command (whole process)")
    best = {name: min(values) for name, values in times.items()}
    for name, value in best.items():
        print(f"{name:<30} {value:7.1f} s  {count / value:6.1f} photos/s")
    yolo = best["yolo predict (detector)"]
    for name in best:
        if name.startswith("scan"):
            print(f"{name:<30} {yolo / best[name]:.2f}x yolo predict")
    cost = best[f"scan, {named(args.runtime[0])}"] / best["scan, detector alone"]
    print(f"the classifier costs {cost:.2f}x the detector-only scan's time (both on {args.runtime[0]})")


if __name__ == "__main__":
    main()
