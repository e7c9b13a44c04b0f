"""`envwatch train --include-reviews`: the shared dataset and a reviews export, as one YOLO dataset.

- Labels: the shared dataset's, in their order, then each new label (a problem type no shipped
  label detects, e.g. `illegal_structure`) with at least `min_boxes` reviewed boxes. A new label
  with fewer waits for more reviews: its boxes are left out and the record says how many it has.
- Splits stay fixed per source: shared photos keep the split the dataset recipe gave them,
  reviewed photos the one their sha256 gives them (training/reviews.py).
- Partial labels, with the ignore regions of training/partial_labels.py: shared training photos
  get one for each new label (no shared source annotates it), reviewed training photos one for
  each label nobody looked at on them. Class ids of ignore regions are `nc + label index`, so the
  shared dataset's are renumbered for the larger `nc`.
- `shared_fraction` (quick runs) keeps the first share of the shared photos of each split in name
  order (what Ultralytics' own `fraction` does to training photos) and every reviewed photo, which
  a plain `fraction` over the merged list would cut first. Versions measured at different
  fractions are not comparable; the model card states the fraction.

Writes `data.yaml` and `reviews.json`, the record the model card is generated from: labels, new
and waiting labels with their counts, reviewed photos per split, and per held-out photo the labels
annotated there, which evaluation needs to count a box of an unannotated label as neither right
nor wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from model.images import IMAGE_SUFFIXES
from training.dataset import DEFAULT_RECIPE, read_yolo_labels
from training.reviews import SPLITS, ReviewedImage, read_export, yolo_line

REVIEWS_SOURCE = "reviews"
DEFAULT_MIN_BOXES = 30
"""Reviewed boxes a new problem type needs before a retrain adds it as a class."""
RECORD = "reviews.json"


@dataclass(frozen=True)
class Shared:
    """A built shared dataset: its folder, labels and what each source annotates."""

    root: Path
    names: list[str]
    annotated: dict[str, frozenset[str]]

    @classmethod
    def read(cls, data_yaml: Path, recipe: Path = DEFAULT_RECIPE) -> Shared:
        data = yaml.safe_load(data_yaml.read_text())
        names = [data["names"][i] for i in sorted(data["names"])]
        sources = yaml.safe_load(recipe.read_text())["sources"]
        annotated = {s: frozenset(names) - frozenset(spec.get("unlabelled", ())) for s, spec in sources.items()}
        return cls(Path(data.get("path") or data_yaml.parent), names, annotated)

    def photos(self, split: str) -> list[Path]:
        folder = self.root / "images" / split
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def ignore_line(class_id: int, nc: int) -> str:
    """A whole-frame ignore region for label `class_id` (training/partial_labels.py)."""
    return f"{nc + class_id} 0.5 0.5 1 1"


def count_boxes(images: list[ReviewedImage]) -> Counter:
    return Counter(b.label for image in images for b in image.boxes)


def merge(
    shared_yaml: Path,
    export: Path,
    out: Path,
    min_boxes: int = DEFAULT_MIN_BOXES,
    shared_fraction: float = 1.0,
    recipe: Path = DEFAULT_RECIPE,
) -> Path:
    """Write the merged dataset under `out` (replacing an earlier one); returns its data.yaml."""
    if not 0 < shared_fraction <= 1:
        raise ValueError(f"shared_fraction must be in (0, 1], got {shared_fraction}")
    shared = Shared.read(shared_yaml, recipe)
    if out.exists():
        shutil.rmtree(out)
    export = unpacked(export, out / "export")
    reviewed = read_export(export)
    counts = count_boxes(reviewed)
    new = [label for label in counts if label not in shared.names and counts[label] >= min_boxes]
    waiting = {label: n for label, n in counts.items() if label not in shared.names and n < min_boxes}
    names = [*shared.names, *sorted(new, key=list(counts).index)]
    index = {name: i for i, name in enumerate(names)}
    nc, old_nc = len(names), len(shared.names)
    for split in SPLITS:
        (out / "images" / split).mkdir(parents=True)
        (out / "labels" / split).mkdir(parents=True)
    annotated: dict[str, list[str]] = {}
    shared_used: Counter = Counter()
    for split in SPLITS:
        photos = shared.photos(split)
        photos = photos[: round(len(photos) * shared_fraction)]
        for photo in photos:
            boxes, _ = read_yolo_labels(shared.root / "labels" / split / f"{photo.stem}.txt")
            lines = [
                f"{c if c < old_nc else c - old_nc + nc} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for c, cx, cy, w, h in boxes
            ]
            if split == "train":
                lines += [ignore_line(index[label], nc) for label in new]
            else:
                annotated[photo.stem] = sorted(shared.annotated[photo.stem.split("__", 1)[0]])
            _write(out, split, photo.name, photo.resolve(), lines)
            shared_used[split] += 1
    reviewed_used: Counter = Counter()
    used_boxes: Counter = Counter()
    for image in reviewed:
        kept = [b for b in image.boxes if b.label in index]
        looked_at = {label for label in image.annotated if label in index}
        if not looked_at:
            continue  # only waiting labels on it: nothing to learn yet
        split, name = image.split, f"{REVIEWS_SOURCE}__{image.split}__{image.sha256}"
        lines = [yolo_line(index[b.label], b.box, image.width, image.height) for b in kept]
        if split == "train":
            lines += [ignore_line(index[label], nc) for label in names if label not in looked_at]
        else:
            annotated[name] = sorted(looked_at)
        _write(out, split, name + image.suffix, (export / "images" / split / image.file).resolve(), lines)
        reviewed_used[split] += 1
        used_boxes.update(b.label for b in kept)
    data = {"path": str(out.resolve()), **{s: f"images/{s}" for s in SPLITS}, "names": dict(enumerate(names))}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    record = {
        "export": str(export.resolve()),
        "shared": str(shared_yaml.resolve()),
        "shared_fraction": shared_fraction,
        "min_boxes": min_boxes,
        "names": names,
        "new_labels": {label: counts[label] for label in new},
        "waiting_labels": waiting,
        "reviewed_images": {s: reviewed_used[s] for s in SPLITS},
        "reviewed_boxes": dict(used_boxes),
        "hard_negatives": sum(len(i.hard_negatives) for i in reviewed),
        "shared_images": {s: shared_used[s] for s in SPLITS},
        "annotated": annotated,
    }
    (out / RECORD).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return out / "data.yaml"


def unpacked(export: Path, folder: Path) -> Path:
    """The export folder: `export` itself, or the zip the service sent unpacked into `folder`."""
    if export.is_dir():
        return export
    if not zipfile.is_zipfile(export):
        raise ValueError(f"{export}: neither a reviews export folder nor its zip")
    with zipfile.ZipFile(export) as archive:
        for member in archive.namelist():
            if member.startswith("/") or ".." in Path(member).parts:
                raise ValueError(f"{export}: unsafe path in zip: {member!r}")
        archive.extractall(folder)
    return folder


def _write(out: Path, split: str, name: str, photo: Path, lines: list[str]) -> None:
    os.symlink(photo, out / "images" / split / name)
    (out / "labels" / split / f"{Path(name).stem}.txt").write_text("\n".join(lines) + "\n" if lines else "")
