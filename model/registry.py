"""Model versions side by side, which one serves, and how it got there: `registry.json`.

The registry is one JSON file in a folder (default: this package's folder, `model/`;
`ENVWATCH_MODEL_REGISTRY` names another). Each version has an ONNX file, a model card and
metrics, at paths relative to that folder, in `versions/<version>/`. `history` lists every
promotion, so rollback is "promote the one before" and the file says who served what since when.
The package ships its own registry.json: what it promotes is the model `envwatch scan`, the
service and `Detector.load()` use when given none.

Writes go to a temporary file renamed over the old one, so a reader (the service polls the
file's mtime between requests) sees the old registry or the new one, never half of either.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
FILE = "registry.json"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Version:
    version: str
    path: str
    card: str
    metrics: str
    added_at: str = field(default_factory=now)
    summary: dict = field(default_factory=dict)
    """What `envwatch models list` shows without opening the files: labels, reviewed images, test mAP50."""


@dataclass
class Promotion:
    version: str
    at: str
    by: str


class RegistryError(ValueError):
    """Asked for something the registry cannot do (unknown version, nothing to roll back to)."""


class Registry:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else PACKAGE_DIR
        self.file = self.root / FILE
        self.versions: dict[str, Version] = {}
        self.history: list[Promotion] = []
        if self.file.exists():
            data = json.loads(self.file.read_text())
            self.versions = {v["version"]: Version(**v) for v in data["versions"]}
            self.history = [Promotion(**p) for p in data["history"]]

    @property
    def promoted(self) -> str | None:
        return self.history[-1].version if self.history else None

    def path_of(self, version: str) -> Path:
        return self.root / self.get(version).path

    def promoted_path(self) -> Path:
        """The ONNX file of the promoted version."""
        if self.promoted is None:
            raise RegistryError(f"no model promoted in {self.file}: run `envwatch models promote VERSION`")
        return self.path_of(self.promoted)

    def folder_of(self, version: str) -> Path:
        """Where a version's files go."""
        return self.root / "versions" / version

    def get(self, version: str) -> Version:
        if version not in self.versions:
            known = ", ".join(self.versions) or "none"
            raise RegistryError(f"no model version {version!r} in {self.file} (known: {known})")
        return self.versions[version]

    def add(self, entry: Version) -> None:
        """Register a version whose files are in place; re-adding a version replaces its entry."""
        for name in (entry.path, entry.card, entry.metrics):
            if not (self.root / name).is_file():
                raise RegistryError(f"version {entry.version}: {self.root / name} does not exist")
        self.versions[entry.version] = entry
        self.save()

    def promote(self, version: str, by: str) -> Promotion:
        self.get(version)
        if version == self.promoted:
            raise RegistryError(f"{version} is already promoted")
        promotion = Promotion(version, now(), by)
        self.history.append(promotion)
        self.save()
        return promotion

    def rollback(self, by: str) -> Promotion:
        """Promote again the version promoted before the current one."""
        current = self.promoted
        earlier = [p.version for p in self.history if p.version != current]
        if not earlier:
            raise RegistryError("nothing to roll back to: no other version was ever promoted")
        return self.promote(earlier[-1], by)

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"versions": [asdict(v) for v in self.versions.values()], "history": [asdict(p) for p in self.history]}
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".registry-", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.replace(tmp, self.file)


def promoted_model(root: Path | None = None) -> Path:
    """The ONNX file the registry at `root` (default: the package's own) promotes."""
    return Registry(root).promoted_path()
