"""The dataset recipe against the real shared data: mapping, traps, leaks and determinism."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from model.taxonomy import LABEL_NAMES
from training.dataset import (
    DEFAULT_RECIPE,
    Item,
    assign_cluster_splits,
    difference_hash,
    group_key,
    ignore_class_id,
    near_duplicate_clusters,
    read_twin_pairs,
    read_yolo_labels,
    split_kept_source,
)

RECIPE = yaml.safe_load(DEFAULT_RECIPE.read_text())


def manifest(dataset: Path) -> list[dict[str, str]]:
    with open(dataset / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def label_rows(dataset: Path, split: str, prefix: str) -> dict[str, list[list[str]]]:
    return {
        path.stem: [line.split() for line in path.read_text().splitlines()]
        for path in (dataset / "labels" / split).glob(f"{prefix}__*.txt")
    }


def test_labels_without_trailing_newline_are_read_line_by_line(tmp_path: Path) -> None:
    label = tmp_path / "a.txt"
    label.write_text("0 0.5 0.5 0.2 0.2\n2 0.1 0.1 0.1 0.1")  # no final newline, as in the shared sets
    boxes, bad = read_yolo_labels(label)
    assert [b[0] for b in boxes] == [0, 2] and bad == 0


def test_malformed_and_out_of_frame_boxes_are_skipped_or_clipped(tmp_path: Path) -> None:
    label = tmp_path / "a.txt"
    label.write_text("0 0.5 0.5 0.2\nx 0.5 0.5 0.2 0.2\n1 0.95 0.5 0.2 0.2\n1 1.5 1.5 0.1 0.1\n")
    boxes, bad = read_yolo_labels(label)
    assert bad == 3
    ((cls, cx, _, w, _),) = boxes
    assert cls == 1 and abs(cx + w / 2 - 1.0) < 1e-9  # clipped to the right edge


def test_every_split_exists_and_classes_map_onto_the_taxonomy(built_dataset: Path) -> None:
    data = yaml.safe_load((built_dataset / "data.yaml").read_text())
    assert list(data["names"].values()) == list(LABEL_NAMES)
    rows = manifest(built_dataset)
    by_split_source = Counter((r["split"], r["source"]) for r in rows)
    for source in RECIPE["sources"]:
        for split in ("train", "val", "test"):
            assert by_split_source[(split, source)] > 0, (split, source)
    boxes = Counter()
    for row in rows:
        for label in LABEL_NAMES:
            boxes[(row["source"], label)] += int(row[label])
    assert boxes[("garbage-cn", "fire")] == 0 and boxes[("fire-continuous", "smoke")] == 0
    assert boxes[("garbage-cn", "overflowing_garbage")] > 1000 and boxes[("fire-smoke-8", "smoke")] > 100


def test_default_class_frames_become_negatives(built_dataset: Path, shared_datasets: Path) -> None:
    """fire-smoke-8's class 1 'default' is a whole-frame 'nothing here' box: no box may survive."""
    source_defaults = set()
    for split in ("train", "valid", "test"):
        for label in (shared_datasets / "fire-smoke-8" / split / "labels").glob("*.txt"):
            boxes, _ = read_yolo_labels(label)
            if boxes and all(b[0] == 1 for b in boxes):
                source_defaults.add(f"fire-smoke-8__{split}__{label.stem}")
    assert source_defaults, "expected default-only frames in fire-smoke-8"
    written = {}
    for split in ("train", "val", "test"):
        written.update(label_rows(built_dataset, split, "fire-smoke-8"))
    present = source_defaults & set(written)
    assert present and all(written[name] == [] for name in present)


def test_unlabelled_smoke_is_an_ignore_region_in_training_only(built_dataset: Path) -> None:
    ignore = str(ignore_class_id("smoke"))
    train = label_rows(built_dataset, "train", "fire-continuous")
    assert train and all([ignore, "0.5", "0.5", "1", "1"] in rows for rows in train.values())
    for split in ("val", "test"):
        for rows in label_rows(built_dataset, split, "fire-continuous").values():
            assert all(int(row[0]) < len(LABEL_NAMES) for row in rows)
    for rows in label_rows(built_dataset, "train", "fire-smoke-8").values():
        assert all(int(row[0]) < len(LABEL_NAMES) for row in rows)


def test_no_near_duplicate_crosses_into_a_more_held_out_split(built_dataset: Path) -> None:
    rows = manifest(built_dataset)
    hashes = {
        split: np.array([int(r["dhash"], 16) for r in rows if r["split"] == split], dtype=np.uint64)
        for split in ("train", "val", "test")
    }
    bits = RECIPE["split"]["near_duplicate_bits"]
    for lower, higher in (("train", "val"), ("train", "test"), ("val", "test")):
        distance = np.bitwise_count(hashes[lower][:, None] ^ hashes[higher][None, :])
        assert distance.min() > bits, f"{lower} holds a near-duplicate of a {higher} image"


def test_video_frames_stay_in_one_split(built_dataset: Path) -> None:
    splits_of_group: dict[tuple[str, str], set[str]] = {}
    for row in manifest(built_dataset):
        if row["source"] != "garbage-cn":
            splits_of_group.setdefault((row["source"], row["group"]), set()).add(row["split"])
    assert splits_of_group and all(len(splits) == 1 for splits in splits_of_group.values())


def test_garbage_cn_test_split_is_the_unaugmented_source_valid(built_dataset: Path) -> None:
    rows = [r for r in manifest(built_dataset) if r["source"] == "garbage-cn"]
    assert {r["source_split"] for r in rows if r["split"] == "test"} == {"valid"}
    assert {r["source_split"] for r in rows if r["split"] != "test"} == {"train"}


def test_build_is_deterministic(built_dataset: Path, shared_datasets: Path, tmp_path: Path) -> None:
    from training.dataset import build

    again = build(shared_datasets, tmp_path / "again").parent
    assert (again / "manifest.csv").read_bytes() == (built_dataset / "manifest.csv").read_bytes()
    first = sorted(p.name for p in (built_dataset / "labels" / "train").iterdir())
    assert first == sorted(p.name for p in (again / "labels" / "train").iterdir())


def test_group_key_joins_video_frames_not_generic_names() -> None:
    assert group_key("fire2_mp4-28") == group_key("fire2_mp4-3") == "fire2_mp4"
    assert group_key("CarOne110") == group_key("CarOne13") == "carone"
    assert group_key("img_104") != group_key("img_105")


def test_near_duplicate_clusters_join_by_hash_and_by_group(shared_datasets: Path) -> None:
    image = next((shared_datasets / "garbage-cn" / "valid" / "images").glob("*.jpg"))
    h = difference_hash(image)
    hashes = np.array([h, h ^ 0b11, ~h & (2**64 - 1), 12345], dtype=np.uint64)
    clusters = near_duplicate_clusters(hashes, ["a", "b", "c", "c"], max_bits=6)
    assert clusters[0] == clusters[1]  # two bits apart
    assert clusters[2] == clusters[3]  # same name group
    assert clusters[0] != clusters[2]


def test_twin_pairs_never_straddle_two_splits(built_dataset: Path) -> None:
    """Each listed twin pair lands in one split, or the train twin of a test photo is left out."""
    split_of = {
        f"{r['source']}__{r['source_split']}__{Path(r['image']).stem}": r["split"] for r in manifest(built_dataset)
    }
    pairs = read_twin_pairs(DEFAULT_RECIPE.parent / RECIPE["split"]["twin_pairs"])
    both_kept = [pair for pair in pairs if all(name in split_of for name in pair)]
    assert len(both_kept) > 100  # the list is real and mostly kept
    assert [sorted(p) for p in both_kept if len({split_of[n] for n in p}) > 1] == []


def test_hard_negatives_get_more_than_a_proportional_share_of_val_and_test(built_dataset: Path) -> None:
    """Negative-only clusters follow `negatives` fractions; negatives in mixed clusters move with them."""
    negatives = Counter(
        r["split"]
        for r in manifest(built_dataset)
        if r["source"] == "fire-smoke-8" and all(int(r[label]) == 0 for label in LABEL_NAMES)
    )
    total = sum(negatives.values())
    for split in ("val", "test"):
        assert negatives[split] > RECIPE["split"][split] * total, (split, negatives)


def _item(name: str, boxes: bool, split: str = "") -> Item:
    return Item("s", Path(f"{name}.jpg"), split, "train", name, [(0, 0.5, 0.5, 0.1, 0.1)] if boxes else [])


def test_negative_clusters_are_shared_out_by_their_own_fractions() -> None:
    positives = [[_item(f"p{i}", True)] for i in range(20)]
    negatives = [[_item(f"n{i}", False)] for i in range(8)]
    fractions = {"val": 0.1, "test": 0.1, "negatives": {"val": 0.25, "test": 0.25}}
    assign_cluster_splits(positives + negatives, fractions)
    assert Counter(c[0].split for c in negatives) == {"train": 4, "val": 2, "test": 2}
    assert Counter(c[0].split for c in positives) == {"train": 16, "val": 2, "test": 2}


def test_kept_source_drops_train_twins_of_test_and_moves_clusters_whole() -> None:
    test_photo, its_twin = _item("t", True, "test"), _item("t-copy", True, "train")
    clusters = [
        [test_photo, its_twin],
        *[[_item(f"a{i}", True, "train"), _item(f"b{i}", True, "train")] for i in range(30)],
    ]
    dropped = split_kept_source(clusters, val_fraction=0.3)
    assert (test_photo.split, its_twin.split, dropped) == ("test", "", Counter({"s/train": 1}))
    splits = [{item.split for item in cluster} for cluster in clusters[1:]]
    assert all(len(s) == 1 for s in splits) and {"val"} in splits and {"train"} in splits


def test_unlabelled_fire_photos_are_burning_without_boxes_and_move_no_split(
    built_dataset: Path, shared_datasets: Path, tmp_path: Path
) -> None:
    """fire-smoke-pd's empty label files named large_-N- belong to photos of fires (looked at one by one): they
    show burning, photo-level, and leave the detector's set; every photo keeps the split it has without
    the rule, so a detector trained before it stays honest."""
    import shutil

    from training.dataset import build

    rows = {(r["source"], r["source_split"], r["image"]): r for r in manifest(built_dataset)}
    empty = [p for p in (shared_datasets / "fire-smoke-pd").glob("*/labels/large_-*.txt") if p.stat().st_size == 0]
    fires = [rows[("fire-smoke-pd", p.parents[1].name, f"{p.stem}.jpg")] for p in empty]
    assert len(fires) == 28 and all(r["shows"] == "burning" for r in fires)
    for row in fires:
        name = f"fire-smoke-pd__{row['source_split']}__{Path(row['image']).stem}"
        assert not (built_dataset / "images" / row["split"] / f"{name}.jpg").exists()
    recipe = yaml.safe_load(DEFAULT_RECIPE.read_text())
    del recipe["sources"]["fire-smoke-pd"]["empty_labels_show"]
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(recipe, allow_unicode=True, sort_keys=False))
    shutil.copy(DEFAULT_RECIPE.parent / recipe["split"]["twin_pairs"], tmp_path)
    without = build(shared_datasets, tmp_path / "without", recipe_path=tmp_path / "sources.yaml").parent
    before = {(r["source"], r["source_split"], r["image"]): r for r in manifest(without)}
    assert {key: r["split"] for key, r in before.items()} == {key: r["split"] for key, r in rows.items()}
    assert {before[("fire-smoke-pd", r["source_split"], r["image"])]["shows"] for r in fires} == {""}
