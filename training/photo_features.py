"""Backbone features per photo, computed once and kept on disk by photo content and backbone: torch-free.

Learning a new type from photo labels must take seconds, and the backbone is the slow part (tens
of milliseconds a photo on this CPU); a photo's features never change for a given backbone, so
they are stored as one small `.npy` (float16, a few kB) per photo under
`<root>/<backbone identity>/<sha[:2]>/<sha>.npy`. `training/scene.py`'s `FeatureCache` (the
dataset's photos, its own exported backbone) and the service's learning (stored photos, the
promoted model's backbone, model/backbone_graph.py) both use this class; only the ONNX graph and the
folder differ.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from model.images import load_image_file
from model.networks import network_input
from model.runtime import letterbox

BATCH = 32


def detector_input(pixels: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """The runtime's network input for one BGR photo (model/runtime.py): letterboxed, RGB, CHW, 0..1."""
    fitted, _ = letterbox(pixels, input_size)
    return network_input(fitted[None])[0]


class PhotoFeatures:
    """Features of photo files from `graph` (an ONNX backbone: detector input in, (N, D) features out)."""

    def __init__(self, graph: bytes | Path, input_size: tuple[int, int], root: Path) -> None:
        self.input_size = input_size
        self.root = root
        source = str(graph) if isinstance(graph, Path) else graph
        self.session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def cached(self, sha256: str) -> bool:
        return self._file(sha256).is_file()

    def features(self, paths: Sequence[Path], desc: str = "features") -> np.ndarray:
        """(len(paths), D) float32 features, computing only what the cache lacks, `BATCH` photos at a time."""
        rows: list[np.ndarray] = []
        with tqdm(total=len(paths), desc=desc, unit="img", disable=None, file=sys.stderr) as progress:
            for start in range(0, len(paths), BATCH):
                rows += self._chunk(paths[start : start + BATCH])
                progress.update(min(BATCH, len(paths) - start))
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def _chunk(self, paths: Sequence[Path]) -> list[np.ndarray]:
        rows: list[np.ndarray | None] = []
        todo: list[tuple[int, np.ndarray, Path]] = []
        for index, path in enumerate(paths):
            file = self._file(hashlib.sha256(path.read_bytes()).hexdigest())  # LoadedImage.sha256, without decoding
            if file.is_file():
                rows.append(np.load(file).astype(np.float32))
            else:
                rows.append(None)
                todo.append((index, detector_input(load_image_file(path).pixels, self.input_size), file))
        if todo:
            (found,) = self.session.run(None, {self.input_name: np.stack([item[1] for item in todo])})
            for (index, _, file), row in zip(todo, found.astype(np.float16), strict=True):
                file.parent.mkdir(parents=True, exist_ok=True)
                temporary = file.with_suffix(f".{id(row)}.part")
                with open(temporary, "wb") as handle:  # np.save on a path would add ".npy" to the temporary name
                    np.save(handle, row)
                temporary.replace(file)  # a killed run leaves a .part, never a truncated .npy read later
                rows[index] = row.astype(np.float32)  # what a later run reads back from the cache
        return rows  # type: ignore[return-value]
