"""Reviewed photos as a YOLO dataset with provenance: the export format of labels from reviews.

The service writes it (`GET /v1/labels/export/yolo`), `envwatch train --include-reviews` reads it
(training/review_merge.py), and Label Studio round trips go through the same `ReviewedImage`
(training/labelstudio.py), so there is one description of what a reviewed photo teaches:

- `boxes`: positives (confirmed findings, fixed boxes, boxes drawn by an inspector or imported);
- `hard_negatives`: dismissed findings, the model's own false positives. YOLO has no negative box,
  so a hard negative teaches through what it *annotates*: its label counts as labelled on that
  photo, so everything there outside the photo's positive boxes of that label is background;
- labels with neither on a photo were not looked at; training ignores them there (as it does for
  labels a shared source never annotated), so boxing one shed never teaches that a bin is background.

The split is fixed per photo by its sha256 (`split_of`), never by the order or number of reviews,
so a photo evaluated once is evaluated forever and model versions compare on the same photos.
Importing nothing from torch or the service, it runs on the serving install.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from inference_api.spreadsheet import safe_row
from model.images import as_training_file
from model.taxonomy import LABEL_NAMES, PROBLEM_TYPES, trainable_labels

FORMAT = "envwatch-reviews/1"
SPLITS = ("train", "val", "test")
EVAL_SHARES = {"test": 0.20, "val": 0.12}
"""The shares of the shared dataset recipe (datasets/sources.yaml), applied to reviewed photos by hash."""
PROVENANCE_COLUMNS = [
    *("image", "split", "kind", "type", "label", "x1", "y1", "x2", "y2"),
    *("by", "at", "model_version", "ref"),
]


@dataclass(frozen=True)
class ReviewedBox:
    """One reviewed box in pixels of the stored photo, with who decided it, when, and on whose proposal."""

    label: str
    type: str
    box: tuple[float, float, float, float]
    kind: str
    """confirmed, dismissed (a hard negative), correction, manual or label_studio."""
    by: str
    at: str
    """ISO 8601 time of the decision."""
    model_version: str | None
    """Model version that proposed the box (the finding's); None for boxes drawn from scratch."""
    ref: str
    """`finding:<id>` or `label:<id>`: what the box is in the service, so an edited copy can find it again."""


@dataclass(frozen=True)
class ReviewedImage:
    sha256: str
    suffix: str
    width: int
    height: int
    boxes: tuple[ReviewedBox, ...] = ()
    hard_negatives: tuple[ReviewedBox, ...] = field(default=())

    @property
    def file(self) -> str:
        return f"{self.sha256}{self.suffix}"

    @property
    def split(self) -> str:
        return split_of(self.sha256)

    @property
    def annotated(self) -> frozenset[str]:
        """Detector labels that were looked at on this photo (see the module docstring)."""
        return frozenset(b.label for b in (*self.boxes, *self.hard_negatives))


def split_of(sha256: str) -> str:
    """test, val or train from the photo's hash alone: the same photo lands in the same split in every export."""
    value = int(sha256[:16], 16) / 16**16
    if value < EVAL_SHARES["test"]:
        return "test"
    return "val" if value < EVAL_SHARES["test"] + EVAL_SHARES["val"] else "train"


def label_names(images: Iterable[ReviewedImage]) -> list[str]:
    """The shipped detector labels, then every other label used, in taxonomy order: stable across exports."""
    used = {b.label for image in images for b in (*image.boxes, *image.hard_negatives)}
    extra = [label for p in PROBLEM_TYPES for label in trainable_labels(p.key) if label in used]
    return [*LABEL_NAMES, *(label for label in dict.fromkeys(extra) if label not in LABEL_NAMES)]


def yolo_line(class_id: int, box: tuple[float, float, float, float], width: int, height: int) -> str:
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    return f"{class_id} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"


def export_files(images: list[ReviewedImage], read: Callable[[str], bytes]) -> Iterable[tuple[str, bytes]]:
    """(relative path, bytes) of every file of the export; `read(sha256)` gives a photo's bytes.

    A generator, so a caller streaming a zip holds one photo at a time.
    """
    names = label_names(images)
    index = {name: i for i, name in enumerate(names)}
    records, rows = [], []
    for image in sorted(images, key=lambda i: i.sha256):
        split = image.split
        yield f"images/{split}/{image.file}", as_training_file(read(image.sha256))
        lines = [yolo_line(index[b.label], b.box, image.width, image.height) for b in image.boxes]
        yield f"labels/{split}/{image.sha256}.txt", ("\n".join(lines) + "\n" if lines else "").encode()
        records.append(
            {
                **{k: v for k, v in asdict(image).items() if k not in ("boxes", "hard_negatives")},
                "file": image.file,
                "split": split,
                "annotated": sorted(image.annotated),
                "boxes": [asdict(b) for b in image.boxes],
                "hard_negatives": [asdict(b) for b in image.hard_negatives],
            }
        )
        for b in (*image.boxes, *image.hard_negatives):
            rows.append([image.file, split, b.kind, b.type, b.label, *b.box, b.by, b.at, b.model_version or "", b.ref])
    data = {"path": ".", **{split: f"images/{split}" for split in SPLITS}, "names": dict(enumerate(names))}
    yield "data.yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
    provenance = {"format": FORMAT, "names": names, "images": records}
    yield "provenance.json", json.dumps(provenance, indent=1, ensure_ascii=False).encode()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PROVENANCE_COLUMNS)
    writer.writerows(safe_row(row) for row in rows)
    yield "provenance.csv", buffer.getvalue().encode()


def read_export(folder: Path) -> list[ReviewedImage]:
    """The photos of an export folder, checked: a photo missing or altered since export is an error."""
    path = folder / "provenance.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a reviews export: no provenance.json")
    provenance = json.loads(path.read_text())
    if provenance.get("format") != FORMAT:
        raise ValueError(f"{path}: format {provenance.get('format')!r}, expected {FORMAT!r}")
    images = []
    for record in provenance["images"]:
        image = ReviewedImage(
            sha256=record["sha256"],
            suffix=record["suffix"],
            width=int(record["width"]),
            height=int(record["height"]),
            boxes=tuple(_box(b) for b in record["boxes"]),
            hard_negatives=tuple(_box(b) for b in record["hard_negatives"]),
        )
        photo = folder / "images" / image.split / image.file
        if not photo.is_file() or hashlib.sha256(photo.read_bytes()).hexdigest() != image.sha256:
            raise ValueError(f"{photo}: missing, or not the photo the export recorded (sha256 differs)")
        images.append(image)
    return images


def _box(record: dict) -> ReviewedBox:
    return ReviewedBox(**{**record, "box": tuple(float(v) for v in record["box"])})
