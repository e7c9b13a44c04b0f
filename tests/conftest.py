"""Shared fixtures: the real shared data, a dataset built from it, and a tiny trained model.

The tiny model is trained for real (one epoch on a few images at 160 px, about a minute on two
cores) and exported through the same code as the shipped model, so every test that needs a
detector exercises the real pipeline rather than a stand-in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATASETS = SHARED / "datasets"
PRETRAINED = SHARED / "weights" / "yolov5n-coco-v7.0.pt"
TINY_IMGSZ = 160

os.environ.setdefault("YOLO_OFFLINE", "1")
# Every number the suite checks holds to the reference runtime, here and in the servers and scans it
# starts; tests/test_networks.py holds the others to it, and the tests that leave the choice to
# `auto` (the shipped default) set ENVWATCH_RUNTIME="" themselves. `ENVWATCH_RUNTIME=auto make test`
# runs the whole suite on the runtime this machine would choose.
os.environ.setdefault("ENVWATCH_RUNTIME", "onnxruntime")


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.fail(f"shared datasets not found at {SHARED_DATASETS}: clone the repo beside ../shared")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def pretrained_weights() -> Path:
    if not PRETRAINED.is_file():
        pytest.fail(f"pretrained checkpoint not found at {PRETRAINED}")
    return PRETRAINED


@pytest.fixture(scope="session")
def built_dataset(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full dataset recipe applied to the shared data (images are links, so this is cheap)."""
    from training.dataset import build

    return build(shared_datasets, tmp_path_factory.mktemp("dataset")).parent


@pytest.fixture(scope="session")
def tiny_checkpoint(built_dataset: Path, pretrained_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.train import TrainConfig, train

    project = tmp_path_factory.mktemp("runs")
    config = TrainConfig(
        data=built_dataset / "data.yaml",
        project=project,
        name="tiny",
        epochs=1,
        imgsz=TINY_IMGSZ,
        batch=8,
        fraction=0.01,
        pretrained=pretrained_weights,
    )
    best = train(config)
    assert best.exists(), "training produced no checkpoint"
    return best


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.export import export_onnx

    thresholds = {"overflowing_garbage": 0.3, "exposed_garbage": 0.3, "garbage_bin": 0.3, "fire": 0.2, "smoke": 0.2}
    out = tmp_path_factory.mktemp("model") / "tiny.onnx"
    return export_onnx(tiny_checkpoint, out, version="tiny-test", thresholds=thresholds, imgsz=TINY_IMGSZ)


@pytest.fixture(scope="session")
def tiny_scene_onnx(built_dataset: Path, tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny detector with a photo classifier merged in, trained and attached by the real code.

    Heads on the pretrained backbone from 8 photos per source and split (its features cached in a
    folder of this run, not the user's cache), the fusion rule chosen on 8 val photos per source; the
    choice's record beside it, `fusion.json`.
    """
    from training.scene import attach, train

    root = tmp_path_factory.mktemp("scene")
    heads = root / "heads.pt"
    train(built_dataset, heads, input_size=(TINY_IMGSZ, TINY_IMGSZ), limit=8, cache_root=root / "cache")
    record = attach(tiny_onnx, heads, built_dataset, root / "tiny-scene.onnx", "tiny-scene", limit=8)
    (root / "fusion.json").write_text(json.dumps({**record, "path": str(record["path"])}))
    return record["path"]


@pytest.fixture(scope="session")
def whole_photo_onnx(tiny_scene_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_scene_onnx` with a fusion rule that vetoes every burning box and raises burning on every photo.

    Only the rule's two numbers differ from what `attach` chose: a model whose whole-photo problem is
    certain, so the tests of how one is stored, exported, drawn and shown do not hang on a tiny
    classifier's scores.
    """
    import shutil

    from training.export import write_metadata

    out = tmp_path_factory.mktemp("whole-photo") / "whole-photo.onnx"
    shutil.copy(tiny_scene_onnx, out)
    write_metadata(
        out, {"envwatch.version": "whole-photo-test", "envwatch.fusion": {"burning": {"veto": 1.0, "photo": 0.0}}}
    )
    return out
