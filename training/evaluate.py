"""`envwatch evaluate`: what the shipped ONNX model finds on held-out data, per source.

What ships is what is measured: the .onnx file runs through `model.runtime.Detector` (the same
letterbox, decode and NMS as `envwatch scan` and the service), once per image at a low score
(0.001, as Ultralytics validates), and every number below is computed from that one pass. Lowering
the score floor does not change which boxes survive above a higher one (greedy NMS never lets a
weaker box remove a stronger one), so thresholding the low-floor boxes later gives what the model
returns at its shipped thresholds, except in images with more than 300 boxes above 0.001, where
the runtime's cap drops the weakest.

Two views, because they answer different questions:

- *Box level*: AP50 and AP50-95 per detector label, per source and pooled (definitions in
  `training/metrics.py`, Ultralytics' own). This is what compares models.
- *Image level*: per problem type, at the model's shipped thresholds, recall ("of the photos that
  show burning, how many were flagged for burning?") and false-alarm rate ("of the photos that do
  not, how many were flagged?"), through `model.problems.problems_from` as an inspector sees it.

The labels measured are the dataset's own (its data.yaml `names`), and a label counts on an image
only where that image annotates it (`Annotation`): there a missing box is a miss and a box is right
or wrong; elsewhere its boxes are neither. The recipe dataset annotates per source, by the same rule
as training: every label but those the source leaves `unlabelled` (`datasets/sources.yaml`), so a
garbage-cn photo without a fire box is a photo without fire, and a fire box there is a false
positive for fire AP and a false alarm for burning, while fire-continuous never labels smoke
although smoke fills many of its frames, so smoke boxes there are neither false positives for smoke
AP nor part of it. A merged dataset (`envwatch train --include-reviews`) annotates per photo, as its
record says: a shared photo what its source annotates, a reviewed photo only the labels someone
looked at on it, so a new label such as `illegal_structure` is measured on the reviewed photos
annotating it alone, and the problem types of such labels (`problem_for_label`) join the image
level. A label's AP per source is reported where that source has boxes of it; pooled ("all") AP
counts false positives from every image that annotates the label. For burning, fire-continuous counts
although only its fire is labelled: a frame with a fire box is certainly a burning photo, and the
few frames without one might still show smoke, so its false-alarm rate is an upper bound on few
images. Two burning numbers are also reported apart: recall and false alarms on the fire sources
(`burning_fire_sources`), and false alarms on garbage-cn (`garbage_cn_burning_false_alarm`): how
often the model cries fire on the kind of photo inspectors take most.

Thresholds (`--choose-thresholds`) are chosen on val only: test stays untouched for reporting.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import yaml
from tqdm import tqdm

from inference_api.scan import collect_paths
from model.detections import Detections
from model.fusion import FusionRule
from model.images import IMAGE_SUFFIXES, load_image_file
from model.networks import measuring_runtime
from model.problems import problems_from
from model.runtime import Detector
from model.taxonomy import LABEL_NAMES, PROBLEM_TYPES, problem_for_label
from training.dataset import DEFAULT_RECIPE, read_yolo_labels
from training.metrics import ap_per_iou, best_f1_threshold, image_rates, match_greedy
from training.review_merge import RECORD

T = TypeVar("T")
EVAL_CONF = 0.001
LOAD_BATCH = 32
PROBLEMS = tuple(p.key for p in PROBLEM_TYPES)
"""Every problem type, in taxonomy order: a retrained model's extra labels raise the ones v1 cannot detect."""
NO_FIRE_SOURCE = "garbage-cn"
"""A source with no fire in any photo, used as a cross-source burning false-alarm measure."""
THRESHOLD_CANDIDATES = np.round(np.arange(0.05, 0.9001, 0.01), 2)
THRESHOLD_METHOD = (
    "per detector label, the threshold in 0.05..0.90 (step 0.01) that maximises image-level F1 of "
    "'the image has a box of this label scoring >= threshold' against 'the image has a ground-truth box of this "
    "label', over the {split} images of the sources that annotate the label; ties go to the lower threshold; "
    "a label with no positive image, or that no candidate finds in any, keeps the model's current threshold. "
    "Then, per problem type with a false-alarm cap ({caps}): if its labels' thresholds flag more than the cap "
    "of the hard negatives (images without the problem from sources where it occurs, plus any photos given "
    "with --extra-negatives: out-of-domain photos with no problem in them), they are replaced by "
    "the combination on the same grid that maximises the problem's image-level F1 over the images of the "
    "sources that measure it among those within the cap (or, when none is, the one with the fewest false "
    "alarms, then the best F1); ties go to the lowest thresholds"
)
FALSE_ALARM_CAPS = {"burning": 0.10}
"""Default caps: a burning alarm sends someone out; the issue's aim is at most 10% on no-fire photos."""


@dataclass(frozen=True)
class Annotation:
    """What a dataset annotates: its detector labels, and per image the ones that count there.

    Called with an image name, it gives that image's annotated labels. The recipe dataset's rule is
    per source (`annotated_labels`), a merged dataset's per photo (`recorded_labels`).
    """

    names: tuple[str, ...]
    """The dataset's detector labels in class-id order: the labels measured, in the order reported."""
    labels_of: Callable[[str], frozenset[str]]
    """Per image name, the labels annotated on it; an image the rule does not cover is a ValueError."""

    def __call__(self, name: str) -> frozenset[str]:
        return self.labels_of(name)


@dataclass(frozen=True)
class ImageResult:
    """One image's ground truth and raw (score above `EVAL_CONF`) detections, in the image's pixels."""

    name: str
    source: str
    gt_xyxy: np.ndarray
    gt_labels: tuple[str, ...]
    detections: Detections


def annotated_labels(recipe: dict, names: Sequence[str] = LABEL_NAMES) -> Annotation:
    """The recipe dataset's rule: an image annotates every label but those its source declares `unlabelled`.

    The same rule as training, where only `unlabelled` labels get ignore regions.
    """
    by_source = {
        source: frozenset(names) - frozenset(spec.get("unlabelled", ())) for source, spec in recipe["sources"].items()
    }

    def labels_of(name: str) -> frozenset[str]:
        source = source_of(name)
        if source not in by_source:
            raise ValueError(f"{name}: source {source!r} is not in the dataset recipe")
        return by_source[source]

    return Annotation(tuple(names), labels_of)


def recorded_labels(names: Sequence[str], annotated: Mapping[str, Sequence[str]]) -> Annotation:
    """A merged dataset's rule: per held-out photo, the labels its record (`RECORD`) says were annotated there.

    A shared photo annotates what its source does; a reviewed photo only the labels someone looked at.
    """
    by_image = {name: frozenset(labels) for name, labels in annotated.items()}

    def labels_of(name: str) -> frozenset[str]:
        if name not in by_image:
            raise ValueError(f"{name}: not in the dataset's {RECORD}, which says what each held-out photo annotates")
        return by_image[name]

    return Annotation(tuple(names), labels_of)


def dataset_names(data: Path) -> tuple[str, ...]:
    """The detector labels of the dataset at `data`, in class-id order (its data.yaml `names`)."""
    path = data / "data.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: build the dataset first (`envwatch dataset build`)")
    names = yaml.safe_load(path.read_text())["names"]
    return tuple(names[i] for i in sorted(names)) if isinstance(names, dict) else tuple(names)


def dataset_annotation(data: Path, recipe: Path = DEFAULT_RECIPE) -> Annotation:
    """The annotation of the dataset at `data`: its merge record where it has one, else `recipe`'s per-source rule.

    A dataset built by the recipe alone (`envwatch dataset build`) has no record.
    """
    names = dataset_names(data)
    record = data / RECORD
    if record.is_file():
        return recorded_labels(names, json.loads(record.read_text())["annotated"])
    return annotated_labels(yaml.safe_load(recipe.read_text()), names)


def source_of(name: str) -> str:
    """Dataset images are named `<source>__<source split>__<stem>`."""
    if "__" not in name:
        raise ValueError(f"{name}: not a dataset image name (<source>__<split>__<stem>)")
    return name.split("__", 1)[0]


def split_images(data: Path, split: str) -> list[Path]:
    """Every image of `split`, sorted by name so that runs and reports list them in one order."""
    folder = data / "images" / split
    if not folder.is_dir():
        raise FileNotFoundError(f"no {split} images at {folder}: build the dataset first (`envwatch dataset build`)")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def ground_truth(label_file: Path, width: int, height: int, names: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Pixel boxes and labels (`names` by class id); ids past the labels (train-only ignore regions) are skipped."""
    boxes, _ = read_yolo_labels(label_file)
    boxes = [b for b in boxes if b[0] < len(names)]
    if not boxes:
        return np.zeros((0, 4)), ()
    cxcywh = np.array([b[1:] for b in boxes]) * [width, height, width, height]
    xyxy = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)
    return xyxy, tuple(names[b[0]] for b in boxes)


def evenly_spaced(items: Sequence[T], limit: int, key: Callable[[T], Hashable]) -> list[T]:
    """At most `limit` items per `key`, evenly spaced over each group in the order given.

    Evenly spaced rather than the first `limit` because names sort video frames together: a quick
    run should still see every scene of a source, not one clip.
    """
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    picked = []
    for group in groups.values():
        step = max(len(group) / limit, 1.0)
        picked += [group[int(i * step)] for i in range(min(limit, len(group)))]
    return picked


def per_source_subset(paths: Sequence[Path], limit: int) -> list[Path]:
    """At most `limit` images per source, evenly spaced over its sorted names."""
    return sorted(evenly_spaced(paths, limit, lambda path: source_of(path.stem)))


def run_split(
    detector: Detector,
    data: Path,
    split: str,
    annotated: Annotation,
    limit: int | None = None,
    exclude: frozenset[str] = frozenset(),
) -> list[ImageResult]:
    """Detect once at `EVAL_CONF` on every image of the split (or `limit` per source), `LOAD_BATCH` at a time.

    `exclude` names images (by stem) left out, e.g. held-out images with a twin in training data. An
    image that `annotated` does not cover fails before anything is detected.
    """
    paths = [path for path in split_images(data, split) if path.stem not in exclude]
    if limit is not None:
        paths = per_source_subset(paths, limit)
    for path in paths:
        annotated(path.stem)
    results: list[ImageResult] = []
    with tqdm(total=len(paths), desc=f"evaluate {split}", unit="img", disable=None, file=sys.stderr) as progress:
        for start in range(0, len(paths), LOAD_BATCH):
            chunk = paths[start : start + LOAD_BATCH]
            loaded = [load_image_file(path) for path in chunk]
            found = detector.detect([image.pixels for image in loaded], conf=EVAL_CONF)
            for path, image, detections in zip(chunk, loaded, found, strict=True):
                gt_xyxy, gt_labels = ground_truth(
                    data / "labels" / split / f"{path.stem}.txt", image.width, image.height, annotated.names
                )
                results.append(ImageResult(path.stem, source_of(path.stem), gt_xyxy, gt_labels, detections))
            progress.update(len(chunk))
    return results


OUTSIDE = "outside"
"""The source of photos from outside the dataset (`run_folder`): negatives for every problem type."""


def run_folder(detector: Detector, folder: Path) -> list[ImageResult]:
    """Detect at `EVAL_CONF` on every photo under `folder`, photos with no problem in them (a probe's half)."""
    paths = collect_paths([str(folder)])
    if not paths:
        raise FileNotFoundError(f"no photos under {folder}")
    empty = np.zeros((0, 4))
    results = []
    for start in range(0, len(paths), LOAD_BATCH):
        chunk = paths[start : start + LOAD_BATCH]
        found = detector.detect([load_image_file(path).pixels for path in chunk], conf=EVAL_CONF)
        results += [ImageResult(p.stem, OUTSIDE, empty, (), d) for p, d in zip(chunk, found, strict=True)]
    return results


def label_mask(detections: Detections, label: str) -> np.ndarray:
    """Which boxes carry `label`; none when the model does not know the label."""
    if label not in detections.names:
        return np.zeros(len(detections), dtype=bool)
    return detections.class_ids == detections.names.index(label)


def label_matches(image: ImageResult, label: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores, true-positive flags (n, 10) and ground-truth count of one label in one image."""
    predicted = label_mask(image.detections, label)
    truth = np.array([gt == label for gt in image.gt_labels], dtype=bool)
    scores = image.detections.scores[predicted]
    return scores, match_greedy(image.detections.xyxy[predicted], scores, image.gt_xyxy[truth]), int(truth.sum())


def label_ap(images: Sequence[ImageResult], label: str) -> dict:
    """AP50, AP50-95 and box count of one label pooled over `images` (all from sources annotating it)."""
    parts = [label_matches(image, label) for image in images]
    scores = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    correct = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 10), dtype=bool)
    n_gt = sum(p[2] for p in parts)
    ap = ap_per_iou(scores, correct, n_gt)
    return {
        "ap50": None if ap is None else float(ap[0]),
        "ap50_95": None if ap is None else float(ap.mean()),
        "boxes": n_gt,
    }


def positive_types(image: ImageResult) -> set[str]:
    return {problem_for_label(label) for label in image.gt_labels} - {None}


def measured_problems(labels: frozenset[str]) -> list[str]:
    """Problem types an image's annotated labels can show, in taxonomy order."""
    raised = {problem_for_label(label) for label in labels}
    return [problem for problem in PROBLEMS if problem in raised]


def problem_rates(images: Sequence[ImageResult], problem: str, flagged: dict[str, set[str]]) -> dict:
    """Image-level rates of one problem type; `flagged` maps an image name to the types it was flagged for."""
    positive = np.array([problem in positive_types(image) for image in images], dtype=bool)
    return image_rates(positive, np.array([problem in flagged[image.name] for image in images], dtype=bool))


def scope_metrics(images: Sequence[ImageResult], annotated: Annotation, flagged: dict[str, set[str]]) -> dict:
    """Box- and image-level metrics over `images`, each label and problem only on the images that annotate it."""
    per_label = {
        label: label_ap(on, label)
        for label in annotated.names
        if (on := [image for image in images if label in annotated(image.name)])
    }
    measured = [v for v in per_label.values() if v["ap50"] is not None]
    problems = {
        problem: problem_rates([i for i in images if problem in measured_problems(annotated(i.name))], problem, flagged)
        for problem in measured_problems(frozenset().union(*(annotated(i.name) for i in images)))
    }
    return {
        "images": len(images),
        "labels": per_label,
        "map50": float(np.mean([v["ap50"] for v in measured])) if measured else None,
        "map50_95": float(np.mean([v["ap50_95"] for v in measured])) if measured else None,
        "problems": problems,
    }


def choose_thresholds(
    images: Sequence[ImageResult], annotated: Annotation, current: dict[str, float], names: Sequence[str]
) -> dict[str, dict]:
    """Per detector label, the best-F1 image-level threshold (see `THRESHOLD_METHOD`), with its numbers on `images`.

    A label that no candidate threshold finds in any positive image (F1 0 everywhere, as with a barely
    trained model) keeps its current threshold: the lowest candidate would be an arbitrary choice.
    """
    chosen: dict[str, dict] = {}
    for label in names:
        on = [image for image in images if label in annotated(image.name)]
        positive = np.array([label in image.gt_labels for image in on], dtype=bool)
        if not positive.any():
            chosen[label] = {"threshold": current.get(label, 0.25), "kept": f"no {label} image among {len(on)}"}
            continue
        choice = best_f1_threshold(best_scores(on, label), positive, THRESHOLD_CANDIDATES)
        if choice["f1"] == 0:
            reason = f"no candidate finds any of the {choice['positives']} {label} images"
            choice = {"threshold": current.get(label, 0.25), "kept": reason}
        chosen[label] = choice
    return chosen


def best_scores(images: Sequence[ImageResult], label: str) -> np.ndarray:
    """Per image, the highest score of `label` (0 without a box): whether it is flagged at a threshold."""
    return np.array([image.detections.scores[label_mask(image.detections, label)].max(initial=0.0) for image in images])


def cap_false_alarms(
    images: Sequence[ImageResult],
    annotated: Annotation,
    thresholds: dict[str, float],
    problem: str,
    cap: float,
    outside: Sequence[ImageResult] = (),
) -> dict | None:
    """The thresholds of `problem`'s labels that keep its hard-negative false alarms within `cap`.

    Hard negatives are the photos without the problem from the sources where it occurs (no-fire
    frames of the fire sets), the photos most like the sunsets, steam and red lights an inspector
    meets. A label counts wherever its boxes are shown, annotated or not: an inspector sees a smoke
    box on a fire-continuous frame as burning all the same. Returns None when `thresholds` already
    keep the cap or nothing can be measured; otherwise the new thresholds with the numbers behind them.
    `outside` photos (`run_folder`) are hard negatives too: the dataset's own are few and all alike.
    """
    labels = [label for label in thresholds if problem_for_label(label) == problem]
    on = [image for image in images if problem in measured_problems(annotated(image.name))] + list(outside)
    positive = np.array([problem in positive_types(image) for image in on], dtype=bool)
    occurs = {image.source for image, p in zip(on, positive, strict=True) if p} | {OUTSIDE}
    hard = np.array([image.source in occurs for image in on], dtype=bool) & ~positive
    if not labels or not positive.any() or not hard.any():
        return None
    scores = np.stack([best_scores(on, label) for label in labels])  # (labels, images)
    current = (scores >= np.array([thresholds[label] for label in labels])[:, None]).any(axis=0)
    if (current & hard).sum() <= cap * hard.sum():
        return None
    grid = np.stack(np.meshgrid(*[THRESHOLD_CANDIDATES] * len(labels), indexing="ij"), axis=-1).reshape(-1, len(labels))
    flagged = (scores[None, :, :] >= grid[:, :, None]).any(axis=1)  # (combinations, images)
    tp, fp = (flagged & positive).sum(axis=1), (flagged & ~positive).sum(axis=1)
    f1 = 2 * tp / np.maximum(2 * tp + fp + (~flagged & positive).sum(axis=1), 1)
    false_alarms = (flagged & hard).sum(axis=1)
    within = false_alarms <= cap * hard.sum()
    order = np.lexsort((-f1, ~within if within.any() else false_alarms))  # stable: lowest thresholds first on ties
    best = int(order[0])
    return {
        "thresholds": {label: round(float(t), 2) for label, t in zip(labels, grid[best], strict=True)},
        "cap": cap,
        "met": bool(within[best]),
        "hard_negatives": int(hard.sum()),
        "outside_negatives": len(outside),
        "flagged_hard_negatives": int(false_alarms[best]),
        "flagged_before": int((current & hard).sum()),
        "recall": float(tp[best] / positive.sum()),
        "f1": float(f1[best]),
        "images": len(on),
    }


def capped_choice(
    images: Sequence[ImageResult],
    annotated: Annotation,
    chosen: dict[str, dict],
    caps: dict[str, float],
    outside: Sequence[ImageResult] = (),
) -> tuple[dict[str, dict], dict[str, dict]]:
    """`chosen` with each capped problem's labels moved to `cap_false_alarms`' thresholds where needed.

    A moved label gets its own precision/recall/F1 recomputed at the new threshold and names the
    problem that moved it; the second value records, per capped problem, what the cap did.
    """
    chosen, record = dict(chosen), {}
    for problem, cap in caps.items():
        current = {k: c["threshold"] for k, c in chosen.items()}
        capped = cap_false_alarms(images, annotated, current, problem, cap, outside)
        record[problem] = capped or {"cap": cap, "met": True, "moved": False}
        for label, threshold in (capped or {}).get("thresholds", {}).items():
            on = [image for image in images if label in annotated(image.name)]
            positive = np.array([label in image.gt_labels for image in on], dtype=bool)
            at = best_f1_threshold(best_scores(on, label), positive, np.array([threshold]))
            chosen[label] = {**at, "capped_by": problem}
    return chosen, record


def flagged_types(
    images: Sequence[ImageResult], thresholds: dict[str, float], fusion: Mapping[str, FusionRule] | None = None
) -> dict[str, set[str]]:
    """Per image name, the problem types an inspector would see raised at `thresholds` under the model's `fusion`."""
    return {image.name: {p.type for p in problems_from(image.detections, thresholds, fusion)} for image in images}


def summarise(
    images: Sequence[ImageResult],
    annotated: Annotation,
    thresholds: dict[str, float],
    fusion: Mapping[str, FusionRule] | None = None,
) -> dict:
    """Every number of the report from one pass of detections (JSON layout in `main`'s docstring).

    Box AP is the detector's alone; the image level is what an inspector sees, `fusion` included.
    """
    flagged = flagged_types(images, thresholds, fusion)
    by_source: dict[str, list[ImageResult]] = {}
    for image in images:
        by_source.setdefault(image.source, []).append(image)
    fire_sources = [
        source for source in sorted(by_source) if any("burning" in positive_types(i) for i in by_source[source])
    ]
    fire_images = [image for source in fire_sources for image in by_source[source]]
    no_fire = by_source.get(NO_FIRE_SOURCE, [])
    return {
        "sources": {source: scope_metrics(group, annotated, flagged) for source, group in sorted(by_source.items())},
        "all": scope_metrics(images, annotated, flagged),
        "burning_fire_sources": (
            {"sources": fire_sources, **problem_rates(fire_images, "burning", flagged)} if fire_images else None
        ),
        "garbage_cn_burning_false_alarm": (
            image_rates(np.zeros(len(no_fire), dtype=bool), np.array(["burning" in flagged[i.name] for i in no_fire]))
            if no_fire
            else None
        ),
    }


def image_set(images: Sequence[ImageResult]) -> str:
    """A short digest of which photos were measured: two numbers compare only when theirs are equal."""
    return hashlib.sha256("\n".join(sorted(image.name for image in images)).encode()).hexdigest()[:12]


def evaluate(
    detector: Detector,
    data: Path,
    split: str,
    choose: bool = False,
    recipe: Path = DEFAULT_RECIPE,
    limit: int | None = None,
    exclude: frozenset[str] = frozenset(),
    caps: dict[str, float] = FALSE_ALARM_CAPS,
    extra_negatives: Path | None = None,
) -> tuple[dict, list[ImageResult]]:
    """Run `detector` over `split` of the dataset at `data` and measure it; with `choose`, also pick thresholds.

    The labels measured and where each counts come from the dataset (`dataset_annotation`: its merge
    record, else `recipe`). Returns the per-image results beside the numbers so that `training.report`
    draws its curves and galleries from the very pass the numbers came from instead of detecting again.
    """
    annotated = dataset_annotation(data, recipe)
    images = run_split(detector, data, split, annotated, limit, exclude)
    result = {
        "model": detector.version,
        "model_path": str(detector.path),
        "runtime": detector.network.runtime,
        "split": split,
        "images": len(images),
        "excluded": len(exclude),
        "image_set": image_set(images),
        "thresholds": dict(detector.thresholds),
        "fusion": {problem: rule.as_dict() for problem, rule in detector.fusion.items()},
        **summarise(images, annotated, detector.thresholds, detector.fusion),
    }
    if choose:
        outside = run_folder(detector, extra_negatives) if extra_negatives else []
        chosen = choose_thresholds(images, annotated, detector.thresholds, detector.names)
        labels, capped = capped_choice(images, annotated, chosen, caps, outside)
        result["threshold_choice"] = {
            "method": THRESHOLD_METHOD.format(split=split, caps=", ".join(f"{k} {v:g}" for k, v in caps.items())),
            "labels": labels,
            "caps": capped,
            "extra_negatives": {"folder": str(extra_negatives), "images": [i.name for i in outside]}
            if extra_negatives
            else None,
        }
    return result, images


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def rate_text(value: float | None, hits: int, total: int) -> str:
    """A rate for a table: `0.950 (19/20)`, or `–` where nothing was counted."""
    return "–" if value is None else f"{value:.3f} ({hits}/{total})"


def _problem_row(scope: str, problem: str, m: dict) -> str:
    recall = rate_text(m["recall"], m["flagged_positives"], m["positives"])
    false_alarm = rate_text(m["false_alarm_rate"], m["flagged_negatives"], m["negatives"])
    return f"| {scope} | {problem} | {recall} | {false_alarm} |"


def markdown_tables(result: dict) -> str:
    """The model card's tables: AP per source and label, image-level rates per problem, chosen thresholds."""
    scopes = [*result["sources"].items(), ("**all**", result["all"])]
    thresholds = ", ".join(f"{k} {v:g}" for k, v in result["thresholds"].items())
    lines = [
        f"Box level, {result['split']} split ({result['images']} images), model `{result['model']}`; "
        "each label only on the sources that annotate it:",
        "",
        *box_table(scopes),
        "",
        f"Image level at the shipped thresholds ({thresholds}); recall = flagged photos showing the problem, "
        "false alarms = flagged photos not showing it:",
        "",
        *problem_table(result, scopes),
    ]
    if "threshold_choice" in result:
        lines += [
            "",
            f"Thresholds chosen on {result['split']}: {result['threshold_choice']['method']}.",
            "",
            *threshold_table(result["threshold_choice"]),
        ]
    return "\n".join(lines) + "\n"


def box_table(scopes: Sequence[tuple[str, dict]]) -> list[str]:
    """AP per label and its mean, for (name, `scope_metrics`) pairs in the order given."""
    lines = ["| source | label | boxes | AP50 | AP50-95 |", "|---|---|---|---|---|"]
    for scope, metrics in scopes:
        for label, m in metrics["labels"].items():
            lines.append(f"| {scope} | {label} | {m['boxes']} | {_number(m['ap50'])} | {_number(m['ap50_95'])} |")
        lines.append(f"| {scope} | **mean** | | {_number(metrics['map50'])} | {_number(metrics['map50_95'])} |")
    return lines


def problem_table(result: dict, scopes: Sequence[tuple[str, dict]]) -> list[str]:
    """Image-level rates per problem for the scopes given, then the burning views of `summarise`."""
    lines = ["| source | problem | recall | false-alarm rate |", "|---|---|---|---|"]
    for scope, metrics in scopes:
        lines += [_problem_row(scope, problem, m) for problem, m in metrics["problems"].items()]
    if result["burning_fire_sources"]:
        fire = result["burning_fire_sources"]
        lines.append(_problem_row(" + ".join(fire["sources"]), "burning", fire))
    if result["garbage_cn_burning_false_alarm"]:
        lines.append(
            _problem_row(f"{NO_FIRE_SOURCE} (no fire anywhere)", "burning", result["garbage_cn_burning_false_alarm"])
        )
    return lines


def threshold_table(choice: dict) -> list[str]:
    """Per label the chosen threshold and its numbers, then what each false-alarm cap did (`capped_choice`)."""
    lines = [
        "| label | threshold | precision | recall | F1 | images | positives |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, c in choice["labels"].items():
        if "kept" in c:
            lines.append(f"| {label} | {c['threshold']:g} (kept: {c['kept']}) | | | | | |")
        else:
            moved = f" (capped: {c['capped_by']})" if "capped_by" in c else ""
            lines.append(
                f"| {label} | {c['threshold']:g}{moved} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} "
                f"| {c['images']} | {c['positives']} |"
            )
    for problem, cap in choice.get("caps", {}).items():
        if "thresholds" not in cap:
            lines.append(f"\n{problem}: false-alarm cap {cap['cap']:g} already kept; nothing moved.")
            continue
        lines.append(
            f"\n{problem}: false-alarm cap {cap['cap']:g} {'met' if cap['met'] else 'NOT met'}: "
            f"{cap['flagged_hard_negatives']}/{cap['hard_negatives']} hard negatives flagged "
            f"(was {cap['flagged_before']}), recall {cap['recall']:.3f}, F1 {cap['f1']:.3f} "
            f"over {cap['images']} images."
        )
    return lines


def thresholds_path(out: Path) -> Path:
    """Where the chosen thresholds go: beside the full record, for `envwatch export --thresholds`."""
    return out.with_name(f"{out.stem}.thresholds.json")


def read_image_list(path: Path) -> list[str]:
    """Image names from the first column of a CSV with a header (as `envwatch dataset twins` writes)."""
    with open(path, newline="") as handle:
        return [row[0] for row in list(csv.reader(handle))[1:] if row]


def parse_caps(given: Sequence[str] | None) -> dict[str, float]:
    """`--false-alarm-cap PROBLEM=RATE ...` as a dict; none given: `FALSE_ALARM_CAPS`; `none`: no cap."""
    if not given:
        return dict(FALSE_ALARM_CAPS)
    if list(given) == ["none"]:
        return {}
    caps = {}
    for item in given:
        problem, _, rate = item.partition("=")
        if problem not in PROBLEMS or not rate.replace(".", "", 1).isdigit() or not 0 <= float(rate) <= 1:
            raise ValueError(f"--false-alarm-cap {item!r}: expected PROBLEM=RATE, PROBLEM in {PROBLEMS}, RATE in 0..1")
        caps[problem] = float(rate)
    return caps


def main(args: argparse.Namespace) -> int:
    """`envwatch evaluate`: print the tables; write the full record to --out.

    JSON layout: {"model", "model_path", "split", "images", "thresholds" (the shipped ones used for
    the image level), "fusion" (the model's fusion rule, model/fusion.py; empty for a detector alone),
    "sources": {source: {"images", "labels": {label: {"ap50", "ap50_95", "boxes"}}, "map50", "map50_95",
    "problems": {type: {"recall", "false_alarm_rate", "positives", "negatives",
    "flagged_positives", "flagged_negatives"}}}}, "all": {same}, "burning_fire_sources": {"sources",
    same counts}, "garbage_cn_burning_false_alarm": {same counts}, and with --choose-thresholds
    "threshold_choice": {"method", "labels": {label: {"threshold", "precision", "recall", "f1",
    "images", "positives"}}}}. A rate or AP with nothing to measure is null.

    With --report DIR, `training.report` also writes DIR/index.html from the same pass; --limit N
    evaluates at most N images per source, for quick looks (not for numbers to publish).
    """
    if args.choose_thresholds and args.split != "val":
        print(
            f"--choose-thresholds chooses on val only (got --split {args.split}): "
            "test stays untouched so that what it reports was not tuned to it",
            file=sys.stderr,
        )
        return 2
    if args.limit is not None and args.limit < 1:
        print(f"--limit must be at least 1 image per source (got {args.limit})", file=sys.stderr)
        return 2
    if args.extra_negatives is not None and not args.choose_thresholds:
        print("--extra-negatives only joins the threshold choice: add --choose-thresholds", file=sys.stderr)
        return 2
    if args.choose_thresholds and args.out is None:
        print("--choose-thresholds needs --out: the chosen thresholds are written beside it", file=sys.stderr)
        return 2
    exclude = frozenset(read_image_list(args.exclude)) if args.exclude else frozenset()
    try:
        caps = parse_caps(args.false_alarm_cap)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    detector = Detector.load(args.model, runtime=measuring_runtime())
    try:
        result, images = evaluate(
            detector,
            args.data,
            args.split,
            args.choose_thresholds,
            limit=args.limit,
            exclude=exclude,
            caps=caps,
            extra_negatives=args.extra_negatives,
        )
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(markdown_tables(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}")
    if args.report is not None:
        from training.report import write_report  # matplotlib only when a report is asked for

        print(f"wrote {write_report(result, images, args.data, args.report)}")
    if args.choose_thresholds:
        chosen = {label: c["threshold"] for label, c in result["threshold_choice"]["labels"].items()}
        path = thresholds_path(args.out)
        path.write_text(json.dumps(chosen, indent=2) + "\n")
        print(f"wrote {path}: {chosen}\n(ship them with `envwatch export CHECKPOINT --thresholds {path}`)")
    return 0
