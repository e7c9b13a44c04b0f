"""`Detections`: the one value that flows from the detector to problems, store and report.

Boxes are kept as numpy arrays (one row per box) rather than a list of small objects so that
filtering, rescaling and merging stay vectorised, and every stage (runtime, thresholds, tiling,
exporters) consumes and returns the same type.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from model.taxonomy import problem_for_label


@dataclass(frozen=True)
class Detection:
    """One box, for code that iterates; built on demand from `Detections`."""

    label: str
    score: float
    box: tuple[float, float, float, float]

    def as_dict(self) -> dict:
        return {"label": self.label, "score": round(self.score, 4), "box": [round(v, 1) for v in self.box]}


@dataclass(frozen=True)
class Detections:
    """Boxes in pixels of the original image (x1, y1, x2, y2), with scores and label indices.

    `names` maps a class index to its label, so a `Detections` is self-describing and can be
    serialised without the model at hand. `scene` holds what the model says of the photo as a
    whole, per problem type (the photo classifier's scores, model/runtime.py), and `size` the
    photo's (width, height): a problem the classifier raises without a box covers the whole photo.
    `learned` holds the scores of types learned from photo labels (model/learned.py) and `approx`
    each one's approximate box.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    names: tuple[str, ...]
    data: dict[str, np.ndarray] = field(default_factory=dict)
    scene: dict[str, float] = field(default_factory=dict)
    size: tuple[int, int] | None = None
    learned: dict[str, float] = field(default_factory=dict)
    approx: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "xyxy", np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float32).reshape(-1))
        object.__setattr__(self, "class_ids", np.asarray(self.class_ids, dtype=np.int64).reshape(-1))
        n = len(self.xyxy)
        if len(self.scores) != n or len(self.class_ids) != n:
            raise ValueError("xyxy, scores and class_ids must have the same length")
        for key, values in self.data.items():
            if len(values) != n:
                raise ValueError(f"data[{key!r}] has {len(values)} rows, expected {n}")

    @classmethod
    def empty(
        cls, names: Sequence[str], scene: dict[str, float] | None = None, size: tuple[int, int] | None = None
    ) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0), tuple(names), scene=scene or {}, size=size)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice | Sequence[int]) -> Detections:
        """Select rows by boolean mask, index array or slice; the result is again `Detections`."""
        if isinstance(index, slice):
            index = np.arange(len(self))[index]
        index = np.asarray(index)
        return Detections(
            self.xyxy[index],
            self.scores[index],
            self.class_ids[index],
            self.names,
            {key: np.asarray(values)[index] for key, values in self.data.items()},
            self.scene,
            self.size,
            self.learned,
            self.approx,
        )

    def __iter__(self) -> Iterator[Detection]:
        for box, score, class_id in zip(self.xyxy, self.scores, self.class_ids, strict=True):
            yield Detection(self.names[class_id], float(score), tuple(float(v) for v in box))

    @property
    def labels(self) -> list[str]:
        return [self.names[i] for i in self.class_ids]

    def at_size(self, size: tuple[int, int]) -> Detections:
        """The same detections on the same photo decoded at another resolution, `size` (width, height).

        Why: a large JPEG is decoded at a fraction of its size when the network needs fewer pixels
        (model/images.py, `least_size`); its boxes are mapped back onto the photo as stored, so the
        results, exports and positions on the ground speak of the file's own pixels.
        """
        if self.size is None:
            raise ValueError("detections without the size they were found at cannot be rescaled")
        gain = np.array([size[0] / self.size[0], size[1] / self.size[1]] * 2, dtype=np.float32)
        approx = {t: tuple(float(v) for v in np.asarray(box) * gain) for t, box in self.approx.items()}
        return replace(self, xyxy=self.xyxy * gain, size=tuple(size), approx=approx)

    def with_min_scores(self, thresholds: dict[str, float], default: float = 1.0) -> Detections:
        """Keep boxes whose score reaches their own label's threshold (labels not listed: `default`)."""
        limits = np.array([thresholds.get(name, default) for name in self.names], dtype=np.float32)
        return self[self.scores >= limits[self.class_ids]] if len(self) else self

    def problem_types(self) -> list[str | None]:
        return [problem_for_label(label) for label in self.labels]

    def to_list(self) -> list[dict]:
        return [d.as_dict() for d in self]
