"""The v4 photo classifier: trained, merged into the detector's ONNX and run by the real code.

`tiny_scene_onnx` (conftest.py) is the tiny detector with heads fitted on the pretrained backbone
and merged in by `envwatch scene`'s own functions; these tests check that what serves is what was
trained, that the detector inside is untouched, that scan carries it, and that older files and bad
input behave.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml

from model.images import load_image_file
from model.registry import Registry
from model.runtime import Detector
from training.dataset import DEFAULT_RECIPE, OOD, OOD_VAL, PHOTO_TYPES, PHOTOS_FILE
from training.export import write_metadata
from training.photo_features import detector_input
from training.scene import BACKBONES, Heads, SceneNet, attach, export_scene, load_backbone, read_photos

PHOTOS = [
    "garbage-cn/valid/images",
    "fire-continuous/test/images",
    "fire-smoke-pd/valid/images",
    "fire-scenes-cair/fire",  # web photos of many shapes: the served detector sees them padded only to its stride
]


@pytest.fixture(scope="module")
def photos(shared_datasets: Path) -> list[Path]:
    return [path for folder in PHOTOS for path in sorted((shared_datasets / folder).glob("*.jpg"))[:2]]


def test_served_scores_equal_the_trained_network(tiny_scene_onnx: Path, photos: list[Path]) -> None:
    """The merged graph's `scene` output, on the reference runtime, is the backbone and heads as trained, run in
    torch (other runtimes are held to the reference in tests/test_networks.py)."""
    served = Detector.load(tiny_scene_onnx, runtime="onnxruntime")
    assert served.has_classifier and served.scene_types == PHOTO_TYPES
    assert set(served.fusion) == set(PHOTO_TYPES)
    heads = Heads.load(tiny_scene_onnx.parent / "heads.pt")
    net = SceneNet(load_backbone(heads.backbone), heads.size, heads.linear(), heads.input_size).eval()
    pixels = [load_image_file(path).pixels for path in photos]
    with torch.inference_mode():
        expected = net(torch.from_numpy(np.stack([detector_input(p, served.input_size) for p in pixels]))).numpy()
    got = np.array([[d.scene[t] for t in PHOTO_TYPES] for d in served.detect(pixels)])
    assert got.shape == expected.shape == (len(photos), len(PHOTO_TYPES))
    assert np.abs(got - expected).max() < 1e-3
    assert len({tuple(row.round(3)) for row in got}) > 1, "every photo scored alike: the scores mean nothing"


def test_the_detector_inside_is_untouched(tiny_onnx: Path, tiny_scene_onnx: Path, photos: list[Path]) -> None:
    alone, merged = Detector.load(tiny_onnx), Detector.load(tiny_scene_onnx)
    pixels = [load_image_file(path).pixels for path in photos]
    for a, b in zip(alone.detect(pixels, conf=0.01), merged.detect(pixels, conf=0.01), strict=True):
        assert a.labels == b.labels and np.allclose(a.xyxy, b.xyxy) and np.allclose(a.scores, b.scores)
        assert a.scene == {} and set(b.scene) == set(PHOTO_TYPES)
    assert merged.detect(pixels[:1], scene=False)[0].scene == {}  # as tiles run it


def test_scan_raises_what_the_model_object_raises(tiny_scene_onnx: Path, photos: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in photos:
        shutil.copy(path, folder / f"{path.parents[2].name}-{path.name}")
    served = Detector.load(tiny_scene_onnx)
    envwatch = Path(sys.executable).with_name("envwatch")
    out = tmp_path / "scan.jsonl"
    completed = subprocess.run(
        [str(envwatch), "scan", str(folder), "--model", str(tiny_scene_onnx), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(photos)
    for record in records:
        assert record["model"] == "tiny-scene"
        expected = served.problems(served.detect([load_image_file(Path(record["image"])).pixels])[0])
        got = [(p["type"], p["extent"], p["score"]) for p in record["problems"]]
        assert got == [(p.type, p.extent, round(p.score, 4)) for p in expected]


def test_versions_without_a_classifier_still_load_and_serve(photos: list[Path]) -> None:
    registry = Registry()
    for version in ("v1", "v2", "v3"):
        detector = Detector.load(registry.path_of(version))
        assert not detector.has_classifier and detector.fusion == {}
        (found,) = detector.detect([load_image_file(photos[0]).pixels])
        assert found.scene == {}
        assert all(p.extent == "box" for p in detector.problems(found))


def test_the_dataset_keeps_its_out_of_domain_photos_out_of_everything_trained(built_dataset: Path) -> None:
    """Both out-of-domain splits hold fire and no-fire photos of cair, no photo of training, and no near-twin
    of each other (whole clusters go one way)."""
    photos = read_photos(built_dataset)
    trained = {p.name for p in photos if p.split == "train"}
    held = {}
    for split in (OOD_VAL, OOD):
        held[split] = [p for p in photos if p.split == split]
        assert held[split] and {p.source for p in held[split]} == {"fire-scenes-cair"}
        assert any("burning" in p.shows for p in held[split]) and any(not p.shows for p in held[split])
        assert not trained & {p.name for p in held[split]}
    with open(built_dataset / "manifest.csv", newline="") as handle:
        manifest = list(csv.DictReader(handle))
    hashes = {
        split: np.array([int(row["dhash"], 16) for row in manifest if row["split"] == split], dtype=np.uint64)
        for split in (OOD_VAL, OOD)
    }
    bits = yaml.safe_load(DEFAULT_RECIPE.read_text())["split"]["near_duplicate_bits"]
    assert np.bitwise_count(hashes[OOD_VAL][:, None] ^ hashes[OOD][None, :]).min() > bits
    assert not list((built_dataset / "images" / "train").glob("fire-scenes-cair__fire__*"))  # no boxes: classifier only
    with open(built_dataset / PHOTOS_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["labels"] for row in rows if row["source"] == "fire-scenes-cair"} == {"photo"}


def test_heads_for_another_input_size_are_refused(
    tiny_onnx: Path, tiny_scene_onnx: Path, built_dataset: Path, tmp_path: Path
) -> None:
    """Features computed from a 416 px letterbox do not describe what a 160 px detector's input shows."""
    heads = Heads.load(tiny_scene_onnx.parent / "heads.pt")
    heads.input_size = (416, 416)
    other = tmp_path / "heads-416.pt"
    heads.save(other, {})
    out = tmp_path / "refused.onnx"
    with pytest.raises(ValueError, match=r"heads' features were computed at \[416, 416\]"):
        attach(tiny_onnx, other, built_dataset, out, "refused")
    assert not out.exists()


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"envwatch.fusion": {"burning": {"veto": 2.0, "photo": 0.5}}}, "within 0..1"),
        ({"envwatch.scene": {"types": ["burning"], "output": "nowhere"}}, "names output 'nowhere'"),
    ],
)
def test_damaged_classifier_metadata_is_refused(
    tiny_scene_onnx: Path, tmp_path: Path, meta: dict, message: str
) -> None:
    broken = tmp_path / "broken.onnx"
    shutil.copy(tiny_scene_onnx, broken)
    write_metadata(broken, meta)
    with pytest.raises(ValueError, match=message):
        Detector.load(broken)
    assert onnx.load(str(tiny_scene_onnx)).graph.output[-1].name == "scene"  # the original is untouched


def test_the_choice_record_says_what_the_attached_model_does(tiny_scene_onnx: Path, built_dataset: Path) -> None:
    """The rates `attach` chose by are those of the model it wrote, run as scan and the service run it
    (box thresholds, veto, whole-photo problems and their kin all as shipped), on the photos it chose on."""
    from training.scene import CHOOSING_SPLITS, negative_groups, positive_groups, run_photos

    record = json.loads((tiny_scene_onnx.parent / "fusion.json").read_text())
    results = run_photos(Detector.load(tiny_scene_onnx), read_photos(built_dataset, CHOOSING_SPLITS, limit=8))
    for problem, chosen in record["fusion"].items():
        flagged = np.array([problem in r.fused for r in results])
        positives = {name: g for name, g in positive_groups(results, problem).items() if g.any()}
        assert chosen["recall_by_group"] == {name: pytest.approx(flagged[g].mean()) for name, g in positives.items()}
        negatives = negative_groups(results, problem)
        assert chosen["false_alarms"] == {
            name: pytest.approx(flagged[g].mean()) if g.any() else None for name, g in negatives.items()
        }


def test_a_version_with_a_classifier_gives_back_its_detector_exactly(tiny_onnx: Path, tiny_scene_onnx: Path) -> None:
    """`attach` may start from a shipped version (v6 is v5's networks under a new choice): the detector taken
    out of the merged file answers as the detector did, and keeps no trace of the old classifier's rule."""
    import onnxruntime as ort

    from training.scene import detector_graph

    alone, merged = onnx.load(str(tiny_onnx)), onnx.load(str(tiny_scene_onnx))
    again = detector_graph(merged)
    assert [o.name for o in again.graph.output] == [o.name for o in alone.graph.output]
    keys = {p.key for p in again.metadata_props}
    assert "envwatch.scene" not in keys and "envwatch.fusion" not in keys and "envwatch.names" in keys
    image = np.random.default_rng(0).random((1, 3, 160, 160), dtype=np.float32)
    name = alone.graph.input[0].name
    (want,) = ort.InferenceSession(alone.SerializeToString()).run(None, {name: image})
    (got,) = ort.InferenceSession(again.SerializeToString()).run(None, {name: image})
    np.testing.assert_array_equal(got, want)
    assert detector_graph(alone) is alone


def test_heads_carry_their_backbone_and_size_into_the_exported_graph(
    tiny_scene_onnx: Path, photos: list[Path], tmp_path: Path
) -> None:
    """Heads fitted on another size of the backbone's input export at that size: what serves is what was fitted."""
    heads = Heads.load(tiny_scene_onnx.parent / "heads.pt")
    heads.size = 288
    saved = tmp_path / "heads-288.pt"
    heads.save(saved, {})
    heads = Heads.load(saved)
    assert (heads.backbone, heads.size) == (BACKBONES[0], 288)
    graph = export_scene(heads, tmp_path / "scene-288.onnx", "images")
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    x = np.stack([detector_input(load_image_file(path).pixels, heads.input_size) for path in photos])
    (served,) = session.run(None, {"images": x})
    with torch.inference_mode():
        at_288 = SceneNet(load_backbone(heads.backbone), 288, heads.linear(), heads.input_size)(torch.from_numpy(x))
        at_224 = SceneNet(load_backbone(heads.backbone), 224, heads.linear(), heads.input_size)(torch.from_numpy(x))
    at_288, at_224 = at_288.numpy(), at_224.numpy()
    assert np.abs(served - at_288).max() < 1e-3
    assert np.abs(served - at_224).max() > 1e-3, "the size changed nothing: the export ignored it"


def test_an_unknown_backbone_is_refused(tiny_scene_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown backbone 'resnet50'"):
        load_backbone("resnet50")
    heads = Heads.load(tiny_scene_onnx.parent / "heads.pt")
    heads.backbone = "resnet50"
    heads.save(tmp_path / "resnet.pt", {})
    with pytest.raises(ValueError, match="not a known backbone"):
        Heads.load(tmp_path / "resnet.pt")
