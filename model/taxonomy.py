"""The one place that names what envwatch detects and what it reports.

Two vocabularies live here on purpose. *Detector labels* are what the network was trained to
draw boxes around; *problem types* are what an inspector's ledger records. They differ: a
`garbage_bin` box is context (a bin that is not overflowing is no problem), and `fire` and
`smoke` both mean one problem, `burning`. Problem types that no training data exists for are
declared here with `detectable=False` so that the rest of the code (and the web page) can list
them for manual labelling without pretending the model finds them.

A model retrained from inspectors' labels (docs/reviews.md) learns such a type under a detector
label named after the problem key itself (`illegal_structure` raises `illegal_structure`), so
`problem_for_label` maps every problem key to itself without this table having to change.
`detectable` describes the shipped model; which labels a given model has is in its own metadata.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProblemType:
    key: str
    name_zh: str
    name_en: str
    detectable: bool
    """True when the shipped detector has a label that raises this problem."""


@dataclass(frozen=True)
class DetectorLabel:
    key: str
    problem: str | None
    """The problem type a box of this label raises, or None for context-only labels."""


DETECTOR_LABELS: tuple[DetectorLabel, ...] = (
    DetectorLabel("overflowing_garbage", "overflowing_garbage"),
    DetectorLabel("exposed_garbage", "exposed_garbage"),
    DetectorLabel("garbage_bin", None),
    DetectorLabel("fire", "burning"),
    DetectorLabel("smoke", "burning"),
)

LABEL_NAMES: tuple[str, ...] = tuple(label.key for label in DETECTOR_LABELS)

PROBLEM_TYPES: tuple[ProblemType, ...] = (
    ProblemType("overflowing_garbage", "垃圾满溢", "Overflowing garbage pool or bin", True),
    ProblemType("exposed_garbage", "暴露垃圾", "Exposed or dumped garbage", True),
    ProblemType("burning", "焚烧（垃圾、秸秆）", "Burning of garbage or straw", True),
    ProblemType("illegal_structure", "乱搭乱建", "Illegal makeshift structure", False),
    ProblemType("clutter_pile", "乱堆乱放", "Clutter pile (debris, materials, firewood, soil)", False),
    ProblemType("floating_river_waste", "河道漂浮物", "Floating waste on rivers, ponds and ditches", False),
    ProblemType("tangled_overhead_wires", "线缆乱拉乱挂", "Tangled overhead wires and cables", False),
    ProblemType("road_occupying_stall", "占道经营", "Stall or goods occupying the road", False),
    ProblemType("illegal_ad", "乱贴乱画小广告", "Illegal posted or painted advertisements", False),
)

PROBLEMS_BY_KEY: dict[str, ProblemType] = {p.key: p for p in PROBLEM_TYPES}
LABELS_BY_KEY: dict[str, DetectorLabel] = {label.key: label for label in DETECTOR_LABELS}


def problem_for_label(label: str) -> str | None:
    """The problem type a detector label raises; a problem key raises itself; unknown labels raise nothing."""
    found = LABELS_BY_KEY.get(label)
    if found is not None:
        return found.problem
    return label if label in PROBLEMS_BY_KEY else None


def trainable_labels(problem: str) -> tuple[str, ...]:
    """Detector labels a box of `problem` may be trained as, the default first.

    The shipped labels raising it (a `burning` box is `fire` or `smoke`), else the problem key
    itself: the label a retrained model learns a new problem type under.
    """
    if problem not in PROBLEMS_BY_KEY:
        raise KeyError(f"unknown problem type {problem!r}")
    return tuple(label.key for label in DETECTOR_LABELS if label.problem == problem) or (problem,)
