"""Reviewed photos to and from Label Studio's JSON export format (image tasks, `rectanglelabels`).

The layout follows what Label Studio itself exports (a list of tasks, each with `data`,
`annotations[].result[]` and `predictions[]`; a result carries `original_width`/`original_height`
in pixels and `value.x/y/width/height` in percent of them, top-left corner, plus
`value.rectanglelabels`), so an annotation team can import our file into a project whose labeling
config lists our label names, edit boxes there, export, and hand the file back:

- the positives of a photo form one annotation; dismissed findings (the hard negatives) go in as
  the proposing model's `predictions`, so annotators see what was rejected;
- `data.sha256` names the stored photo (Label Studio keeps task data as given), and the id of each
  result we write is `ew-finding-<id>` or `ew-label-<id>`, so an edited box finds its record again;
- on import, per task, the `ground_truth` annotation wins, else the one updated last; cancelled
  annotations, other result types (choices, text) and rotated boxes are skipped, each with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from model.taxonomy import LABELS_BY_KEY, PROBLEMS_BY_KEY, problem_for_label, trainable_labels
from training.reviews import ReviewedBox, ReviewedImage

FROM_NAME = "label"
TO_NAME = "image"
OUR_RESULT_ID = re.compile(r"^ew-(finding|label)-([1-9]\d{0,9})$")
ROW_ID_MAX = 2**31 - 1
"""The largest row id the ledger's databases hold; a larger `ew-label-N` cannot be one of our rows."""
SHA256 = re.compile(r"[0-9a-f]{64}")


class LabelStudioError(ValueError):
    """The file is not a Label Studio export of image tasks at all."""


@dataclass(frozen=True)
class ImportedBox:
    sha256: str
    type: str
    label: str
    box: tuple[float, float, float, float]
    """Pixels of the photo, x1, y1, x2, y2."""
    ref: str | None
    """`finding:<id>` or `label:<id>` when the box is one we exported, else None."""
    external_id: str
    """task/annotation/result ids in Label Studio: importing the same file twice adds nothing."""
    by: str


@dataclass(frozen=True)
class Skipped:
    task: str
    reason: str


def result_id(ref: str) -> str:
    kind, number = ref.split(":")
    return f"ew-{kind}-{number}"


def rectangle(box: ReviewedBox, width: int, height: int, result: str) -> dict[str, Any]:
    x1, y1, x2, y2 = box.box
    return {
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {
            "x": x1 / width * 100,
            "y": y1 / height * 100,
            "width": (x2 - x1) / width * 100,
            "height": (y2 - y1) / height * 100,
            "rotation": 0,
            "rectanglelabels": [box.label],
        },
        "id": result,
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "type": "rectanglelabels",
        "origin": "manual",
    }


def to_tasks(images: list[ReviewedImage], image_url: Callable[[ReviewedImage], str]) -> list[dict[str, Any]]:
    """Label Studio tasks, one per photo, ids from 1 in sha256 order."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    tasks = []
    for number, image in enumerate(sorted(images, key=lambda i: i.sha256), start=1):
        results = [rectangle(b, image.width, image.height, result_id(b.ref)) for b in image.boxes]
        predictions: dict[str, list[dict[str, Any]]] = {}
        for b in image.hard_negatives:
            predictions.setdefault(b.model_version or "unknown", []).append(
                rectangle(b, image.width, image.height, result_id(b.ref))
            )
        tasks.append(
            {
                "id": number,
                "data": {
                    "image": image_url(image),
                    "sha256": image.sha256,
                    "provenance": {
                        result_id(b.ref): {"kind": b.kind, "by": b.by, "at": b.at, "model_version": b.model_version}
                        for b in (*image.boxes, *image.hard_negatives)
                    },
                },
                "annotations": [
                    {
                        "id": number,
                        "result": results,
                        "was_cancelled": False,
                        "ground_truth": True,
                        "created_at": min((b.at for b in image.boxes), default=now),
                        "updated_at": max((b.at for b in image.boxes), default=now),
                        "lead_time": 0,
                        "task": number,
                    }
                ],
                "predictions": [
                    {"model_version": version, "result": result} for version, result in sorted(predictions.items())
                ],
                "meta": {},
                "inner_id": number,
                "total_annotations": 1,
                "cancelled_annotations": 0,
                "total_predictions": len(predictions),
            }
        )
    return tasks


def type_and_label(name: str) -> tuple[str, str] | None:
    """A Label Studio label name as (problem type, detector label): a detector label or a problem key."""
    if name in LABELS_BY_KEY or name in PROBLEMS_BY_KEY:
        problem = problem_for_label(name)
        if problem is None:
            return None  # a context label such as garbage_bin is no problem to label
        return problem, name if name in trainable_labels(problem) else trainable_labels(problem)[0]
    return None


def _chosen_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    live = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not live:
        return None
    return max(live, key=lambda a: (bool(a.get("ground_truth")), str(a.get("updated_at") or "")))


def _task_sha256(task: dict[str, Any]) -> str | None:
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    named = data.get("sha256")
    if isinstance(named, str) and SHA256.fullmatch(named):
        return named
    found = SHA256.findall(str(data.get("image") or ""))
    return found[-1] if found else None


def _pixels(result: dict[str, Any], size: tuple[int, int]) -> tuple[float, float, float, float]:
    value = result["value"]
    width = float(result.get("original_width") or size[0])
    height = float(result.get("original_height") or size[1])
    x, y = float(value["x"]) / 100 * width, float(value["y"]) / 100 * height
    return x, y, x + float(value["width"]) / 100 * width, y + float(value["height"]) / 100 * height


def from_tasks(
    tasks: object, sizes: Callable[[str], tuple[int, int] | None]
) -> tuple[list[ImportedBox], list[Skipped]]:
    """The boxes of a Label Studio export; `sizes(sha256)` gives a stored photo's (width, height), None if unknown."""
    if not isinstance(tasks, list):
        raise LabelStudioError("a Label Studio export is a JSON list of tasks")
    boxes: list[ImportedBox] = []
    skipped: list[Skipped] = []
    for position, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise LabelStudioError(f"task {position} is not a JSON object")
        name = str(task.get("id", position))
        sha256 = _task_sha256(task)
        size = sizes(sha256) if sha256 else None
        if size is None:
            skipped.append(Skipped(name, "no stored photo: data.sha256 (or a sha256 in data.image) names none"))
            continue
        annotation = _chosen_annotation(task)
        if annotation is None:
            skipped.append(Skipped(name, "no annotation that was not cancelled"))
            continue
        results = annotation.get("result") if isinstance(annotation.get("result"), list) else []
        for result in results:
            if not isinstance(result, dict) or result.get("type") != "rectanglelabels":
                continue  # choices, text areas and the like carry no box
            where = f"{name}/{result.get('id', '?')}"
            try:
                value = result["value"]
                labels = value["rectanglelabels"]
                box = _pixels(result, size)
            except (KeyError, TypeError, ValueError):
                skipped.append(Skipped(where, "result without numeric value.x/y/width/height and rectanglelabels"))
                continue
            if float(value.get("rotation") or 0) % 360:
                skipped.append(Skipped(where, "rotated box: only axis-aligned boxes can be trained"))
                continue
            mapped = type_and_label(labels[0]) if isinstance(labels, list) and len(labels) == 1 else None
            if mapped is None:
                skipped.append(Skipped(where, f"label {labels!r}: not one detector label or problem type"))
                continue
            ours = OUR_RESULT_ID.match(str(result.get("id", "")))
            if ours and int(ours.group(2)) > ROW_ID_MAX:
                ours = None  # edited by hand, or from another system: a new box, not a reference
            boxes.append(
                ImportedBox(
                    sha256=sha256,
                    type=mapped[0],
                    label=mapped[1],
                    box=box,
                    ref=f"{ours.group(1)}:{ours.group(2)}" if ours else None,
                    external_id=f"ls:{name}/{annotation.get('id', '?')}/{result.get('id', '?')}",
                    by=f"label-studio:{annotation.get('completed_by', 'unknown')}",
                )
            )
    return boxes, skipped
