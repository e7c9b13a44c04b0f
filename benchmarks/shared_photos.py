"""The shared sets' photos the benchmarks run on, taken in turn from several folders.

Taking them in turn (one from each folder, then the next from each) mixes sizes, aspect ratios and
cameras in any prefix of the list, so a short run sees the same mix as a long one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def photos_in_turn(folders: Sequence[Path], count: int) -> list[Path]:
    """Up to `count` JPEGs, one from each of `folders` in turn (each folder's in name order)."""
    lists = [sorted(folder.glob("*.jpg")) for folder in folders]
    return [path for group in itertools.zip_longest(*lists) for path in group if path][:count]


def aspect_ratio(text: str) -> float:
    """A command line's `4:3` (or `1.33`) as width / height."""
    width, _, height = text.partition(":")
    return float(width) / float(height or 1)


def centre_crop(width: int, height: int, aspect: float) -> tuple[int, int, int, int]:
    """The largest box (left, top, right, bottom) of `aspect` (width / height) about a photo's centre.

    Most shared photos are square (their exporter stretched them to 640 x 640), where phones and drones
    shoot 4:3: benchmarks crop them to the shape the product meets."""
    crop_w, crop_h = min(width, round(height * aspect)), min(height, round(width / aspect))
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


def centre_cropped(images: list[np.ndarray], aspect: float | None) -> list[np.ndarray]:
    """Decoded photos (H, W, C) each cropped to `centre_crop`'s box; `aspect` None: as they are."""
    if not aspect:
        return images
    boxes = [centre_crop(image.shape[1], image.shape[0], aspect) for image in images]
    return [image[top:bottom, left:right] for image, (left, top, right, bottom) in zip(images, boxes, strict=True)]
