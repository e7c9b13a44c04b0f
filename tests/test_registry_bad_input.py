"""`envwatch models` given bad input or run concurrently: refused with exit 2 and a message on stderr naming the
file, never a traceback, a lost promotion, a promotion of a model that cannot load, or a file outside the registry.

Every test works on a copy of the package's registry (model/registry.json and model/versions) in tmp_path: the
package's own registry is what `envwatch serve` and `scan` use by default and is never written here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inference_api.cli import main as envwatch
from model.registry import PACKAGE_DIR, Registry
from model.runtime import Detector

REPO = Path(__file__).resolve().parents[1]
SHIPPED = Registry(PACKAGE_DIR)
"""The package's registry as committed: its versions, its promotion history."""


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """A copy of the package's registry: every shipped version with its real ONNX file, the same one promoted."""
    root = tmp_path / "registry"
    root.mkdir()
    shutil.copyfile(PACKAGE_DIR / "registry.json", root / "registry.json")
    shutil.copytree(PACKAGE_DIR / "versions", root / "versions")
    assert Registry(root).promoted == SHIPPED.promoted
    return root


def models(root: Path | None, *args: str) -> int:
    """`envwatch models [--registry root] ...` in this process, as the other tests of the CLI call it."""
    return envwatch(["models", *(["--registry", str(root)] if root else []), *args])


def test_the_environment_variable_names_the_registry(
    registry: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --registry the CLI follows ENVWATCH_MODEL_REGISTRY as the service does, so a promotion made with only
    the variable set reaches the registry the service watches (and leaves the package's alone)."""
    package = (PACKAGE_DIR / "registry.json").read_bytes()
    monkeypatch.setenv("ENVWATCH_MODEL_REGISTRY", str(registry))
    assert models(None, "list") == 0
    assert f"registry {registry / 'registry.json'})" in capsys.readouterr().out  # checked before anything is written
    assert models(None, "promote", "v2") == 0
    assert Registry(registry).promoted == "v2"
    assert (PACKAGE_DIR / "registry.json").read_bytes() == package


def test_concurrent_promotions_all_land_in_the_history(registry: Path) -> None:
    """8 promotions run at once: each re-reads the registry under the lock, so none overwrites another's."""
    data = json.loads((registry / "registry.json").read_text())
    source = {v["version"]: v for v in data["versions"]}
    for n in range(6):  # copy0..copy5: more versions, the files of v1..v3
        data["versions"].append({**source[f"v{n % 3 + 1}"], "version": f"copy{n}"})
    (registry / "registry.json").write_text(json.dumps(data, indent=2))
    targets = ["v1", "v2", *(f"copy{n}" for n in range(6))]
    env = {**os.environ, "YOLO_OFFLINE": "1", "ENVWATCH_MODEL_REGISTRY": "/nonexistent"}
    command = [sys.executable, "-m", "inference_api.cli", "models", "--registry", str(registry), "promote"]
    runs = [subprocess.Popen([*command, t], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for t in targets]  # fmt: skip
    results = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0] * len(targets), results
    history = [p.version for p in Registry(registry).history]
    shipped = [p.version for p in SHIPPED.history]
    assert history[: len(shipped)] == shipped and sorted(history[len(shipped) :]) == sorted(targets), history


def test_promote_refuses_a_version_whose_model_is_missing(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (registry / "registry.json").read_bytes()
    onnx = registry / "versions" / "v2" / "envwatch-v2.onnx"
    onnx.unlink()
    assert models(registry, "promote", "v2") == 2
    out, err = capsys.readouterr()
    assert out == "" and str(onnx) in err and "does not load" in err
    assert (registry / "registry.json").read_bytes() == before


def test_promote_refuses_a_model_that_does_not_load(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not an ONNX model would leave a service started afterwards with no model at all."""
    before = (registry / "registry.json").read_bytes()
    onnx = registry / "versions" / "v1" / "envwatch-v1.onnx"
    onnx.write_text("not a model\n")
    assert models(registry, "promote", "v1") == 2
    out, err = capsys.readouterr()
    assert out == "" and str(onnx) in err and "does not load" in err
    assert (registry / "registry.json").read_bytes() == before
    assert models(registry, "promote", "v2") == 0  # a version that loads is promoted
    assert Detector.load(Registry(registry).promoted_path()).version == "v2"


def test_rollback_refuses_a_model_that_does_not_load(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (registry / "registry.json").read_bytes()
    earlier = SHIPPED.history[-2].version  # where a rollback from the promoted version goes
    onnx = registry / SHIPPED.get(earlier).path
    onnx.write_bytes(b"\x00" * 64)
    assert models(registry, "rollback") == 2
    out, err = capsys.readouterr()
    assert out == "" and str(onnx) in err
    assert (registry / "registry.json").read_bytes() == before


def test_rollback_twice_goes_back_and_forth(registry: Path) -> None:
    """What docs/reviews.md says: rollback promotes the latest-promoted version other than the current one, so a
    second rollback returns to where the first started (v6 -> v4 -> v6), not further back to v3."""
    shipped = [p.version for p in SHIPPED.history]
    assert models(registry, "rollback") == 0
    assert Registry(registry).promoted == shipped[-2]
    assert models(registry, "rollback") == 0
    assert [p.version for p in Registry(registry).history] == [*shipped, shipped[-2], shipped[-1]]


@pytest.mark.parametrize("name", ["../../../escaped", "..", ".", "a/b", ".hidden", "", "x" * 65, "v 2"])
def test_add_refuses_a_version_name_that_is_not_a_folder_name(
    name: str, registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_text("never read")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert models(registry, "add", name, "--checkpoint", str(checkpoint), "--dataset", str(tmp_path / "DS")) == 2
    out, err = capsys.readouterr()
    assert out == "" and "version name" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_add_with_a_missing_checkpoint_leaves_nothing(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert models(registry, "add", "new", "--checkpoint", "nope.pt", "--dataset", "DS") == 2
    out, err = capsys.readouterr()
    assert out == "" and "nope.pt" in err
    assert sorted(p.name for p in (registry / "versions").iterdir()) == sorted(SHIPPED.versions)


def test_add_with_a_corrupt_checkpoint_leaves_nothing(
    built_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The export fails after the version's folder is made: the folders this run made go, a new registry's included;
    a registered version's files stay when it is re-added from a bad checkpoint."""
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_text("not a checkpoint\n")
    fresh = tmp_path / "fresh"
    assert models(fresh, "add", "v4", "--checkpoint", str(checkpoint), "--dataset", str(built_dataset)) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"checkpoint {checkpoint}" in err
    assert not fresh.exists()

    registry = tmp_path / "registry"
    registry.mkdir()
    shutil.copyfile(PACKAGE_DIR / "registry.json", registry / "registry.json")
    shutil.copytree(PACKAGE_DIR / "versions" / "v2", registry / "versions" / "v2")
    files = sorted(p.name for p in (registry / "versions" / "v2").iterdir())
    assert models(registry, "add", "v2", "--checkpoint", str(checkpoint), "--dataset", str(built_dataset)) == 2
    assert sorted(p.name for p in (registry / "versions" / "v2").iterdir()) == files
    assert sorted(p.name for p in (registry / "versions").iterdir()) == ["v2"]


VERSION = {"version": "v1", "path": "versions/v1/envwatch-v1.onnx", "card": "c", "metrics": "m"}
MALFORMED = {
    "a list": "[]",
    "no versions": '{"history": []}',
    "no history": '{"versions": []}',
    "an extra key on a version": json.dumps({"versions": [{**VERSION, "extra": 1}], "history": []}),
    "a version that is not an object": '{"versions": ["v1"], "history": []}',
    "a version without a path": json.dumps({"versions": [{"version": "v1"}], "history": []}),
    "a promotion that is not an object": json.dumps({"versions": [VERSION], "history": [["v1"]]}),
    "versions that are an object": '{"versions": {}, "history": []}',
    "a summary that is a list": json.dumps({"versions": [{**VERSION, "summary": []}], "history": []}),
    "not JSON": '{"versions": [',
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("action", [["list"], ["promote", "v1"], ["rollback"]])
def test_a_malformed_registry_is_refused_naming_its_file(
    text: str, action: list[str], registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (registry / "registry.json").write_text(text)
    assert models(registry, *action) == 2
    out, err = capsys.readouterr()
    assert out == "" and str(registry / "registry.json") in err and "Traceback" not in err
    assert (registry / "registry.json").read_text() == text


def test_registry_given_as_its_file(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--registry .../registry.json` is the registry in that folder; any other file is refused, not read as empty."""
    assert models(registry / "registry.json", "list") == 0
    out = capsys.readouterr().out
    assert f"* {SHIPPED.promoted}" in out and f"registry {registry / 'registry.json'})" in out
    assert models(registry / "registry.json", "promote", "v1") == 0
    assert Registry(registry).promoted == "v1"
    capsys.readouterr()
    card = registry / "versions" / "v1" / "MODEL_CARD.md"
    assert models(card, "list") == 2
    out, err = capsys.readouterr()
    assert out == "" and f"{card} is a file" in err


def test_a_promotion_keeps_the_registry_readable_by_the_service(registry: Path) -> None:
    """The atomic write goes through mkstemp (mode 0600); a service running as another user must still read it."""
    (registry / "registry.json").chmod(0o644)
    assert models(registry, "promote", "v1") == 0
    assert (registry / "registry.json").stat().st_mode & 0o777 == 0o644
