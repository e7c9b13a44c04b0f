"""From boxes to the problems an inspector records.

A photo of one burning pile often gets a fire box and a smoke box above it; both mean one
`burning` problem. So boxes that raise the same problem and overlap are merged into one problem
(union box, best score), while context labels such as `garbage_bin` raise nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.detections import Detections

MERGE_IOU = 0.3


@dataclass(frozen=True)
class Problem:
    type: str
    score: float
    box: tuple[float, float, float, float]
    label: str
    """The detector label of the best box behind this problem."""

    def as_dict(self) -> dict:
        return {
            "type": self.type,
            "score": round(self.score, 4),
            "box": [round(v, 1) for v in self.box],
            "label": self.label,
        }


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def problems_from(detections: Detections, thresholds: dict[str, float] | None = None) -> list[Problem]:
    """Problems raised by `detections`, best first.

    `thresholds` (per label) filters first; None means the detections were already thresholded
    by the detector at its shipped values.
    """
    if thresholds is not None:
        detections = detections.with_min_scores(thresholds)
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
    problems = []
    for group in groups:
        boxes = detections.xyxy[group]
        union = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
        best = group[0]
        problems.append(
            Problem(
                types[best], float(detections.scores[best]), tuple(float(v) for v in union), detections.labels[best]
            )
        )
    return problems
