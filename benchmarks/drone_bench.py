"""Throughput of drone-frame scans: one process against Ray with 1 and 2 workers, and a projection for N machines.

Not a test: it prints numbers. The frames are built from the shared photos (tests/drone_scenes.py:
a mosaic of real street photos with a real fire pasted in, saved as JPEG with DJI metadata), so
every frame is decoded, tiled (`--tile auto`), detected, merged and georeferenced exactly as
`envwatch scan` does; results are written to /dev/null through the JSONL writer.

Each configuration scans the same frames once after a warm-up frame. Ray's own start (a few
seconds, paid once per scan) is printed apart; its throughput includes starting the actors and
loading the model in each, which a long scan amortises. The projection for N machines is
arithmetic on the measured per-machine rate, not a measurement: it assumes the photos are on
storage every node reads at that rate and that the one driver writing results keeps up (it
writes a few kilobytes per frame).

    python benchmarks/drone_bench.py --frames 6 --width 4000 --height 3000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import ray

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from drone_scenes import background, drone_jpeg, paste, surest_fire  # noqa: E402

from inference_api.scan import ScanResult, scan  # noqa: E402
from inference_api.scan_formats import JsonlWriter  # noqa: E402
from inference_api.scan_ray import scan_ray  # noqa: E402
from model.registry import promoted_model  # noqa: E402
from model.runtime import Detector  # noqa: E402

XMP = {"RelativeAltitude": "+80", "GimbalYawDegree": "+0", "GimbalPitchDegree": "-90"}


def make_frames(folder: Path, count: int, width: int, height: int, detector: Detector) -> list[Path]:
    fire = surest_fire(detector)
    paths = []
    for index in range(count):
        frame = background(width, height, first=index * 3)
        paste(frame, fire, 160 + 20 * index, (width // (count + 1)) * (index + 1) % (width - 400), height // 3)
        path = folder / f"DJI_{index:04d}.JPG"
        path.write_bytes(drone_jpeg(frame, 30.26, 120.15 + index * 1e-4, XMP, focal_35mm=24))
        paths.append(path)
    return paths


def drain(results: Iterable[ScanResult]) -> tuple[float, int]:
    """Write every result as `envwatch scan` would (to /dev/null); (seconds, problems)."""
    start = time.perf_counter()
    problems = 0
    with open(os.devnull, "w", encoding="utf-8") as sink:
        writer = JsonlWriter(sink)
        for result in results:
            assert result.error is None, result.error
            writer.write(result)
            problems += len(result.problems)
    return time.perf_counter() - start, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=8, help="tiles per detector call, as --batch of envwatch scan")
    parser.add_argument("--machines", type=int, nargs="+", default=[4, 16, 64], help="N for the projection")
    args = parser.parse_args()

    model = promoted_model()
    detector = Detector.load(model)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_frames(Path(tmp), args.frames + 1, args.width, args.height, detector)
        warm, frames = paths[:1], paths[1:]
        megapixels = args.frames * args.width * args.height / 1e6
        cpus = os.cpu_count()
        size = f"{args.width}x{args.height} ({megapixels / args.frames:.1f} MP)"
        print(f"{args.frames} frames of {size}, tiled, model {model.name}, {cpus} CPUs")
        print(f"{'engine':<22} {'seconds':>8} {'images/s':>9} {'MP/s':>7} {'problems':>9}")
        rates = {}

        def report(name: str, seconds: float, problems: int) -> None:
            rates[name] = args.frames / seconds
            print(f"{name:<22} {seconds:8.1f} {args.frames / seconds:9.3f} {megapixels / seconds:7.2f} {problems:9d}")

        drain(scan(warm, detector, batch=args.batch))
        report("one process", *drain(scan(frames, detector, batch=args.batch)))

        start = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        ray_start = time.perf_counter() - start
        try:
            for workers, name in ((1, "ray, 1 worker"), (2, "ray, 2 workers")):
                drain(scan_ray(warm, model, batch=args.batch, workers=workers))
                report(name, *drain(scan_ray(frames, model, batch=args.batch, workers=workers)))
        finally:
            ray.shutdown()
        print(f"(starting Ray took {ray_start:.1f} s, once per scan; not in the figures above)")

    best = max(rates, key=rates.get)
    two, one, alone = rates["ray, 2 workers"], rates["ray, 1 worker"], rates["one process"]
    print(f"\nratios: ray 2 workers / one process = {two / alone:.2f}, ray 2 / ray 1 = {two / one:.2f}")
    print(
        f"PROJECTION (not measured): N machines like this one, each at the best rate here ({best}), "
        "scale linearly while shared storage and the driver keep up:"
    )
    for machines in args.machines:
        rate = rates[best] * machines
        mp_rate = rate * megapixels / args.frames
        print(f"  {machines:4d} machines: {rate:8.2f} images/s, {mp_rate:8.1f} MP/s, {rate * 3600:9.0f} frames/hour")


if __name__ == "__main__":
    main()
