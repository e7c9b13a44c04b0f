"""Learn new problem types from photo labels: a new registry version with heads on the promoted backbone.

`envwatch models learn` and `POST /v1/models/learn` both end here (torch-free: the service runs
it). The promoted version's file is read, its photo classifier's backbone found
(model/backbone_graph.py), the labelled photos' features taken from the cache or computed once
(training/photo_features.py), and for every type with at least `MIN_EACH` positive and negative
photos a head fitted and its threshold chosen by cross-validation (training/photo_heads.py). The
new version is the promoted file unchanged (detector, backbone, its own heads and fusion rule)
plus the learned heads (model/learned.py); it is registered, never promoted: the report of
cross-validated recall and false alarms comes first, and promotion is a person's decision.

Only types the promoted model does not already raise are learned: for burning and garbage the
detector's boxes and the v4 heads are better trained, and a second head would raise each twice.

Safety: one learn at a time per registry (a lock file, taken without waiting: a second learn is
refused, not queued); the version is written whole or not at all (training/learned_version.py), so a
learn killed midway leaves no version, no registry change and, at worst, a folder the next learn removes.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx

from model import backbone_graph
from model.registry import Registry, check_version_name
from model.runtime import Detector
from model.taxonomy import PROBLEMS_BY_KEY, problem_for_label
from training.learned_version import remove_leftovers, write_version
from training.photo_features import PhotoFeatures
from training.photo_heads import MIN_EACH, learn_type

LOCK = ".learn.lock"


class LearnError(ValueError):
    """The labels cannot be learned from (too few, contradictory) or the model has no backbone to learn on."""

    def __init__(self, code: str, message: str, detail: dict | None = None) -> None:
        super().__init__(message)
        self.code, self.detail = code, detail or {}


class LearnBusy(RuntimeError):
    """Another learn holds this registry's lock."""


@dataclass(frozen=True)
class PhotoLabel:
    """One photo's answer for one type, from wherever it came (a photo label, a box, a review)."""

    sha256: str
    path: Path
    type: str
    shows: bool
    source: str
    """`photo_label:<id>`, `label:<id>` or `finding:<id>`: where to look to fix it."""


@dataclass
class Plan:
    """Per type: the photos labelled yes and no; the types that cannot be learned, and why."""

    yes: dict[str, set[str]] = field(default_factory=dict)
    no: dict[str, set[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def learnable(self) -> list[str]:
        return sorted(t for t in self.yes.keys() | self.no.keys() if t not in self.skipped)


def raised_by(detector: Detector) -> set[str]:
    """Problem types the model raises without learned heads: its detector labels' and its classifier's."""
    return {t for t in (problem_for_label(n) for n in detector.names) if t} | set(detector.scene_types)


def plan(labels: Sequence[PhotoLabel], already: set[str]) -> Plan:
    """Which types to learn from `labels`; a photo both yes and no for a type is refused with the sources."""
    result = Plan()
    sources: dict[tuple[str, str, bool], list[str]] = {}
    for label in labels:
        if label.type not in PROBLEMS_BY_KEY:
            raise LearnError("unknown_type", f"{label.source}: {label.type!r} is not a problem type of the taxonomy")
        (result.yes if label.shows else result.no).setdefault(label.type, set()).add(label.sha256)
        sources.setdefault((label.sha256, label.type, label.shows), []).append(label.source)
    conflicts = [
        {"sha256": sha, "type": t, "yes": sources[(sha, t, True)], "no": sources[(sha, t, False)]}
        for t, shas in result.yes.items()
        for sha in sorted(shas & result.no.get(t, set()))
    ]
    if conflicts:
        listed = "; ".join(
            f"photo {c['sha256'][:12]} for {c['type']}: shows it ({', '.join(c['yes'])}), "
            f"does not ({', '.join(c['no'])})"
            for c in conflicts[:10]
        )
        raise LearnError(
            "contradictory_labels",
            f"{len(conflicts)} photo(s) are labelled both as showing and as not showing a type: {listed}"
            f"{'; ...' if len(conflicts) > 10 else ''}. Delete one of each pair and learn again",
            {"conflicts": conflicts},
        )
    for t in sorted(result.yes.keys() | result.no.keys()):
        yes, no = len(result.yes.get(t, ())), len(result.no.get(t, ()))
        if t in already:
            result.skipped[t] = "the model already raises it (its detector or photo classifier)"
        elif yes < MIN_EACH or no < MIN_EACH:
            result.skipped[t] = f"{yes} photo(s) showing it and {no} not: at least {MIN_EACH} of each are needed"
    return result


def feature_root(data_dir: Path) -> Path:
    return data_dir / "features"


@dataclass(frozen=True)
class Backbone:
    """The promoted model's backbone, ready to compute (cached) features, and where heads attach."""

    model: onnx.ModelProto
    taps: backbone_graph.Taps
    features: PhotoFeatures
    identity: str


def open_backbone(path: Path, cache: Path) -> Backbone:
    """The backbone inside the model file at `path`; its features cached under `cache/<backbone identity>/`."""
    detector = Detector(path)
    if not detector.scene_output:
        raise LearnError("no_backbone", f"{detector.version} has no photo classifier, so no backbone to learn on")
    model = onnx.load(str(path))
    taps = backbone_graph.find_taps(model, detector.scene_output)
    graph = backbone_graph.backbone(model, taps)
    identity = backbone_graph.identity(graph)
    return Backbone(
        model, taps, PhotoFeatures(graph.SerializeToString(), detector.input_size, cache / identity), identity
    )


@contextmanager
def exclusive(registry: Registry) -> Iterator[None]:
    """Hold this registry's learn lock, or raise `LearnBusy` at once; leftovers of killed learns go first."""
    registry.root.mkdir(parents=True, exist_ok=True)
    with open(registry.root / LOCK, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LearnBusy("another learn is running on this registry: wait for it to finish") from None
        remove_leftovers(registry)
        yield


def new_version_name(base: str) -> str:
    return check_version_name(f"{base}-learned-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}")


def learn(registry: Registry, labels: Sequence[PhotoLabel], cache: Path, by: str, version: str | None = None) -> dict:
    """Fit every learnable type's head on the promoted version and register the result (not promoted).

    Returns the report: the new version, per learned type its labels and cross-validated numbers,
    and the types skipped with the reason. Raises `LearnError` when nothing can be learned.
    """
    with exclusive(registry):
        base = registry.promoted
        if base is None:
            raise LearnError("no_model", "no version is promoted: there is no backbone to learn on")
        source = registry.path_of(base)
        detector = Detector(source)
        planned = plan(labels, raised_by(detector))
        types = planned.learnable()
        if not types:
            raise LearnError(
                "too_few_labels",
                f"no type has enough labels to learn (at least {MIN_EACH} photos showing it and {MIN_EACH} not)",
                {"skipped": planned.skipped},
            )
        name = check_version_name(version) if version else new_version_name(base)
        if name in registry.versions or registry.folder_of(name).exists():
            raise LearnError("version_exists", f"version {name} already exists")
        back = open_backbone(source, cache)
        paths = {label.sha256: label.path for label in labels}
        learned = []
        for t in types:
            shas = sorted(planned.yes[t]) + sorted(planned.no[t])
            x = back.features.features([paths[s] for s in shas], desc=f"features {t}")
            y = np.array([s in planned.yes[t] for s in shas], dtype=np.float32)
            learned.append(learn_type(t, x, y))
        report = {
            "version": name,
            "base": base,
            "backbone": back.identity,
            "learned_by": by,
            "learned_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "types": [item.report() for item in learned],
            "skipped": planned.skipped,
            "method": (
                "per type, L2-regularised logistic regression (l2 0.01, positives re-weighted to balance) on the "
                "promoted backbone's pooled features; threshold chosen by stratified 5-fold cross-validation: best "
                "out-of-fold recall with at most 10% of the out-of-fold negatives flagged (training/photo_heads.py)"
            ),
        }
        write_version(registry, name, back, learned, report)
        return report
