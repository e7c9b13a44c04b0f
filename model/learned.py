"""Problem types learned from inspectors' photo labels: when they are raised, and roughly where.

A learned version (training/learn.py) adds to the promoted model one linear head per new type on
the photo classifier's pooled backbone features (model/backbone_graph.py), with a threshold per
type chosen by cross-validation on the labelled photos (metadata `envwatch.learned`). No box was
ever drawn for these types, so nothing in the model knows where the object is; but a linear head
on averaged features decomposes over the feature map's cells (a class activation map), and the
cells that push the score up are where the evidence is. The box around them is an *approximate*
location (`Problem.extent == "approx"`): a place to look, which the page, the API and the exports
say is approximate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from model.problems import Problem

CAM_FRACTION = 0.5
"""Cells within this share of the map's range from its top belong to the region: the common CAM cut."""


@dataclass(frozen=True)
class LearnedHeads:
    """What a learned version's metadata says: types in output order, thresholds, and the outputs' names."""

    types: tuple[str, ...]
    thresholds: dict[str, float]
    output: str
    map_output: str

    @classmethod
    def read(cls, raw: Mapping | None) -> LearnedHeads | None:
        """From `envwatch.learned`; None when the model has none. Checked: a bad threshold would raise everything."""
        if not raw:
            return None
        types = tuple(raw["types"])
        thresholds = {t: float(raw["thresholds"][t]) for t in types}
        if bad := {t: v for t, v in thresholds.items() if not 0.0 <= v <= 1.0}:
            raise ValueError(f"envwatch.learned thresholds must be within 0..1, got {bad}")
        return cls(types, thresholds, str(raw["output"]), str(raw["map_output"]))


def cam_box(
    cam: np.ndarray, input_size: tuple[int, int], pad: tuple[int, int], gain: tuple[float, float], size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """The box, in the photo's pixels, around the strongest region of one type's activation map.

    `cam` (cells_y, cells_x) covers the letterboxed network input `input_size` (h, w) evenly; `pad`
    and `gain` are the letterbox's (model/runtime.py), `size` the photo's (width, height). The
    region is the connected set of cells, around the strongest one, within `CAM_FRACTION` of the
    map's range from its top, measured over the photo's part of the input only (not the padding).
    """
    height, width = input_size
    up = cv2.resize(cam.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    x0, y0 = pad
    x1, y1 = x0 + max(round(size[0] * gain[0]), 1), y0 + max(round(size[1] * gain[1]), 1)
    region = up[y0:y1, x0:x1]
    low, high = float(region.min()), float(region.max())
    mask = (region >= high - CAM_FRACTION * (high - low)).astype(np.uint8)
    _, components = cv2.connectedComponents(mask)
    peak = np.unravel_index(int(region.argmax()), region.shape)
    ys, xs = np.nonzero(components == components[peak])
    box = (xs.min() / gain[0], ys.min() / gain[1], (xs.max() + 1) / gain[0], (ys.max() + 1) / gain[1])
    return (
        float(np.clip(box[0], 0, size[0])),
        float(np.clip(box[1], 0, size[1])),
        float(np.clip(box[2], 0, size[0])),
        float(np.clip(box[3], 0, size[1])),
    )


def learned_problems(
    scores: Mapping[str, float], boxes: Mapping[str, tuple[float, float, float, float]], heads: LearnedHeads
) -> list[Problem]:
    """The learned types a photo's scores reach the threshold of, best first, each at its approximate box."""
    raised = [
        Problem(t, scores[t], boxes[t], t, "approx") for t in heads.types if scores.get(t, -1.0) >= heads.thresholds[t]
    ]
    return sorted(raised, key=lambda p: -p.score)
