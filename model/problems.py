"""From boxes to the problems an inspector records.

A photo of one burning pile often gets a fire box and a smoke box above it; both mean one
`burning` problem. So boxes that raise the same problem and overlap are merged into one problem
(union box, best score), while context labels such as `garbage_bin` raise nothing. A model with
a photo classifier adds its fusion rule (model/fusion.py): weak boxes it rules out go, and a
confident photo with no box raises a whole-photo problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from model.detections import Detections
from model.fusion import FusionRule, vetoed, whole_photo_types

Extent = Literal["box", "photo", "approx"]

MERGE_IOU = 0.3


@dataclass(frozen=True)
class Problem:
    type: str
    score: float
    box: tuple[float, float, float, float]
    label: str
    """The detector label of the best box behind this problem; the problem type itself for a whole-photo one."""
    extent: Extent = "box"
    """`box`: the detector located it; `photo`: the classifier saw it somewhere in the photo, and `box` is the photo;
    `approx`: a type learned from photo labels, `box` the approximate place its evidence lies (model/learned.py)."""

    def as_dict(self) -> dict:
        return {
            "type": self.type,
            "score": round(self.score, 4),
            "box": [round(v, 1) for v in self.box],
            "label": self.label,
            "extent": self.extent,
        }


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def problems_from(
    detections: Detections,
    thresholds: dict[str, float] | None = None,
    fusion: Mapping[str, FusionRule] | None = None,
) -> list[Problem]:
    """Problems raised by `detections`: box problems best first, then whole-photo ones best first.

    `thresholds` (per label) filters first; None means the detections were already thresholded
    by the detector at its shipped values. `fusion` is the model's rule (`Detector.fusion`); it
    acts only where `detections` carry classifier scores.
    """
    if thresholds is not None:
        detections = detections.with_min_scores(thresholds)
    if fusion:
        detections = vetoed(detections, fusion)
    groups: list[list[int]] = []
    types = detections.problem_types()
    for index in np.argsort(-detections.scores, kind="stable"):
        if types[index] is None:
            continue
        for group in groups:
            if types[group[0]] == types[index] and any(
                _iou(detections.xyxy[index], detections.xyxy[member]) >= MERGE_IOU for member in group
            ):
                group.append(int(index))
                break
        else:
            groups.append([int(index)])
    problems: list[Problem] = []
    for group in groups:
        boxes = detections.xyxy[group]
        union = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
        best = group[0]
        problems.append(
            Problem(
                types[best], float(detections.scores[best]), tuple(float(v) for v in union), detections.labels[best]
            )
        )
    if fusion and detections.scene and detections.size:
        width, height = detections.size
        raised = whole_photo_types(detections, fusion, {p.type for p in problems})
        whole = [Problem(t, detections.scene[t], (0.0, 0.0, float(width), float(height)), t, "photo") for t in raised]
        problems += sorted(whole, key=lambda p: -p.score)
    return problems
