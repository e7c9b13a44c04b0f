"""Whole-process speed of `envwatch scan` with and without the photo classifier, against `yolo predict`.

Not a test: it prints numbers. Three commands read the same folder of real photos, each a fresh
process as a user runs it (start-up, decoding, the networks, writing results):

- `envwatch scan` with the promoted model (detector and photo classifier, fusion);
- `envwatch scan` with the detector alone (`--detector-model`, default v3: v4's detector);
- Ultralytics' `yolo predict` on that detector ONNX, saving nothing.

They alternate round by round, so a busy machine slows all alike: compare the ratios. Needs the
`train` extra (Ultralytics).

    python benchmarks/scan_bench.py --images 200 --rounds 2
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from model.registry import Registry

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SOURCES = (
    "garbage-cn/valid/images",
    "fire-smoke-pd/valid/images",
    "fire-continuous/test/images",
    "fire-scenes-cair/fire",
)


def copy_photos(count: int, folder: Path) -> int:
    """`count` photos taken in turn from each shared set (mixed sizes and cameras), copied into `folder`."""
    lists = [sorted((SHARED_DATASETS / source).glob("*.jpg")) for source in SOURCES]
    paths = [path for group in itertools.zip_longest(*lists) for path in group if path][:count]
    for index, path in enumerate(paths):
        shutil.copy(path, folder / f"{index:05d}-{path.name}")
    return len(paths)


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    registry = Registry()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=registry.promoted_path(), help="default: the promoted one")
    parser.add_argument("--detector-model", type=Path, default=registry.path_of("v3"), help="its detector alone")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        count = copy_photos(args.images, folder)
        out = Path(tmp) / "out.jsonl"
        scan = [str(bin_dir / "envwatch"), "scan", str(folder), "--out", str(out), "--no-progress", "--model"]
        commands = {
            "scan, detector + classifier": [*scan, str(args.model)],
            "scan, detector alone": [*scan, str(args.detector_model)],
            "yolo predict (detector)": [
                str(bin_dir / "yolo"), "predict", f"model={args.detector_model}", f"source={folder}",
                "imgsz=416", "save=False", "verbose=False", "device=cpu", f"project={tmp}",
            ],
        }  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, command in commands.items():
                times[name].append(seconds(command))
    print(f"{count} photos, {args.rounds} rounds, best round per command (whole process)")
    best = {name: min(values) for name, values in times.items()}
    for name, value in best.items():
        print(f"{name:<30} {value:7.1f} s  {count / value:6.1f} photos/s")
    yolo = best["yolo predict (detector)"]
    for name in ("scan, detector + classifier", "scan, detector alone"):
        print(f"{name:<30} {yolo / best[name]:.2f}x yolo predict")
    cost = best["scan, detector + classifier"] / best["scan, detector alone"]
    print(f"the classifier costs {cost:.2f}x the detector-only scan's time")


if __name__ == "__main__":
    main()
