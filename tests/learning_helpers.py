"""Shared by the tests of learning new types from photo labels: stand-in photos and a registry to learn into.

No openly licensed photo of an illegal structure, a clutter pile or any other type the model cannot
detect exists here (../shared/datasets/README.md, "What is missing"). The stand-in is a real visual
category the model was never taught: **indoor rooms and offices**, the web photos of
fire-scenes-cair's `no_fire/` folder whose file names say room or office (hotel rooms, living rooms,
meeting rooms, open-plan offices; 112 photos). Against them stand **outdoor photos**: no-fire forest
and sky frames of fire-smoke-pd (empty label files) and street photos of garbage-cn. The tests post
the rooms as `illegal_structure`: what they prove is the mechanics (label, learn, promote, raise,
locate approximately, roll back), not that the model knows illegal structures.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from model.registry import Registry, Version

DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
STAND_IN = "illegal_structure"


def interiors() -> list[Path]:
    """Photos of rooms and offices, in name order."""
    folder = DATASETS / "fire-scenes-cair" / "no_fire"
    return sorted(p for p in folder.iterdir() if "room" in p.name.lower() or "office" in p.name.lower())


def outdoors() -> list[Path]:
    """Outdoor photos, alternately a forest/sky frame with no fire (fire-smoke-pd) and a street (garbage-cn)."""
    pd = DATASETS / "fire-smoke-pd" / "valid"
    forest = [pd / "images" / f"{t.stem}.jpg" for t in sorted((pd / "labels").glob("*.txt")) if t.stat().st_size == 0]
    streets = sorted((DATASETS / "garbage-cn" / "valid" / "images").glob("*.jpg"))
    return [photo for pair in zip(forest, streets, strict=False) for photo in pair]


def registry_with(model: Path, root: Path, version: str | None = None) -> Path:
    """A registry at `root` (outside the repo) holding `model` as `version` (default: the name the package
    promotes), promoted; the package's stays untouched."""
    shipped = Registry()
    version = version or shipped.promoted
    folder = root / "versions" / version
    folder.mkdir(parents=True)
    shutil.copyfile(model, folder / model.name)
    for name in ("card", "metrics"):
        source = shipped.root / getattr(shipped.get(shipped.promoted or version), name)
        shutil.copyfile(source, folder / source.name)
    entry = shipped.get(shipped.promoted or version)
    copy = Registry(root)
    copy.add(
        Version(
            version,
            f"versions/{version}/{model.name}",
            f"versions/{version}/{Path(entry.card).name}",
            f"versions/{version}/{Path(entry.metrics).name}",
        )
    )
    copy.promote(version, "test")
    return root
