"""How the photo classifier and the detector's boxes together raise problems: the fusion rule.

A v4 model has two networks in one ONNX file (model/runtime.py): the detector draws boxes, and
a classifier on a pretrained ImageNet backbone says per problem type how likely the photo as a
whole shows it (`Detections.scene`). The detector learned our few cameras; the backbone has seen
a million photos, so it knows a sunset from a fire and a heap of bags from a wall far better.
Per problem type the rule has two numbers, chosen on val and written into the model's metadata
(`envwatch scene attach`, training/scene.py, which also chooses the detector's box thresholds
for the type's labels together with them; v4's and v5's were chosen beforehand, by F1):

- `veto`: boxes of the type are dropped when the classifier scores the photo below it. A box
  on a sunset, a lamp or steam needs the classifier not to say "clearly no burning here".
- `photo`: when the classifier scores the photo at least this high and no box of the type's
  family is left, the photo raises a *whole-photo* problem (`Problem.extent == "photo"`): the
  box is the whole photo, honestly marked as having no place on it. The family (`FAMILIES`):
  a photo whose overflowing bin has a box does not also get "exposed garbage somewhere": the
  classifier's garbage signal is that bin, already located.

A problem keeps the detector's box where there is one. Types without a rule, and detections
without classifier scores (a detector-only model, or a tiled frame: model/tiling.py), are the
detector's alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from model.detections import Detections

FAMILIES: tuple[frozenset[str], ...] = (
    frozenset({"burning"}),
    frozenset({"exposed_garbage", "overflowing_garbage"}),
)
"""Problem types the classifier cannot tell apart reliably on a whole photo (garbage-cn's own labels
confuse an overflowing bin with the loose garbage beside it)."""


NEVER = 1.01
"""A `photo` threshold no classifier score reaches: the type never raises a whole-photo problem."""


def family_of(problem: str) -> frozenset[str]:
    return next((family for family in FAMILIES if problem in family), frozenset({problem}))


@dataclass(frozen=True)
class FusionRule:
    veto: float
    """Boxes of the type are dropped when the classifier scores the photo below this."""
    photo: float
    """A classifier score at least this raises a whole-photo problem where no box does."""

    def as_dict(self) -> dict[str, float]:
        return {"veto": self.veto, "photo": self.photo}


def read_rules(raw: Mapping[str, Mapping[str, float]]) -> dict[str, FusionRule]:
    """Rules from the model's metadata, checked: a veto outside 0..1 would silently veto or keep every box, and a
    photo threshold below 0 would raise every photo (`NEVER`, just above 1, is how a rule says "no whole-photo
    problem")."""
    rules = {}
    for problem, values in raw.items():
        veto, photo = float(values["veto"]), float(values["photo"])
        if not (0.0 <= veto <= 1.0 and 0.0 <= photo <= NEVER):
            raise ValueError(
                f"fusion rule for {problem}: veto must be within 0..1 and photo within 0..{NEVER} (never), "
                f"got {veto}, {photo}"
            )
        rules[problem] = FusionRule(veto, photo)
    return rules


def vetoed(detections: Detections, rules: Mapping[str, FusionRule]) -> Detections:
    """`detections` without the boxes whose problem type the classifier rules out on this photo."""
    if not detections.scene or not len(detections):
        return detections
    keep = np.array(
        [
            problem not in rules or problem not in detections.scene or detections.scene[problem] >= rules[problem].veto
            for problem in detections.problem_types()
        ],
        dtype=bool,
    )
    return detections if keep.all() else detections[keep]


def whole_photo_types(detections: Detections, rules: Mapping[str, FusionRule], boxed: set[str]) -> list[str]:
    """Problem types the classifier raises on the whole photo: confident, and no box of the family (`boxed`)."""
    return [
        problem
        for problem, rule in rules.items()
        if not (family_of(problem) & boxed) and detections.scene.get(problem, -1.0) >= rule.photo
    ]
