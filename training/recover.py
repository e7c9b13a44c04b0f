"""A trainable PyTorch checkpoint rebuilt from an exported detector ONNX.

v2's `best.pt` (the weights behind v3's detector) was lost with an earlier checkout; only its
ONNX survived. Ultralytics' export fuses every Conv + BatchNorm pair into one convolution with a
bias, so the ONNX holds `conv.weight` and `conv.bias` per layer. The fusion can be undone exactly,
and in a way that also survives training:

- the convolution keeps the fused weight `W`, so its output is `z = W * x`;
- the BatchNorm gets running statistics `mean`, `var` measured on `z` over real photos, scale
  `sqrt(var + eps)` and shift `bias + mean`. Then `BN(z) = z + bias` for any statistics, so the
  rebuilt model computes what the ONNX computes (eval mode); and because the statistics are the
  real ones, a training batch, normalised by its own statistics, also sees about the same network.

With made-up statistics (mean 0, variance 1) eval mode would still be exact, but the first
training step would normalise every layer anew and throw away most of what the weights knew.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")

import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from ultralytics.nn.modules import Conv  # noqa: E402

from model.images import load_image_file  # noqa: E402
from training.partial_labels import PartialLabelDetectionModel  # noqa: E402
from training.photo_features import detector_input  # noqa: E402

ARCHITECTURE = "yolov5n.yaml"
"""Ultralytics' YOLOv5u-n: what every envwatch detector so far was trained as (training/train.py)."""


def _metadata(model: onnx.ModelProto) -> dict[str, object]:
    return {p.key: json.loads(p.value) for p in model.metadata_props if p.key.startswith("envwatch.")}


def photo_batches(photos: Sequence[Path], size: tuple[int, int], batch: int = 16):
    """The photos as the runtime feeds them to the detector (letterboxed, RGB, 0..1), `batch` at a time."""
    for start in range(0, len(photos), batch):
        chunk = photos[start : start + batch]
        yield torch.from_numpy(np.stack([detector_input(load_image_file(p).pixels, size) for p in chunk]))


@torch.no_grad()
def _calibrate(model: PartialLabelDetectionModel, photos: Sequence[Path], size: tuple[int, int]) -> None:
    """Give every BatchNorm the statistics of its convolution's output on `photos`, keeping BN(z) = z + bias."""
    convs = {prefix: m for prefix, m in model.named_modules() if isinstance(m, Conv)}
    count = dict.fromkeys(convs, 0)
    total = {p: torch.zeros(m.conv.out_channels, dtype=torch.float64) for p, m in convs.items()}
    squares = {p: torch.zeros(m.conv.out_channels, dtype=torch.float64) for p, m in convs.items()}

    def recorder(prefix: str):
        def record(_module, _inputs, z: torch.Tensor) -> None:
            z = z.double()
            count[prefix] += z.numel() // z.shape[1]
            total[prefix] += z.sum(dim=(0, 2, 3))
            squares[prefix] += (z * z).sum(dim=(0, 2, 3))

        return record

    hooks = [module.conv.register_forward_hook(recorder(prefix)) for prefix, module in convs.items()]
    model.eval()
    for pixels in photo_batches(photos, size):
        model(pixels)
    for hook in hooks:
        hook.remove()
    for prefix, module in convs.items():
        mean = total[prefix] / count[prefix]
        var = (squares[prefix] / count[prefix] - mean * mean).clamp(min=0)
        bn, bias = module.bn, module.bn.bias.detach().double()
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(torch.sqrt(var + bn.eps))
        bn.bias.copy_(bias + mean)


def rebuild(onnx_path: Path, calibration: Sequence[Path] = ()) -> PartialLabelDetectionModel:
    """The detector inside `onnx_path` as an unfused, trainable PartialLabelDetectionModel.

    `calibration`: photos whose activation statistics the BatchNorms take (a few hundred training
    photos); without them the BatchNorms are the identity, exact in eval mode only.

    Raises ValueError when a tensor the architecture needs is missing or has another shape, so a
    graph of another architecture is refused rather than half-loaded.
    """
    graph = onnx.load(str(onnx_path))
    names = _metadata(graph).get("envwatch.names")
    if not names:
        raise ValueError(f"{onnx_path} carries no envwatch.names: not an envwatch detector")
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.graph.initializer}
    model = PartialLabelDetectionModel(ARCHITECTURE, nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    state = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    for prefix, module in model.named_modules():
        if isinstance(module, Conv):
            weight, bias = weights.get(f"{prefix}.conv.weight"), weights.get(f"{prefix}.conv.bias")
            if weight is None or bias is None:
                raise ValueError(f"{onnx_path} has no fused convolution {prefix}")
            bn = module.bn
            loaded[f"{prefix}.conv.weight"] = weight
            loaded[f"{prefix}.bn.weight"] = torch.ones_like(bias)
            loaded[f"{prefix}.bn.bias"] = bias
            loaded[f"{prefix}.bn.running_mean"] = torch.zeros_like(bias)
            loaded[f"{prefix}.bn.running_var"] = torch.full_like(bias, 1.0 - bn.eps)
    for name in state:  # plain convolutions (the head's last layers, DFL): stored as they are
        if name not in loaded and name in weights:
            loaded[name] = weights[name]
    missing = [n for n in state if n not in loaded and not n.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{onnx_path} lacks {len(missing)} tensors of {ARCHITECTURE}, e.g. {missing[0]}")
    wrong = [n for n, t in loaded.items() if t.shape != state[n].shape]
    if wrong:
        shape = tuple(loaded[wrong[0]].shape)
        raise ValueError(f"{onnx_path} does not match {ARCHITECTURE}: {wrong[0]} has shape {shape}")
    model.load_state_dict(loaded, strict=False)
    if calibration:
        size = _metadata(graph).get("envwatch.input_size", [416, 416])
        _calibrate(model, calibration, (int(size[0]), int(size[1])))
    return model


def write_checkpoint(onnx_path: Path, out: Path, calibration: Sequence[Path] = ()) -> Path:
    """Save the rebuilt detector as an Ultralytics checkpoint (fp16) that `--init` and YOLO() load."""
    model = rebuild(onnx_path, calibration)
    meta = _metadata(onnx.load(str(onnx_path)))
    size = meta.get("envwatch.input_size", [416, 416])
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.half(),
            "ema": None,
            "updates": None,
            "optimizer": None,
            "epoch": -1,
            "train_args": {"task": "detect", "imgsz": int(size[0]), "model": ARCHITECTURE},
            "date": datetime.now(UTC).isoformat(),
            "envwatch": {"rebuilt_from": onnx_path.name, "version": meta.get("envwatch.version")},
        },
        out,
    )
    return out
