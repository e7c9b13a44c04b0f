"""Build one YOLO dataset from the shared sources, following `datasets/sources.yaml`.

The recipe is deterministic: splits come from hashes of file names, never from a random
generator, and the manifest it writes lists every image with its split, so the same inputs give
byte-for-byte the same dataset. Images are linked, not copied: the shared data stays the one copy.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import os
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from model.images import TRAINING_SUFFIXES
from model.taxonomy import LABEL_NAMES, problem_for_label

SPLITS = ("train", "val", "test")
OOD = "ood"
"""Photos never trained on and never used to choose anything: the out-of-domain test (see `split_ood`)."""
OOD_VAL = "ood_val"
"""Out-of-domain photos that choose, beside val, and are never trained on: the out-of-domain val (`split_ood`).
Val is nearly all from the cameras the detector trained on, and what it chose twice held there
but not on photos from elsewhere."""
ALL_SPLITS = (*SPLITS, OOD_VAL, OOD)
SPLIT_RANK = {OOD: -1, OOD_VAL: -1, "test": 0, "val": 1, "train": 2}
PHOTO_TYPES = ("burning", "exposed_garbage", "overflowing_garbage")
"""The problem types the shared data says yes or no to on every photo: what the photo classifier learns."""
GENERIC_STEMS = {"img", "image", "images", "pic", "photo", "frame", "download"}
PHOTOS_FILE = "photos.csv"
DEFAULT_RECIPE = Path(__file__).resolve().parents[1] / "datasets" / "sources.yaml"


def ignore_class_id(label: str) -> int:
    """Class id of an 'ignore this label here' region; see training/partial_labels.py."""
    return len(LABEL_NAMES) + LABEL_NAMES.index(label)


@dataclass
class Item:
    source: str
    path: Path
    split: str
    source_split: str
    group: str
    boxes: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    unlabelled: tuple[str, ...] = ()
    dhash: int = 0
    photo_types: frozenset[str] | None = None
    """Problem types a photo-level source (no boxes) says the photo shows; None for box sources."""

    @property
    def shows(self) -> frozenset[str]:
        """The problem types this photo shows: its folder's, or those its boxes raise."""
        if self.photo_types is not None:
            return self.photo_types
        return frozenset(p for c, *_ in self.boxes if (p := problem_for_label(LABEL_NAMES[c])) is not None)

    @property
    def for_detector(self) -> bool:
        """Whether the detector can learn from it: it has boxes, or shows nothing (a negative)."""
        return self.photo_types is None or not self.photo_types

    @property
    def name(self) -> str:
        return f"{self.source}__{self.source_split}__{self.path.stem}"


def read_yolo_labels(path: Path) -> tuple[list[tuple[int, float, float, float, float]], int]:
    """Parse one label file line by line; returns (boxes, number of malformed lines skipped)."""
    boxes, bad = [], 0
    if not path.exists():
        return boxes, bad
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            cls, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:5])
        except (ValueError, TypeError):
            bad += 1
            continue
        if len(parts) != 5 or w <= 0 or h <= 0:
            bad += 1
            continue
        x1, y1 = max(cx - w / 2, 0.0), max(cy - h / 2, 0.0)
        x2, y2 = min(cx + w / 2, 1.0), min(cy + h / 2, 1.0)
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            bad += 1
            continue
        boxes.append((cls, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1))
    return boxes, bad


def group_key(stem: str) -> str:
    """Frames of one video share a group, so a split never holds a neighbour of another's frame."""
    video = re.match(r"^(.*_mp4)-\d+", stem)
    if video:
        return video.group(1).lower()
    sequence = re.match(r"^([A-Za-z][A-Za-z_\-]{2,}?)[_\-]?\d+$", stem)
    if sequence and sequence.group(1).lower().strip("_-") not in GENERIC_STEMS:
        return sequence.group(1).lower()
    return stem.lower()


def unit_hash(text: str) -> float:
    """A stable number in [0, 1) for a string, the same on every machine and Python."""
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big") / 2**64


def near_duplicate_clusters(
    hashes: np.ndarray, groups: list[str], max_bits: int, twins: Sequence[tuple[int, int]] = ()
) -> list[int]:
    """Cluster id per image: images join when they share a name group, look near-identical or are `twins`."""
    parent = list(range(len(groups)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    first_of_group: dict[str, int] = {}
    for index, group in enumerate(groups):
        parent[find(index)] = find(first_of_group.setdefault(group, index))
    distance = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    for a, b in [*zip(*np.nonzero(np.triu(distance <= max_bits, 1)), strict=True), *twins]:
        parent[find(int(a))] = find(int(b))
    return [find(i) for i in range(len(groups))]


def clusters_of(items: list[Item], max_bits: int, twins: set[frozenset[str]]) -> list[list[Item]]:
    """`items` (one source) grouped by `near_duplicate_clusters`, twin pairs given by image name."""
    hashes = np.array([item.dhash for item in items], dtype=np.uint64)
    index = {item.name: i for i, item in enumerate(items)}
    edges = [tuple(index[name] for name in pair) for pair in twins if all(name in index for name in pair)]
    clusters: dict[int, list[Item]] = defaultdict(list)
    for item, cluster in zip(
        items, near_duplicate_clusters(hashes, [i.group for i in items], max_bits, edges), strict=True
    ):
        clusters[cluster].append(item)
    return sorted(clusters.values(), key=lambda c: (-len(c), unit_hash(min(i.name for i in c))))


def assign_cluster_splits(clusters: list[list[Item]], fractions: dict[str, float]) -> None:
    """Give whole clusters to splits, largest first, each to the split furthest below its share.

    Splitting frame by frame would put neighbouring video frames (or one CCTV scene) on both
    sides and inflate held-out scores; one fixed camera here makes a cluster of a third of a set.
    Clusters of negatives only (frames without fire or smoke) are shared out by their own
    fractions (`fractions["negatives"]`): they are the hard negatives that thresholds are capped
    on and false alarms measured on, and a proportional share would leave val a handful.
    """
    negative = [c for c in clusters if not any(item.boxes or item.shows for item in c)]
    for part, shares in (
        (negative, fractions.get("negatives", fractions)),
        ([c for c in clusters if c not in negative], fractions),
    ):
        share = {"test": shares["test"], "val": shares["val"]}
        share["train"] = 1.0 - share["test"] - share["val"]
        total = sum(len(c) for c in part)
        filled: Counter = Counter()
        for cluster in part:
            split = max(SPLITS, key=lambda s: share[s] * total - filled[s])
            filled[split] += len(cluster)
            for item in cluster:
                item.split = split


def split_kept_source(clusters: list[list[Item]], val_fraction: float) -> Counter:
    """Splits for a source that keeps its own train/test boundary; returns the drops it makes.

    A cluster holding a test image loses its train members (twins of a test photo must not be
    learnt); other clusters of train images go to val whole, by a hash of their first name.
    """
    dropped: Counter = Counter()
    for cluster in clusters:
        if any(item.split == "test" for item in cluster):
            for item in cluster:
                if item.split != "test":
                    item.split = ""
                    dropped[f"{item.source}/train"] += 1
        elif unit_hash(min(item.name for item in cluster)) < val_fraction:
            for item in cluster:
                item.split = "val"
    return dropped


def inherit_splits(clusters: list[list[Item]], earlier: list[Item], max_bits: int) -> tuple[list[list[Item]], int]:
    """Clusters holding a near-duplicate of an earlier source's photo take that photo's split; returns the rest.

    Sources are split in recipe order, so adding a source never moves an earlier one's photos (the
    shipped detector was trained on their train split): a copy of one of them in the new source
    follows it instead of landing held out beside its trained twin. A cluster near photos of
    several splits goes to the least held-out one, so no earlier train photo is ever dropped for
    it; its members that copy an earlier held-out photo are then dropped from train as leaks.
    Returns the clusters still to split and how many photos inherited a split.
    """
    if not earlier:
        return clusters, 0
    known = np.array([item.dhash for item in earlier], dtype=np.uint64)
    rest, inherited = [], 0
    for cluster in clusters:
        hashes = np.array([item.dhash for item in cluster], dtype=np.uint64)
        near = (np.bitwise_count(hashes[:, None] ^ known[None, :]) <= max_bits).any(axis=0)
        if not near.any():
            rest.append(cluster)
            continue
        split = max((earlier[i].split for i in np.flatnonzero(near)), key=SPLIT_RANK.__getitem__)
        for item in cluster:
            item.split = split
        inherited += len(cluster)
    return rest, inherited


def split_ood(clusters: list[list[Item]], fraction: float, val_fraction: float = 0.0) -> list[list[Item]]:
    """Send `fraction` of the clusters (by a hash of their first name) out of domain; returns the others.

    Of those, `val_fraction` (by a second hash) go to `OOD_VAL`, which chooses, and the rest to `OOD`,
    which only reports. Whole clusters, so no near-twin of an out-of-domain photo is trained on or
    crosses from choosing to reporting; chosen by hash, not by looking, so nothing about the photos
    chose them. The first hash alone decides what is out of domain, so carving a val from it
    moves no photo into or out of training.
    """
    rest = []
    for cluster in clusters:
        first = min(item.name for item in cluster)
        if unit_hash("ood:" + first) < fraction:
            split = OOD_VAL if unit_hash("ood-val:" + first) < val_fraction else OOD
            for item in cluster:
                item.split = split
        else:
            rest.append(cluster)
    return rest


def relabel_empty(items: list[Item], rules: dict[str, list[str]]) -> int:
    """Photos whose label file is empty but which show a problem (`rules`: file-name pattern -> problem types)
    become photo-level photos of those types, with no boxes; returns how many.

    Run after the splits are made, so that no photo moves between splits (a detector already trained
    on the train split stays honest): only what the photo is said to show changes.
    """
    changed = 0
    for item in items:
        if item.boxes or item.photo_types is not None:
            continue
        for pattern, types in rules.items():
            if fnmatch.fnmatch(item.path.name, pattern):
                item.photo_types = frozenset(types)
                changed += 1
                break
    return changed


def difference_hash(path: Path) -> int:
    """64-bit dHash: robust to re-encoding and resizing, which is how copies differ here."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"unreadable image: {path}")
    small = cv2.resize(image, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def collect(shared: Path, recipe: dict) -> tuple[list[Item], Counter]:
    """Every image with its boxes mapped to detector labels; split left empty where re-split."""
    items: list[Item] = []
    stats: Counter = Counter()
    for source, spec in recipe["sources"].items():
        if "photo_folders" in spec:
            items += collect_photo_folders(shared, source, spec["photo_folders"])
            continue
        class_map = {int(k): LABEL_NAMES.index(v) for k, v in spec["classes"].items()}
        negatives = set(spec.get("negative_classes", []))
        kept_splits = spec.get("keep_source_splits")
        for split_dir in sorted(p for p in (shared / source).iterdir() if p.is_dir()):
            for image in sorted((split_dir / "images").iterdir()):
                if image.suffix.lower() not in TRAINING_SUFFIXES:
                    continue
                raw, bad = read_yolo_labels(split_dir / "labels" / f"{image.stem}.txt")
                stats[f"{source}: malformed label lines"] += bad
                boxes = []
                for cls, *xywh in raw:
                    if cls in negatives:
                        stats[f"{source}: negative-frame boxes dropped"] += 1
                    elif cls in class_map:
                        boxes.append((class_map[cls], *xywh))
                    else:
                        stats[f"{source}: unknown class boxes dropped"] += 1
                group = group_key(image.stem)
                # Decided per cluster once every image is hashed; a kept source split is a starting point.
                split = kept_splits[split_dir.name] if kept_splits else ""
                items.append(
                    Item(source, image, split, split_dir.name, group, boxes, tuple(spec.get("unlabelled", ())))
                )
    return items, stats


def collect_photo_folders(shared: Path, source: str, folders: dict[str, list[str]]) -> list[Item]:
    """A source whose folder names are its photo-level labels (`photo_folders`: folder -> problem types)."""
    items = []
    for folder, types in folders.items():
        for image in sorted((shared / source / folder).iterdir()):
            if image.suffix.lower() in TRAINING_SUFFIXES:
                items.append(Item(source, image, "", folder, group_key(image.stem), photo_types=frozenset(types)))
    return items


def drop_leaks(items: list[Item], max_bits: int) -> tuple[list[Item], Counter]:
    """Drop images that are near-duplicates of an image in a more held-out split, across all sources.

    Across sources because the same photo is in two of them (fire-scenes-cair has frames of
    fire-continuous): one of them held out and the other trained on would be a leak.
    """
    hashes = np.array([item.dhash for item in items], dtype=np.uint64)
    ranks = np.array([SPLIT_RANK[item.split] for item in items])
    keep = np.ones(len(items), dtype=bool)
    dropped: Counter = Counter()
    for rank in sorted(set(SPLIT_RANK.values()))[1:]:  # test against ood, val against both, then train
        lower = np.flatnonzero(ranks == rank)
        higher = np.flatnonzero((ranks < rank) & keep)
        if not len(lower) or not len(higher):
            continue
        distance = np.bitwise_count(hashes[lower][:, None] ^ hashes[higher][None, :])
        leaked = lower[(distance <= max_bits).any(axis=1)]
        keep[leaked] = False
        for i in leaked:
            dropped[f"{items[i].source}/{items[i].split}"] += 1
    return [item for item, k in zip(items, keep, strict=True) if k], dropped


def label_lines(item: Item) -> list[str]:
    lines = [f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for c, cx, cy, w, h in item.boxes]
    if item.split == "train":
        # The whole frame is an 'ignore' region for labels the source never annotated; the
        # region moves with mosaic and affine augmentation like any box.
        lines += [f"{ignore_class_id(label)} 0.5 0.5 1 1" for label in item.unlabelled]
    return lines


def write_dataset(items: list[Item], out: Path) -> Path:
    for split in ALL_SPLITS:
        for kind in ("images", "labels"):
            target = out / kind / split
            target.mkdir(parents=True, exist_ok=True)
            for old in target.iterdir():
                old.unlink()
    for item in (item for item in items if item.for_detector):
        link = out / "images" / item.split / f"{item.name}{item.path.suffix.lower()}"
        os.symlink(item.path.resolve(), link)
        lines = label_lines(item)
        (out / "labels" / item.split / f"{item.name}.txt").write_text("\n".join(lines) + "\n" if lines else "")
    data = {
        "path": str(out.resolve()),
        **{split: f"images/{split}" for split in ALL_SPLITS},
        "names": dict(enumerate(LABEL_NAMES)),
    }
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return out / "data.yaml"


def manifest_text(items: list[Item]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["split", "source", "source_split", "image", "group", "dhash", "shows", *LABEL_NAMES])
    for item in sorted(items, key=lambda i: (i.split, i.name)):
        counts = Counter(c for c, *_ in item.boxes)
        writer.writerow(
            [
                item.split,
                item.source,
                item.source_split,
                item.path.name,
                item.group,
                f"{item.dhash:016x}",
                " ".join(sorted(item.shows)),
                *(counts.get(i, 0) for i in range(len(LABEL_NAMES))),
            ]
        )
    return buffer.getvalue()


def photos_text(items: list[Item]) -> str:
    """Every photo with its split and photo-level truth (1/0 per `PHOTO_TYPES`): the classifier's dataset."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["split", "source", "name", "path", "labels", *PHOTO_TYPES])
    for item in sorted(items, key=lambda i: (i.split, i.name)):
        shows = item.shows
        writer.writerow(
            [
                item.split,
                item.source,
                item.name,
                str(item.path.resolve()),
                "boxes" if item.photo_types is None else "photo",
                *(int(p in shows) for p in PHOTO_TYPES),
            ]
        )
    return buffer.getvalue()


def dataset_card(items: list[Item], stats: Counter, dropped: Counter, recipe: dict, digest: str) -> str:
    table: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for item in items:
        row = table[(item.source, item.split)]
        row["images"] += 1
        row["negatives"] += not item.shows
        row["photo-level only"] += not item.for_detector
        for c, *_ in item.boxes:
            row[LABEL_NAMES[c]] += 1
        for problem in item.shows:
            row[f"photos: {problem}"] += 1
    header = ["source", "split", "images", "negatives", "photo-level only", *LABEL_NAMES]
    header += [f"photos: {problem}" for problem in PHOTO_TYPES]
    lines = [
        "# envwatch detector dataset card",
        "",
        "Generated by `envwatch dataset build` from `datasets/sources.yaml`; do not edit by hand.",
        f"Manifest sha256: `{digest}` (same inputs and recipe give the same digest).",
        "",
        "Per source and split: images, negatives (photos showing no problem), photos with a photo-level label",
        "only (no boxes: they train and score the photo classifier, not the detector), boxes per detector label,",
        f"and photos showing each problem type. Split `{OOD}` is the out-of-domain test: never trained on, never",
        f"used to choose anything. Split `{OOD_VAL}` is the out-of-domain val: never trained on, it chooses",
        "beside val.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for source in recipe["sources"]:
        for split in ALL_SPLITS:
            row = table.get((source, split))
            if row:
                lines.append("| " + " | ".join([source, split, *(str(row[h]) for h in header[2:])]) + " |")
    totals: Counter = Counter()
    for (_, split), row in table.items():
        totals.update({f"{split}:{k}": v for k, v in row.items()})
    for split in ALL_SPLITS:
        lines.append(
            "| **all** | " + split + " | " + " | ".join(str(totals[f"{split}:{h}"]) for h in header[2:]) + " |"
        )
    lines += ["", "Handled on the way:", ""]
    lines += [f"- {key}: {value}" for key, value in sorted(stats.items())]
    lines += [
        f"- near-duplicates or twins of a more held-out image dropped from {key}: {value}"
        for key, value in sorted(dropped.items())
    ]
    lines += ["", "Attribution (each source's licence is named in its line):", ""]
    lines += [f"- {' '.join(spec['attribution'].split())}" for spec in recipe["sources"].values()]
    return "\n".join(lines) + "\n"


def build(shared: Path, out: Path, recipe_path: Path = DEFAULT_RECIPE, card: Path | None = None) -> Path:
    """Build the dataset under `out`; returns the path of its data.yaml."""
    recipe = yaml.safe_load(recipe_path.read_text())
    items, stats = collect(shared, recipe)
    for item in items:
        item.dhash = difference_hash(item.path)
    split = recipe["split"]
    twins = read_twin_pairs(recipe_path.parent / split["twin_pairs"]) if split.get("twin_pairs") else set()
    dropped: Counter = Counter()
    bits = split["near_duplicate_bits"]
    for source, spec in recipe["sources"].items():
        clusters = clusters_of([item for item in items if item.source == source], bits, twins)
        if spec.get("keep_source_splits"):
            dropped += split_kept_source(clusters, split["val"])
            continue
        if spec.get("follow_earlier_copies"):
            earlier = [item for item in items if item.split and item.source != source]
            clusters, inherited = inherit_splits(clusters, earlier, bits)
            stats[f"{source}: photos that follow a copy in an earlier source into its split"] += inherited
        if spec.get("ood_fraction"):
            clusters = split_ood(clusters, spec["ood_fraction"], spec.get("ood_val_fraction", 0.0))
        assign_cluster_splits(clusters, split)
        if "empty_labels_show" in spec:
            own = [item for item in items if item.source == source]
            shown = relabel_empty(own, spec["empty_labels_show"])
            stats[f"{source}: photos with an empty label file that show a problem (photo-level, no boxes)"] += shown
    items, leaks = drop_leaks([item for item in items if item.split], split["near_duplicate_bits"])
    dropped += leaks
    data_yaml = write_dataset(items, out)
    manifest = manifest_text(items)
    (out / "manifest.csv").write_text(manifest)
    (out / PHOTOS_FILE).write_text(photos_text(items))
    digest = hashlib.sha256(manifest.encode()).hexdigest()
    text = dataset_card(items, stats, dropped, recipe, digest)
    (out / "CARD.md").write_text(text)
    if card is not None:
        card.write_text(text)
    return data_yaml


def read_twin_pairs(path: Path) -> set[frozenset[str]]:
    """Twin pairs by image name from `envwatch dataset pairs`' CSV (columns a, b, ...)."""
    with open(path, newline="") as handle:
        return {frozenset((row["a"], row["b"])) for row in csv.DictReader(handle)}


def write_twin_pairs(shared: Path, recipe_path: Path, out: Path) -> int:
    """Find twin photos within each source (`training.twins.twin_pairs`) and write them for the recipe.

    Slow (a CNN pass over every image, then a geometric check per shortlisted pair), so it runs once
    and its CSV is kept beside the recipe, which stays fast and deterministic. Returns the pair count.
    """
    from training.twins import Describer, twin_pairs  # torch, only for this step

    recipe = yaml.safe_load(recipe_path.read_text())
    items, _ = collect(shared, recipe)
    describer = Describer()
    rows = []
    for source in recipe["sources"]:
        named = {item.path: item.name for item in items if item.source == source}
        for twin in twin_pairs(list(named), describer):
            geometry = twin.geometry
            rows.append(
                [
                    named[twin.query],
                    named[twin.match],
                    f"{twin.similarity:.4f}",
                    geometry.inliers,
                    f"{geometry.coverage:.4f}",
                ]
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["a", "b", "similarity", "inliers", "coverage"])
        writer.writerows(sorted(rows))
    return len(rows)
