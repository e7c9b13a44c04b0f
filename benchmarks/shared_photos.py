"""The shared sets' photos the benchmarks run on, taken in turn from several folders.

Taking them in turn (one from each folder, then the next from each) mixes sizes, aspect ratios and
cameras in any prefix of the list, so a short run sees the same mix as a long one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def photos_in_turn(folders: Sequence[Path], count: int) -> list[Path]:
    """Up to `count` JPEGs, one from each of `folders` in turn (each folder's in name order)."""
    lists = [sorted(folder.glob("*.jpg")) for folder in folders]
    return [path for group in itertools.zip_longest(*lists) for path in group if path][:count]
