"""`envwatch export`: a trained checkpoint to the ONNX file the runtime loads.

Ultralytics writes the graph; we add our own metadata (label names, input size, model version,
shipped thresholds, NMS IoU) as JSON strings under `envwatch.*` keys, so the runtime needs
nothing but the .onnx file to decode and threshold its outputs the way the model was evaluated.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import onnx  # noqa: E402
from ultralytics import YOLO  # noqa: E402

NMS_IOU = 0.7
"""Ultralytics' own predict default; the runtime matches it so both give the same boxes."""


def write_metadata(onnx_path: Path, values: dict[str, object]) -> None:
    graph = onnx.load(str(onnx_path))
    existing = {p.key: p for p in graph.metadata_props}
    for key, value in values.items():
        prop = existing.get(key) or graph.metadata_props.add()
        prop.key, prop.value = key, json.dumps(value, ensure_ascii=False)
    onnx.save(graph, str(onnx_path))


def export_onnx(
    checkpoint: Path,
    out: Path,
    version: str,
    thresholds: dict[str, float],
    imgsz: int = 416,
    simplify: bool = True,
    tile_thresholds: dict[str, float] | None = None,
) -> Path:
    """Export `checkpoint` to `out` with a dynamic batch axis and envwatch metadata.

    `tile_thresholds` (optional) is the least score a box found in a tile needs (model/tiling.py).
    """
    model = YOLO(str(checkpoint))
    names = [model.names[i] for i in sorted(model.names)]
    produced = Path(model.export(format="onnx", imgsz=imgsz, dynamic=True, simplify=simplify, opset=17))
    out.parent.mkdir(parents=True, exist_ok=True)
    if produced.resolve() != out.resolve():
        shutil.move(produced, out)
    write_metadata(
        out,
        {
            "envwatch.names": names,
            "envwatch.input_size": [imgsz, imgsz],
            "envwatch.version": version,
            "envwatch.thresholds": {name: float(thresholds.get(name, 0.25)) for name in names},
            "envwatch.nms_iou": NMS_IOU,
            **({"envwatch.tile_thresholds": tile_thresholds} if tile_thresholds else {}),
        },
    )
    return out
