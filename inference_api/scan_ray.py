"""`envwatch scan --engine ray`: the same scan on Ray workers, on this machine or a Ray cluster.

Ray Data streams the list of photos through an actor pool; each actor loads the detector once
and runs `scan()` (inference_api/scan.py) on a batch of paths, so decoding, tiling, thresholds,
problems and georeferencing are exactly those of the local engine. Results come back to the
driver in input order (`preserve_order`) as pickled `ScanResult`s and are written there by
the ordinary writers, with the manifest, so outputs and `--resume` behave as with `--engine local`.

Without `--ray-address` a local Ray is started with one CPU per worker and stopped at the end;
with one, the scan joins that cluster and leaves it running. On a cluster every node reads the
photos itself, so their paths must be the same on every node (a shared or mounted filesystem);
paths are sent absolute. The model travels with the job (its bytes, and its INT8 copy where it
has one, go to each actor), so only envwatch itself must be installed on the nodes. Each actor
gives its runtime one thread: Ray schedules the parallelism, and N actors with N threads each would
fight over the same cores.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import ray

from inference_api.scan import ScanResult, UsageError, scan
from model.networks import quantized_copy
from model.runtime import Detector
from model.tiling import TileMode

MODEL_FILE = "model.onnx"


def model_files(model: Path) -> dict[str, bytes]:
    """What a worker needs to load `model` as this machine would: the file and, where there is one, its INT8 copy
    (model/networks.py), for workers told `ENVWATCH_RUNTIME=onnxruntime-int8`."""
    files, copy = {MODEL_FILE: model.read_bytes()}, quantized_copy(model)
    if copy.is_file():
        files[quantized_copy(Path(MODEL_FILE)).name] = copy.read_bytes()
    return files


class ScanActor:
    """One Ray actor: a detector loaded once, scanning the batches of paths it is given."""

    def __init__(self, model: ray.ObjectRef, conf: float | None, batch: int, tile: TileMode) -> None:
        with tempfile.TemporaryDirectory() as folder:  # the model file and its INT8 copy, named as beside each other
            for name, data in ray.get(model).items():
                (Path(folder) / name).write_bytes(data)
            self.detector = Detector.load(Path(folder) / MODEL_FILE, threads=1)
        self.conf, self.batch, self.tile = conf, batch, tile

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [Path(path) for path in rows["path"]]
        results = scan(paths, self.detector, self.conf, self.batch, self.tile)
        named = [dataclasses.replace(r, image=str(name)) for r, name in zip(results, rows["image"], strict=True)]
        return {"result": np.array([pickle.dumps(r) for r in named], dtype=object)}


def _connect(address: str | None, workers: int | None) -> tuple[bool, int]:
    """Join `address` or start a local Ray; (whether we started it, how many workers to run)."""
    if ray.is_initialized():
        started = False
    elif address:
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"cannot join the Ray cluster at {address}: {exc}") from None
        started = False
    else:
        cpus = workers or os.cpu_count() or 1
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        started = True
    return started, workers or max(1, int(ray.cluster_resources().get("CPU", 1)))


def scan_ray(
    paths: Sequence[Path],
    model: Path,
    conf: float | None = None,
    batch: int = 8,
    tile: TileMode = "auto",
    address: str | None = None,
    workers: int | None = None,
) -> Iterator[ScanResult]:
    """Yield one `ScanResult` per path, in order, computed by `workers` Ray actors."""
    if not paths:
        return
    started, workers = _connect(address, workers)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False  # the scan's own progress bar counts written results
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        items = [{"path": str(path.resolve()), "image": str(path)} for path in paths]
        blocks = min(len(items), max(workers, -(-len(items) // batch)))  # every worker gets work from the start
        results = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            ScanActor,
            fn_constructor_kwargs={"model": ray.put(model_files(model)), "conf": conf, "batch": batch, "tile": tile},
            batch_size=batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
        )
        for row in results.iter_rows():
            yield pickle.loads(row["result"])
    finally:
        if started:
            ray.shutdown()
