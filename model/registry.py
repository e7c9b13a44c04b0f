"""Model versions side by side, which one serves, and how it got there: `registry.json`.

The registry is one JSON file in a folder (default: this package's folder, `model/`;
`ENVWATCH_MODEL_REGISTRY` names another). Each version has an ONNX file, a model card and
metrics, at paths relative to that folder, in `versions/<version>/`. `history` lists every
promotion, so rollback is "promote the one before" and the file says who served what since when.
The package ships its own registry.json: what it promotes is the model `envwatch scan`, the
service and `Detector.load()` use when given none.

Writes go to a temporary file renamed over the old one, so a reader (the service polls the
file's mtime between requests) sees the old registry or the new one, never half of either.
Every read-modify-write (add, promote, rollback) holds an exclusive lock on `.registry.lock`
beside the file and re-reads it under the lock, so two commands run at once both land: without
it each would write back the registry it read before the other's change. The lock is a file of
its own because the rename replaces registry.json's inode, which would void a lock taken on it.
Readers take no lock: the rename already gives them a whole registry.

The file is outside input (edited by hand, copied between machines): a malformed one is refused
with a `RegistryError` naming it rather than a traceback from deep inside the code using it.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from model.files import mode_for, write_whole

PACKAGE_DIR = Path(__file__).resolve().parent
FILE = "registry.json"
LOCK = ".registry.lock"
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A version name is a folder name under `versions/`: no separator, no leading dot (so never `.` or `..`)."""


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
    """Asked for something the registry cannot do (unknown version, nothing to roll back to), or a malformed file."""


def check_version_name(version: str) -> str:
    """`version` if it is a safe folder name; a name like `../x` would put the version's files outside the registry."""
    if not VERSION_NAME.fullmatch(version):
        raise RegistryError(
            f"version name {version!r} refused: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    return version


def check_loadable(onnx: Path) -> None:
    """Refuse to promote a file the service could not serve: it would keep the old model, or start with none.

    Loaded as the service loads it (model.runtime's Detector.load); onnxruntime raises its own exception types
    for a file that is not a model, hence the broad except. The check `promote` and `rollback` take, from the
    command line and from the API alike.
    """
    from model.runtime import Detector

    try:
        Detector.load(onnx)
    except Exception as exc:
        raise RegistryError(f"{onnx} does not load as a model ({type(exc).__name__}: {exc}); nothing changed") from exc


def registry_folder(root: Path) -> Path:
    """The registry folder `root` names; the path of its registry.json is taken for its folder.

    Any other file is refused: read as a folder it would show an empty registry, and a write would fail late.
    """
    if root.is_file():
        if root.name == FILE:
            return root.parent
        raise RegistryError(f"{root} is a file: give the registry's folder, the one holding {FILE}")
    return root


def _fields_of(item: object, kind: type, where: str) -> dict:
    """`item` checked to be a JSON object with `kind`'s fields (the defaulted ones optional) and no other key."""
    if not isinstance(item, dict):
        raise RegistryError(f"{where}: expected an object, got {type(item).__name__}")
    known = {f.name for f in fields(kind)}
    required = {f.name for f in fields(kind) if f.default is MISSING and f.default_factory is MISSING}
    if extra := sorted(set(item) - known):
        raise RegistryError(f"{where}: unknown key(s) {', '.join(extra)}")
    if missing := sorted(required - set(item)):
        raise RegistryError(f"{where}: missing key(s) {', '.join(missing)}")
    for name, value in item.items():
        expected = dict if name == "summary" else str
        if not isinstance(value, expected):
            raise RegistryError(f"{where}: {name} must be a {'object' if expected is dict else 'string'}")
    return item


def parse(data: object, file: Path) -> tuple[dict[str, Version], list[Promotion]]:
    """The versions and history of a loaded registry.json, or a `RegistryError` naming `file` and what is wrong."""
    if not isinstance(data, dict):
        raise RegistryError(f"{file}: expected an object with 'versions' and 'history', got {type(data).__name__}")
    if missing := sorted({"versions", "history"} - set(data)):
        raise RegistryError(f"{file}: missing key(s) {', '.join(missing)}")
    if extra := sorted(set(data) - {"versions", "history"}):
        raise RegistryError(f"{file}: unknown key(s) {', '.join(extra)}")
    for key in ("versions", "history"):
        if not isinstance(data[key], list):
            raise RegistryError(f"{file}: {key} must be a list")
    versions: dict[str, Version] = {}
    for n, item in enumerate(data["versions"]):
        version = Version(**_fields_of(item, Version, f"{file}: versions[{n}]"))
        if version.version in versions:
            raise RegistryError(f"{file}: version {version.version!r} listed twice")
        versions[version.version] = version
    history = [Promotion(**_fields_of(p, Promotion, f"{file}: history[{n}]")) for n, p in enumerate(data["history"])]
    return versions, history


class Registry:
    def __init__(self, root: Path | None = None) -> None:
        self.root = registry_folder(Path(root)) if root else PACKAGE_DIR
        self.file = self.root / FILE
        self.versions: dict[str, Version] = {}
        self.history: list[Promotion] = []
        self._load()

    def _load(self) -> None:
        """Read registry.json (none yet: an empty registry)."""
        try:
            text = self.file.read_text()
        except FileNotFoundError:
            self.versions, self.history = {}, []
            return
        except (OSError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{self.file}: cannot be read: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{self.file}: not valid JSON: {exc}") from exc
        self.versions, self.history = parse(data, self.file)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the registry's lock and work on the file as it is now, not as it was when this object read it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
            self._load()
            yield

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
        return self.root / "versions" / check_version_name(version)

    def get(self, version: str) -> Version:
        if version not in self.versions:
            known = ", ".join(self.versions) or "none"
            raise RegistryError(f"no model version {version!r} in {self.file} (known: {known})")
        return self.versions[version]

    def add(self, entry: Version) -> None:
        """Register a version whose files are in place; re-adding a version replaces its entry."""
        check_version_name(entry.version)
        for name in (entry.path, entry.card, entry.metrics):
            if not (self.root / name).is_file():
                raise RegistryError(f"version {entry.version}: {self.root / name} does not exist")
        with self._locked():
            self.versions[entry.version] = entry
            self.save()

    def promote(self, version: str, by: str, check: Callable[[Path], object] | None = None) -> Promotion:
        """Serve `version`; `check(onnx path)` may refuse it (by raising) before anything is written."""
        with self._locked():
            return self._promote(version, by, check)

    def rollback(self, by: str, check: Callable[[Path], object] | None = None) -> Promotion:
        """Promote again the latest-promoted version other than the current one (so two rollbacks toggle)."""
        with self._locked():
            current = self.promoted
            earlier = [p.version for p in self.history if p.version != current]
            if not earlier:
                raise RegistryError("nothing to roll back to: no other version was ever promoted")
            return self._promote(earlier[-1], by, check)

    def _promote(self, version: str, by: str, check: Callable[[Path], object] | None) -> Promotion:
        """The promotion itself; the caller holds the lock."""
        self.get(version)
        if version == self.promoted:
            raise RegistryError(f"{version} is already promoted")
        if check is not None:
            check(self.path_of(version))
        promotion = Promotion(version, now(), by)
        self.history.append(promotion)
        self.save()
        return promotion

    def save(self) -> None:
        """Write the registry atomically: a temporary file in the same folder, renamed over registry.json."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"versions": [asdict(v) for v in self.versions.values()], "history": [asdict(p) for p in self.history]}
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        write_whole(self.file, text.encode("utf-8"), mode_for(self.file))  # the service may run as another user


def promoted_model(root: Path | None = None) -> Path:
    """The ONNX file the registry at `root` (default: the package's own) promotes."""
    return Registry(root).promoted_path()
