"""Run the shipped detector without torch: letterbox, decode and NMS in numpy around the ONNX graph.

The graph runs on onnxruntime, or on OpenVINO where `ENVWATCH_RUNTIME` chooses it (model/networks.py).

Serving must not need torch, so this mirrors what Ultralytics' predict does around the network
(the same letterbox arithmetic, class-offset NMS, box rescaling) closely enough that both give
the same boxes on the same weights; tests/test_runtime.py holds it to that.

From v4 the file may hold a second network beside the detector: a photo classifier on a
pretrained ImageNet backbone (training/scene.py), fed the same letterboxed input and answering
per problem type "does this photo show it?" (output `scene`, metadata `envwatch.scene`), with the
rule that fuses both into problems (`envwatch.fusion`, model/fusion.py). `Detector` is the one
model object either way: callers detect and ask it for problems, and never need to know whether
there are one or two networks inside. Files without a classifier (v1-v3) load and serve as before.

A learned version (training/learn.py) adds heads for types learned from inspectors' photo labels
on the classifier's backbone (outputs `learned` and `learned_map`, metadata `envwatch.learned`,
model/learned.py): they raise problems at an approximate location, beside the others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from model.detections import Detections
from model.fusion import FusionRule, read_rules
from model.learned import LearnedHeads, cam_box, learned_problems
from model.networks import open_network
from model.problems import Problem, problems_from

PAD_VALUE = 114
MAX_DETECTIONS = 300
CLASS_OFFSET = 7680.0
"""Shifts each class's boxes apart so one NMS pass never suppresses across classes."""


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the network input, to map boxes back."""

    gain_x: float
    gain_y: float
    """Scale of the resized image over the original per axis; rounding the resized size makes them differ."""
    pad_x: int
    pad_y: int
    width: int
    height: int


def letterbox(image: np.ndarray, size: tuple[int, int], stride: int | None = None) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping aspect ratio and pad to `size` (h, w), exactly as Ultralytics' LetterBox.

    With `stride`, pad the short side only up to the next multiple of it, as Ultralytics' predict does
    (`auto=True`): a 4:3 photo gives 416 x 320 instead of 416 x 416, a quarter less detector work.
    Padded on, centred, to the full square, that result is exactly what `stride=None` gives (`square_fit`).
    """
    height, width = image.shape[:2]
    gain = min(size[0] / height, size[1] / width)
    new_w, new_h = max(round(width * gain), 1), max(round(height * gain), 1)
    dw, dh = size[1] - new_w, size[0] - new_h
    if stride:
        dw, dh = dw % stride, dh % stride
    if (width, height) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh / 2 - 0.1), round(dh / 2 + 0.1)
    left, right = round(dw / 2 - 0.1), round(dw / 2 + 0.1)
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return image, Letterbox(new_w / width, new_h / height, left, top, width, height)


def square_fit(shape: tuple[int, ...], fit: Letterbox, size: tuple[int, int]) -> Letterbox:
    """Where a photo stride-letterboxed to `shape` sits once padded on, centred, to the full `size`, as the photo
    classifier pads it inside its graph (training/scene.py's `pad_to_square`): exactly the record of
    `letterbox(image, size)`. Exact because the padding still missing on each axis, `size` minus a multiple of
    the stride, is a multiple of the (even) stride too, so it splits evenly and shifts the rounding by whole pixels.
    """
    return replace(fit, pad_x=fit.pad_x + (size[1] - shape[1]) // 2, pad_y=fit.pad_y + (size[0] - shape[0]) // 2)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices of the kept boxes, best first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        overlap = inter / (areas[best] + areas[rest] - inter + 1e-9)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


class Detector:
    """An ONNX detector and everything needed to read its output, taken from the file's metadata."""

    def __init__(self, path: Path, threads: int | None = None, runtime: str | None = None) -> None:
        self.path = Path(path)
        self.network = open_network(self.path, threads, runtime)
        """The graph on its CPU runtime (model/networks.py: onnxruntime unless `ENVWATCH_RUNTIME` says otherwise)."""
        meta = {k: json.loads(v) for k, v in self.network.metadata.items() if k.startswith("envwatch.")}
        missing = {"envwatch.names", "envwatch.input_size", "envwatch.version", "envwatch.thresholds"} - set(meta)
        if missing:
            raise ValueError(f"{self.path} lacks envwatch metadata {sorted(missing)}: export it with `envwatch export`")
        self.names: tuple[str, ...] = tuple(meta["envwatch.names"])
        self.input_size: tuple[int, int] = tuple(meta["envwatch.input_size"])
        self.version: str = meta["envwatch.version"]
        self.thresholds: dict[str, float] = {k: float(v) for k, v in meta["envwatch.thresholds"].items()}
        self.nms_iou: float = float(meta.get("envwatch.nms_iou", 0.7))
        self.tile_thresholds: dict[str, float] = {
            k: float(v) for k, v in meta.get("envwatch.tile_thresholds", {}).items()
        }
        """The least score a box found in a tile needs (model/tiling.py); a label not listed: no extra bar."""
        self.detector_output = self.network.outputs[0]
        scene = meta.get("envwatch.scene") or {}
        self.scene_types: tuple[str, ...] = tuple(scene.get("types", ()))
        """Problem types the photo classifier scores, in the order of its output; empty: a detector-only model."""
        self.scene_output: str | None = scene.get("output") if self.scene_types else None
        stride = self.network.metadata.get("stride")
        self.stride: int | None = (
            int(stride) if stride and (scene.get("pads_to_square") or not self.scene_types) else None
        )
        """The detector sees photos padded only to a multiple of this (`letterbox`), as Ultralytics' predict does,
        where the file allows it: Ultralytics' exports record their stride, and a classifier beside the detector
        must pad its input to the square it learned on itself (`envwatch.scene`'s `pads_to_square`, from v8).
        Otherwise (v4-v7) every photo is padded to the full square, as those files were made for."""
        self.fusion: dict[str, FusionRule] = read_rules(meta.get("envwatch.fusion", {}))
        """Per problem type, how classifier and boxes raise problems together (model/fusion.py)."""
        self.learned: LearnedHeads | None = LearnedHeads.read(meta.get("envwatch.learned"))
        """Types learned from photo labels (model/learned.py); None: the model has none."""
        outputs = set(self.network.outputs)
        if self.scene_output and self.scene_output not in outputs:
            raise ValueError(f"{self.path}: envwatch.scene names output {self.scene_output!r}, which the graph lacks")
        if self.learned and not {self.learned.output, self.learned.map_output} <= outputs:
            raise ValueError(f"{self.path}: envwatch.learned names outputs the graph lacks")

    @classmethod
    def load(cls, path: Path | None = None, threads: int | None = None, runtime: str | None = None) -> Detector:
        """Load `path`, or the version this package's model registry promotes when None."""
        from model.registry import promoted_model

        path = Path(path) if path else promoted_model()
        if not path.exists():
            raise FileNotFoundError(f"no model at {path}")
        return cls(path, threads, runtime)

    @property
    def has_classifier(self) -> bool:
        return self.scene_output is not None

    def detect(
        self, images: Sequence[np.ndarray], conf: float | None = None, batch_size: int = 8, scene: bool = True
    ) -> list[Detections]:
        """Detect in BGR images; boxes come back in each image's own pixels.

        With `conf` None each label keeps its shipped threshold; a number applies to every label.
        With `scene` (and a classifier in the file) each result also carries the classifier's
        scores; `scene=False` runs the detector alone, as tiles do. Photos padded to the stride
        (`self.stride`) run in one call per shape among each chunk's photos, so a photo's answers
        do not depend on what it is batched with.
        """
        outputs = [self.detector_output] + ([self.scene_output] if scene and self.scene_output else [])
        learned = self.learned if scene else None
        if learned:
            outputs += [learned.output, learned.map_output]
        results: list[Detections] = []
        for start in range(0, len(images), batch_size):
            fitted = [letterbox(image, self.input_size, self.stride) for image in images[start : start + batch_size]]
            rows = self._run_by_shape([pixels for pixels, _ in fitted], outputs)
            decoded = [
                self.decode(row[0], fit, conf, row[1] if scene and self.scene_output else None)
                for row, (_, fit) in zip(rows, fitted, strict=True)
            ]
            if learned:  # the activation maps are the classifier's, which sees the full square
                decoded = [
                    self.with_learned(found, square_fit(pixels.shape, fit, self.input_size), row[-2], row[-1])
                    for found, (pixels, fit), row in zip(decoded, fitted, rows, strict=True)
                ]
            results += decoded
        return results

    def _run_by_shape(self, pixels: list[np.ndarray], outputs: list[str]) -> list[list[np.ndarray]]:
        """Per photo, `outputs` of the network, from one call per input shape among `pixels`."""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, photo in enumerate(pixels):
            by_shape.setdefault(photo.shape, []).append(index)
        rows: list[list[np.ndarray]] = [[] for _ in pixels]
        for members in by_shape.values():
            found = self.network.run_pixels(outputs, np.stack([pixels[i] for i in members]))
            for position, index in enumerate(members):
                rows[index] = [output[position] for output in found]
        return rows

    def with_learned(self, detections: Detections, fit: Letterbox, scores: np.ndarray, maps: np.ndarray) -> Detections:
        """`detections` with the learned types' scores and, from their activation maps, approximate boxes."""
        assert self.learned is not None
        size = (fit.width, fit.height)
        boxes = {
            t: cam_box(cam, self.input_size, (fit.pad_x, fit.pad_y), (fit.gain_x, fit.gain_y), size)
            for t, cam in zip(self.learned.types, maps, strict=True)
        }
        learned = {t: float(v) for t, v in zip(self.learned.types, scores, strict=True)}
        return replace(detections, learned=learned, approx=boxes)

    def problems(self, detections: Detections, thresholds: dict[str, float] | None = None) -> list[Problem]:
        """The problems `detections` raise under this model's fusion rule (model/problems.py), then learned ones."""
        found = problems_from(detections, thresholds, self.fusion)
        if self.learned and detections.learned:
            found += learned_problems(detections.learned, detections.approx, self.learned)
        return found

    def decode(
        self, raw: np.ndarray, fit: Letterbox, conf: float | None, scene: np.ndarray | None = None
    ) -> Detections:
        """One image's raw output (4 + classes, anchors) to thresholded, NMS-ed boxes, with its classifier scores."""
        size = (fit.width, fit.height)
        scores_of = {t: float(v) for t, v in zip(self.scene_types, scene, strict=True)} if scene is not None else {}
        predictions = raw.T
        class_scores = predictions[:, 4:]
        class_ids = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(class_ids)), class_ids]
        limits = np.full(len(self.names), conf, dtype=np.float32) if conf is not None else self.label_limits()
        keep = scores > limits[class_ids]
        if not keep.any():
            return Detections.empty(self.names, scores_of, size)
        xywh, scores, class_ids = predictions[keep, :4], scores[keep], class_ids[keep]
        boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
        kept = nms(boxes + class_ids[:, None] * CLASS_OFFSET, scores, self.nms_iou)[:MAX_DETECTIONS]
        offset, scale = [fit.pad_x, fit.pad_y] * 2, [fit.gain_x, fit.gain_y] * 2
        boxes = (boxes[kept] - offset) / scale
        boxes = np.clip(boxes, 0, [fit.width, fit.height, fit.width, fit.height])
        return Detections(boxes, scores[kept], class_ids[kept], self.names, scene=scores_of, size=size)

    def label_limits(self) -> np.ndarray:
        return np.array([self.thresholds.get(name, 0.25) for name in self.names], dtype=np.float32)
