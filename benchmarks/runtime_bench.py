"""CPU speed of our model on each runtime against Ultralytics' own predict on the same ONNX file.

Not a test: it prints numbers. Serving and `envwatch scan` use model/runtime.py instead of
Ultralytics so that they need no torch; this shows what that costs or saves, on onnxruntime and,
where installed, on OpenVINO (model/networks.py). All get the same decoded BGR images in the
same process, with the same confidence threshold, so the figures cover preprocessing, the
network(s), decoding and NMS, but not reading files. Ours run the whole file (the photo
classifier too, where the model has one); Ultralytics runs the detector's graph alone, as the
issue's peer is `yolo predict` on the detector ONNX; a last row of ours ("…, det") runs that detector
graph alone too, on the default runtime, to show what the classifier costs.

Latency is per call for batch 1; for batch 8 it is each batch's time divided by 8 (amortised per
image). Both pad a non-square photo only to a multiple of the stride (smaller input): Ultralytics
when every image of a call has the same shape (at batch 1 always; at batch 8 it pads the full square
for these mixed photos), ours always, in one detector call per shape (model/runtime.py). The two
runtimes alternate batch by batch, so a busy machine (a training run) slows both alike: compare
the ratios. Needs the `train` extra (Ultralytics).

    python benchmarks/runtime_bench.py --model build/dev-model.onnx --images 64 [--aspect 4:3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from shared_photos import SHARED_DATASETS, aspect_ratio, centre_cropped, photos_in_turn  # noqa: E402
from ultralytics import YOLO  # noqa: E402

from model.networks import RUNTIMES, STATIC_AFTER  # noqa: E402
from model.registry import promoted_model  # noqa: E402
from model.runtime import Detector  # noqa: E402
from training.scene import save_detector_graph  # noqa: E402

SOURCES = ("garbage-cn/valid/images", "fire-smoke-8/test/images", "fire-continuous/test/images")


def real_images(count: int, aspect: float | None = None) -> list[np.ndarray]:
    """`count` photos taken in turn from each shared set, so sizes and aspect ratios are mixed; with `aspect`
    (width / height), each cropped about its centre to that shape."""
    paths = photos_in_turn([SHARED_DATASETS / source for source in SOURCES], count)
    return centre_cropped([cv2.imread(str(path)) for path in paths], aspect)


def measure(
    runners: dict[str, Callable[[Sequence[np.ndarray]], object]], images: list[np.ndarray], batch: int
) -> dict[str, np.ndarray]:
    """Milliseconds per image of each runner's call on each batch, runners alternating, after a warm-up long
    enough for OpenVINO to compile the batch's shape alone (`STATIC_AFTER`), as a running service has."""
    batches = [images[start : start + batch] for start in range(0, len(images), batch)]
    for run in runners.values():
        for chunk in itertools.islice(itertools.cycle(batches[:1]), STATIC_AFTER + 1):
            run(chunk)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for chunk in batches:
        for name, run in runners.items():
            start = time.perf_counter()
            run(chunk)
            times[name].append((time.perf_counter() - start) * 1000 / len(chunk))
    return {name: np.array(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=promoted_model(), help="ONNX model (default: the promoted one)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--conf", type=float, default=0.25, help="the same threshold for both sides")
    parser.add_argument("--aspect", type=aspect_ratio, help="crop each photo to this width:height (phones: 4:3)")
    args = parser.parse_args()

    images = real_images(args.images, args.aspect)
    runners: dict[str, Callable[[Sequence[np.ndarray]], object]] = {}
    for runtime in RUNTIMES:
        try:
            ours = Detector.load(args.model, runtime=runtime)
        except ValueError as exc:  # OpenVINO not installed
            print(f"skipped {runtime}: {exc}")
            continue
        runners[runtime] = lambda chunk, ours=ours: ours.detect(chunk, conf=args.conf, batch_size=len(chunk))
    alone = save_detector_graph(args.model, Path(tempfile.mkdtemp()) / f"{args.model.stem}-detector.onnx")
    if ours.has_classifier:  # what the pipeline costs without the classifier, on the default runtime
        detector = Detector.load(alone)
        runners[f"{detector.network.runtime}, det"] = lambda chunk: detector.detect(
            chunk, conf=args.conf, batch_size=len(chunk)
        )
    theirs = YOLO(str(alone), task="detect")
    imgsz = ours.input_size[0]
    runners["ultralytics"] = lambda chunk: theirs.predict(list(chunk), conf=args.conf, imgsz=imgsz, verbose=False)
    shapes = len({image.shape for image in images})
    print(f"model {args.model} (input {imgsz}), {len(images)} images of {shapes} shapes, conf {args.conf}, CPU")
    header = ("runtime", "batch", "mean ms", "p50 ms", "p95 ms", "img/s", "vs ultralytics")
    print(f"{header[0]:<20} " + " ".join(f"{h:>8}" for h in header[1:6]) + f" {header[6]:>15}")
    for batch in (1, 8):
        measured = measure(runners, images, batch)
        peer = measured["ultralytics"].mean()
        for name, milliseconds in measured.items():
            mean = milliseconds.mean()
            p50, p95 = np.percentile(milliseconds, [50, 95])
            print(
                f"{name:<20} {batch:>5} {mean:>8.2f} {p50:>8.2f} {p95:>8.2f} {1000 / mean:>8.1f} {peer / mean:>14.2f}x"
            )


if __name__ == "__main__":
    main()
