"""The INT8 copy of a model file (training/quantize.py): made beside it, run where it is named, never run once the
file it was made from has changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

import model.networks as networks
from model.images import load_image_file
from model.networks import QUANTIZED_RUNTIME, open_network, quantized_copy
from model.runtime import Detector, letterbox
from training.calibration import calibration_photos
from training.quantize import quantize


@pytest.fixture(scope="module")
def photos(built_dataset: Path) -> list[Path]:
    return calibration_photos(built_dataset / "data.yaml", 8)


@pytest.fixture(scope="module")
def quantized(tiny_scene_onnx: Path, photos: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny two-network model with its INT8 copy beside it."""
    path = tmp_path_factory.mktemp("quantized") / "tiny.onnx"
    shutil.copy(tiny_scene_onnx, path)
    assert quantize(path, photos) == quantized_copy(path)
    return path


def network_inputs(detector: Detector, photos: list[Path]) -> list[np.ndarray]:
    fitted = [letterbox(load_image_file(p).pixels, detector.input_size, detector.stride)[0] for p in photos]
    return [networks.network_input(f[None]) for f in fitted]


def test_the_copy_quantizes_the_detector_and_keeps_the_classifier_float(quantized: Path, photos: list[Path]) -> None:
    """The detector's convolutions run in INT8; the classifier's scores are the float file's to rounding; the
    detector's class scores (kept float past its last convolutions) stay within 0.1 of the float file's."""
    graph = onnx.load(str(quantized_copy(quantized)))
    quantized_inputs = {node.output[0] for node in graph.graph.node if node.op_type == "DequantizeLinear"}
    convolutions = [node for node in graph.graph.node if node.op_type == "Conv"]
    int8 = [node.name for node in convolutions if node.input[1] in quantized_inputs]
    assert int8 and all(not name.startswith("scene/") for name in int8)
    assert any(node.name.startswith("scene/") for node in convolutions if node.input[1] not in quantized_inputs)

    reference = Detector(quantized, runtime="onnxruntime")
    copy = Detector(quantized, runtime=QUANTIZED_RUNTIME)
    assert copy.network.runtime == QUANTIZED_RUNTIME and copy.network.path == quantized_copy(quantized)
    assert copy.names == reference.names and copy.thresholds == reference.thresholds
    for batch in network_inputs(reference, photos):
        (want_boxes, want_scene), (boxes, scene) = (d.network.run(d.network.outputs, batch) for d in (reference, copy))
        np.testing.assert_allclose(scene, want_scene, atol=1e-4)
        np.testing.assert_allclose(boxes[:, 4:].max(axis=2), want_boxes[:, 4:].max(axis=2), atol=0.1)


def test_auto_leaves_the_copy_alone(quantized: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where OpenVINO has no BF16, `auto` runs the float file: the copy is asked for by name (model/networks.py)."""
    monkeypatch.setattr(networks, "fastest_runtime", lambda: "onnxruntime")
    network = open_network(quantized, runtime="auto")
    assert (network.runtime, network.path) == ("onnxruntime", quantized)


def test_a_copy_of_an_older_file_is_refused(quantized: Path, tmp_path: Path) -> None:
    """The float file re-exported since (here: its metadata changed) no longer matches the copy's sha256."""
    changed = tmp_path / quantized.name
    model = onnx.load(str(quantized))
    model.metadata_props.append(onnx.StringStringEntryProto(key="note", value="exported again"))
    onnx.save(model, str(changed))
    shutil.copy(quantized_copy(quantized), quantized_copy(changed))
    with pytest.raises(ValueError, match=r"tiny\.int8\.onnx was not made from this tiny\.onnx .*models quantize"):
        open_network(changed, runtime=QUANTIZED_RUNTIME)
    assert open_network(quantized, runtime=QUANTIZED_RUNTIME).runtime == QUANTIZED_RUNTIME, "its own file still runs"


def test_int8_named_for_a_file_without_a_copy_says_how_to_make_one(tiny_onnx: Path) -> None:
    with pytest.raises(ValueError, match=r"runtime 'onnxruntime-int8' needs .*\.int8\.onnx: make it with"):
        open_network(tiny_onnx, runtime=QUANTIZED_RUNTIME)


def test_quantizing_refuses_what_it_cannot_calibrate_or_read(
    quantized: Path, photos: list[Path], tmp_path: Path
) -> None:
    """No photos, or a file that is no envwatch model: a clear error, and no copy written."""
    path = tmp_path / "again.onnx"
    shutil.copy(quantized, path)
    with pytest.raises(ValueError, match="no photos to calibrate"):
        quantize(path, [])
    foreign = tmp_path / "foreign.onnx"
    model = onnx.load(str(quantized))
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    with pytest.raises(ValueError, match="lacks envwatch metadata"):
        quantize(foreign, photos)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.onnx", "foreign.onnx"]
