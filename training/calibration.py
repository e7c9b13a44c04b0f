"""The training photos that calibrate a network's statistics: rebuilt BatchNorms, INT8 ranges.

Two tools measure activations on real photos rather than learn anything from them: rebuilding a
trainable checkpoint from an ONNX (training/recover.py) and quantizing a model to INT8
(training/quantize.py). Both take train photos only, so that nothing measured later on val or test
has been seen, and the same ones, spread over every source.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from model.images import TRAINING_SUFFIXES
from training.evaluate import evenly_spaced

CALIBRATION_PHOTOS = 256
"""Enough for per-channel statistics of every layer: 256 photos at 416 px give each of the deepest
layer's channels some 44,000 values."""


def calibration_photos(data_yaml: Path, count: int = CALIBRATION_PHOTOS) -> list[Path]:
    """`count` training photos of the dataset, evenly spaced over its sorted names (every source)."""
    data = yaml.safe_load(data_yaml.read_text())
    folder = Path(data.get("path") or data_yaml.parent) / data["train"]
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in TRAINING_SUFFIXES) if folder.is_dir() else []
    if not photos:
        raise ValueError(f"no training photos in {folder} to calibrate on")
    return evenly_spaced(photos, count, key=lambda _photo: folder)
