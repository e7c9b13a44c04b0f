"""A reviews export merged into the built shared dataset: labels, renumbered ignore regions, fixed splits; how
`envwatch evaluate`'s code measures a merged dataset per photo, and `envwatch models add|evaluate` for real."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from inference_api.cli import main as envwatch
from model.registry import Registry, RegistryError, Version
from model.runtime import Detector
from model.taxonomy import LABEL_NAMES, problem_for_label
from training.evaluate import evaluate
from training.review_merge import merge
from training.reviews import SPLITS, ReviewedBox, ReviewedImage, export_files, read_export, split_of

GARBAGE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "garbage-cn" / "valid" / "images"


def box(label: str, type_: str, ref: str, kind: str = "manual") -> ReviewedBox:
    return ReviewedBox(label, type_, (10.0, 20.0, 110.0, 220.0), kind, "wang", "2026-01-01T00:00:00+00:00", None, ref)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos: 6 with a structure box, 2 with a single clutter box (too few), one with only a dismissed fire."""
    photos = sorted(GARBAGE.glob("*.jpg"))[:9]
    images = []
    for n, photo in enumerate(photos):
        sha = hashlib.sha256(photo.read_bytes()).hexdigest()
        if n < 6:
            boxes, negatives = (box("illegal_structure", "illegal_structure", f"label:{n}"),), ()
        elif n < 8:
            boxes, negatives = (box("clutter_pile", "clutter_pile", f"label:{n}"),), ()
        else:
            boxes, negatives = (), (box("fire", "burning", f"finding:{n}", "dismissed"),)
        images.append(ReviewedImage(sha, ".jpg", 480, 480, boxes, negatives))
    return write_export(images, photos, tmp_path_factory.mktemp("export"))


def write_export(images: list[ReviewedImage], photos: list[Path], folder: Path) -> Path:
    """`images` as the service exports them, the photo of each read from `photos`."""
    by_sha = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in photos}
    for name, data in export_files(images, lambda sha: by_sha[sha].read_bytes()):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def held_out_merge(built_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A merged dataset whose reviewed test photos are known: 3 with a structure box, 1 with a dismissed structure
    (annotates the label, shows none), 1 with a dismissed fire (annotates fire alone); 3 train and 2 val photos with
    a structure box make the new label; 1% of the shared photos."""
    by_split: dict[str, list[Path]] = {split: [] for split in SPLITS}
    for photo in sorted(GARBAGE.glob("*.jpg")):
        by_split[split_of(hashlib.sha256(photo.read_bytes()).hexdigest())].append(photo)
    photos = [*by_split["train"][:3], *by_split["val"][:2], *by_split["test"][:5]]
    images = []
    for n, photo in enumerate(photos):
        sha = hashlib.sha256(photo.read_bytes()).hexdigest()
        boxes, negatives = (box("illegal_structure", "illegal_structure", f"label:{n}"),), ()
        if n == 8:
            boxes, negatives = (), (box("illegal_structure", "illegal_structure", f"finding:{n}", "dismissed"),)
        elif n == 9:
            boxes, negatives = (), (box("fire", "burning", f"finding:{n}", "dismissed"),)
        images.append(ReviewedImage(sha, ".jpg", 480, 480, boxes, negatives))
    export = write_export(images, photos, tmp_path_factory.mktemp("held-out-export"))
    out = tmp_path_factory.mktemp("held-out") / "merged"
    return merge(built_dataset / "data.yaml", export, out, min_boxes=3, shared_fraction=0.01).parent


def label_rows(path: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()]


def test_export_is_a_yolo_dataset_with_provenance_and_hash_splits(export: Path, tmp_path: Path) -> None:
    images = read_export(export)
    assert len(images) == 9
    data = yaml.safe_load((export / "data.yaml").read_text())
    assert list(data["names"].values()) == [*LABEL_NAMES, "illegal_structure", "clutter_pile"]
    for image in images:
        assert (export / "images" / split_of(image.sha256) / image.file).is_file()
    csv_rows = (export / "provenance.csv").read_text().splitlines()
    assert len(csv_rows) == 1 + 9 and csv_rows[0].startswith("image,split,kind")
    altered = shutil.copytree(export, tmp_path / "altered")
    (altered / "images" / images[0].split / images[0].file).write_bytes(b"changed")
    with pytest.raises(ValueError, match="sha256 differs"):
        read_export(altered)


def test_merge_adds_only_types_with_enough_boxes_and_renumbers_ignore_regions(
    export: Path, built_dataset: Path, tmp_path: Path
) -> None:
    data_yaml = merge(built_dataset / "data.yaml", export, tmp_path / "merged", min_boxes=3, shared_fraction=0.01)
    names = list(yaml.safe_load(data_yaml.read_text())["names"].values())
    nc = len(names)
    assert names == [*LABEL_NAMES, "illegal_structure"]
    record = json.loads((tmp_path / "merged" / "reviews.json").read_text())
    assert record["new_labels"] == {"illegal_structure": 6} and record["waiting_labels"] == {"clutter_pile": 2}
    assert sum(record["reviewed_images"].values()) == 7  # the clutter-only photos wait; the dismissed fire teaches
    shared_train = [p for p in (tmp_path / "merged" / "labels" / "train").iterdir() if "reviews__" not in p.name]
    assert shared_train
    smoke_ignore, structure_ignore = nc + LABEL_NAMES.index("smoke"), nc + names.index("illegal_structure")
    for path in shared_train:
        classes = {int(row[0]) for row in label_rows(path)}
        assert structure_ignore in classes  # no shared source annotates the new type
        assert all(c < nc or c in (smoke_ignore, structure_ignore) for c in classes)
    for path in (tmp_path / "merged" / "labels" / "train").glob("reviews__*"):
        classes = [int(row[0]) for row in label_rows(path)]
        boxes = [c for c in classes if c < nc]
        looked_at = {names[c] for c in boxes} or {"fire"}
        assert sorted(c - nc for c in classes if c >= nc) == [i for i, n in enumerate(names) if n not in looked_at]
    for split in ("val", "test"):
        for path in (tmp_path / "merged" / "images" / split).glob("reviews__*"):
            assert path.name.split("__")[1] == split == split_of(path.stem.split("__")[2])
            assert record["annotated"][path.stem]


def test_registry_promotes_rolls_back_and_never_writes_outside_its_folder(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    assert registry.promoted is None and not registry.versions
    with pytest.raises(RegistryError, match="does not exist"):
        registry.add(Version("v2", "versions/v2/m.onnx", "versions/v2/MODEL_CARD.md", "versions/v2/metrics.json"))
    for version in ("v2", "v3"):
        folder = tmp_path / "versions" / version
        folder.mkdir(parents=True)
        for name in ("m.onnx", "MODEL_CARD.md", "metrics.json"):
            (folder / name).write_text(version)
        registry.add(Version(version, f"versions/{version}/m.onnx", f"versions/{version}/MODEL_CARD.md",
                             f"versions/{version}/metrics.json"))  # fmt: skip
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback("tester")
    registry.promote("v2", "tester")
    registry.promote("v3", "tester")
    with pytest.raises(RegistryError, match="already promoted"):
        registry.promote("v3", "tester")
    assert Registry(tmp_path).rollback("tester").version == "v2"
    reread = Registry(tmp_path)
    assert reread.promoted == "v2" and [p.version for p in reread.history] == ["v2", "v3", "v2"]
    assert reread.path_of("v2") == tmp_path / "versions" / "v2" / "m.onnx"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".registry.lock", "registry.json", "versions"]
    with pytest.raises(RegistryError, match="no model version"):
        reread.promote("v9", "tester")


def test_the_package_registry_promotes_a_complete_version() -> None:
    """What `envwatch serve`, `scan` and `Detector.load()` use by default exists, with its card and metrics."""
    registry = Registry()
    assert registry.promoted is not None and registry.promoted_path().is_file()
    for version in registry.versions.values():
        for name in (version.path, version.card, version.metrics):
            assert (registry.root / name).is_file(), name
    assert Detector.load().version == registry.promoted


def test_merged_dataset_is_measured_per_photo(held_out_merge: Path, tiny_onnx: Path) -> None:
    """The new label counts on the reviewed photos annotating it alone, the model's labels on the photos annotating
    them; a model without the new label (the tiny one, as v1) misses every structure."""
    result, images = evaluate(Detector.load(tiny_onnx), held_out_merge, "test")
    shared = [i for i in images if i.source != "reviews"]
    assert shared and {i.source for i in images} == {"reviews", *(i.source for i in shared)}
    assert result["sources"]["reviews"]["images"] == 5 and result["images"] == len(shared) + 5
    assert list(result["all"]["labels"])[-1] == "illegal_structure"
    assert result["all"]["labels"]["illegal_structure"] == {"ap50": 0.0, "ap50_95": 0.0, "boxes": 3}
    assert list(result["sources"]["reviews"]["labels"]) == ["fire", "illegal_structure"]
    assert result["sources"]["reviews"]["labels"]["fire"]["boxes"] == 0
    for source in {i.source for i in shared}:
        assert "illegal_structure" not in result["sources"][source]["labels"]
        assert "illegal_structure" not in result["sources"][source]["problems"]
    structure = result["all"]["problems"]["illegal_structure"]
    assert (structure["positives"], structure["negatives"], structure["flagged_positives"]) == (3, 1, 0)
    assert result["sources"]["reviews"]["problems"]["burning"]["negatives"] == 1  # the dismissed fire alone


def test_models_add_a_recipe_trained_checkpoint_then_evaluate_it_on_a_merged_dataset(
    tiny_checkpoint: Path, built_dataset: Path, held_out_merge: Path, tmp_path: Path
) -> None:
    """`models add` on the plain recipe dataset (no merge record): thresholds chosen on its val split with the
    burning cap, a card saying no reviewed image was used; then `models evaluate` on a merged dataset."""
    registry = tmp_path / "registry"
    twins = sorted(p.stem for p in (built_dataset / "images" / "test").iterdir())[:2]
    (tmp_path / "test-twins.csv").write_text("image,twin\n" + "".join(f"{name},x\n" for name in twins))
    negatives = tmp_path / "calibrate"
    negatives.mkdir()
    for photo in sorted((built_dataset / "images" / "val").iterdir())[:1]:
        (negatives / f"outside{photo.suffix}").write_bytes(photo.read_bytes())
    command = ["models", "--registry", str(registry), "add", "v2", "--checkpoint", str(tiny_checkpoint)]
    command += ["--exclude-test", str(tmp_path / "test-twins.csv"), "--extra-negatives", str(negatives)]
    command += ["--tile-negatives", str(negatives)]
    assert envwatch([*command, "--dataset", str(built_dataset), "--imgsz", "160", "--limit", "4"]) == 0
    folder = registry / "versions" / "v2"
    card = (folder / "MODEL_CARD.md").read_text()
    assert "**Reviewed images used: 0**" in card and "| all | fire |" in card
    assert "burning: false-alarm cap 0.1" in card and "2 test photos with a near twin in training were left out" in card
    metrics = json.loads((folder / "metrics.json").read_text())
    assert (metrics["split"], set(metrics["sources"])) == (
        "test",
        {"garbage-cn", "fire-smoke-8", "fire-continuous", "fire-smoke-pd", "fire-scenes-cair"},
    )
    assert metrics["images"] == 4 * len(metrics["sources"]) and metrics["excluded"] == 2  # --limit 4 per source
    choice = metrics["threshold_choice"]
    assert choice["extra_negatives"] == {"folder": str(negatives), "images": ["outside"]}
    assert list(choice["labels"]) == list(LABEL_NAMES) and "burning" in choice["caps"]
    shipped = Detector.load(folder / "envwatch-v2.onnx").thresholds
    assert shipped == {label: c["threshold"] for label, c in choice["labels"].items()}
    assert metrics["thresholds"] == shipped  # test was measured at the chosen thresholds
    tiles = Detector.load(folder / "envwatch-v2.onnx").tile_thresholds
    assert metrics["tile_threshold_choice"] == {"folder": str(negatives), "photos": 1, "tile_thresholds": tiles}
    assert set(tiles) == {label for label in LABEL_NAMES if problem_for_label(label)}  # garbage_bin raises nothing
    assert all(shipped[label] <= t <= 1.0 for label, t in tiles.items())
    assert "Tile thresholds, the least score a box found in a tile needs" in card
    entry = Registry(registry).get("v2")
    assert entry.summary == {
        "labels": list(LABEL_NAMES),
        "new_labels": {},
        "reviewed_images": 0,
        "test_map50": metrics["all"]["map50"],
        "test_set": metrics["image_set"],
    }

    assert envwatch(["models", "--registry", str(registry), "evaluate", "v2", "--dataset", str(held_out_merge)]) == 0
    measured = json.loads((folder / f"eval-{held_out_merge.name}-test.json").read_text())
    assert measured["all"]["labels"]["illegal_structure"] == {"ap50": 0.0, "ap50_95": 0.0, "boxes": 3}
    assert measured["sources"]["reviews"]["images"] == 5
