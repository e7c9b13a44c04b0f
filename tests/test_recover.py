"""A shipped detector ONNX rebuilt into a trainable checkpoint (training/recover.py).

v3's ONNX is the real subject: its weights exist nowhere else, and v5 was fine-tuned from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from training.calibration import calibration_photos
from training.recover import photo_batches, rebuild

REPO = Path(__file__).resolve().parents[1]
V3 = REPO / "model" / "versions" / "v3" / "envwatch-v3.onnx"
SIZE = (416, 416)


@pytest.fixture(scope="module")
def photos(built_dataset: Path) -> list[Path]:
    return calibration_photos(built_dataset / "data.yaml", 24)


def deepest_backbone_output(model: torch.nn.Module, pixels: torch.Tensor, training: bool) -> torch.Tensor:
    """The output of the layer feeding the head (P5 of the neck), in eval or training mode."""
    seen: list[torch.Tensor] = []
    hook = model.model[-2].register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    model.train(training)
    for module in model.modules():  # keep the running statistics as they are
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.0
    with torch.no_grad():
        model(pixels)
    hook.remove()
    model.eval()
    return seen[0]


def test_the_rebuilt_network_computes_what_the_onnx_computes(photos: list[Path]) -> None:
    model = rebuild(V3, photos[:16]).eval()
    pixels = next(photo_batches(photos[16:20], SIZE))
    with torch.no_grad():
        rebuilt = model(pixels)[0].numpy()
    session = ort.InferenceSession(str(V3), providers=["CPUExecutionProvider"])
    shipped = session.run(None, {session.get_inputs()[0].name: pixels.numpy()})[0]
    assert rebuilt.shape == shipped.shape
    boxes, scores = np.abs(rebuilt[:, :4] - shipped[:, :4]), np.abs(rebuilt[:, 4:] - shipped[:, 4:])
    assert boxes.max() < 0.05, f"box coordinates differ by up to {boxes.max():.4f} px"
    assert scores.max() < 1e-3, f"class scores differ by up to {scores.max():.5f}"
    assert model.names == {0: "overflowing_garbage", 1: "exposed_garbage", 2: "garbage_bin", 3: "fire", 4: "smoke"}


def test_calibrated_batchnorms_keep_the_network_when_training_starts(photos: list[Path]) -> None:
    """A training batch is normalised by its own statistics: with the real ones stored, it sees the same network.

    The uncalibrated rebuild (BatchNorm = identity + bias) is exact in eval mode too, and the test
    shows why that is not enough: in training mode it is a different network.
    """
    batch = next(photo_batches(photos[:16], SIZE))
    calibrated, identity = rebuild(V3, photos[:16]), rebuild(V3)

    def change(model: torch.nn.Module) -> float:
        evaluated = deepest_backbone_output(model, batch, training=False)
        trained = deepest_backbone_output(model, batch, training=True)
        return float((trained - evaluated).norm() / evaluated.norm())

    assert change(calibrated) < 0.02
    assert change(identity) > 0.3


def test_train_init_rebuilds_a_version_onnx(built_dataset: Path, tmp_path: Path) -> None:
    import yaml

    from inference_api.cli import main as envwatch

    command = ["train", "--data", str(built_dataset / "data.yaml"), "--init", str(V3), "--epochs", "1"]
    command += ["--imgsz", "96", "--batch", "8", "--fraction", "0.005", "--project", str(tmp_path), "--name", "v3on"]
    assert envwatch(command) == 0
    args = yaml.safe_load((tmp_path / "v3on" / "args.yaml").read_text())
    assert args["model"] == str(tmp_path / "v3on" / "init.pt")
    assert (args["optimizer"], args["lr0"]) == ("AdamW", 0.0005)
    assert (tmp_path / "v3on" / "weights" / "last.pt").is_file()


def test_an_onnx_that_is_not_an_envwatch_detector_is_refused(built_dataset: Path, tmp_path: Path, capsys) -> None:
    from inference_api.cli import main as envwatch

    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "other", [x], [y])
    other = tmp_path / "other.onnx"
    onnx.save(onnx.helper.make_model(graph), str(other))
    command = ["train", "--data", str(built_dataset / "data.yaml"), "--init", str(other)]
    assert envwatch([*command, "--project", str(tmp_path), "--name", "none"]) == 2
    assert "not an envwatch detector" in capsys.readouterr().out
    assert not (tmp_path / "none").exists()
