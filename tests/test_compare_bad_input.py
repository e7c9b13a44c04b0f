"""`envwatch compare` given what a careless or hostile user gives it: the real CLI in a subprocess, real files.

An `--out` that names one of the scans or a photo, records of the right overall shape whose
fields are not (hand-edited, cut, from another tool), NaN options and an empty scan. Each must
be refused with exit 2 and one line naming the trouble (for records: `file:line:`), never
traceback, and never destroy or cut a file that was there.

The scans are built from one real `envwatch scan` of a real photo with the shipped model, plus a
georeferenced record shaped as the scan writes it (drone photos are slow to make; test_compare.py
covers real ones), so a damaged field is the only thing wrong.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from drone_scenes import surest_fire

from model.registry import promoted_model
from model.runtime import Detector

LAT, LON = 30.26, 120.15
RING = [[LON - 0.001, LAT - 0.001], [LON + 0.001, LAT - 0.001], [LON + 0.001, LAT + 0.001], [LON - 0.001, LAT + 0.001]]


@pytest.fixture(scope="module")
def fire() -> Path:
    """A real photo on which the shipped model raises a problem."""
    return surest_fire(Detector.load(promoted_model()))


@pytest.fixture(scope="module")
def scanned(fire: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The record `envwatch scan` writes for the fire photo."""
    folder = tmp_path_factory.mktemp("photo")
    shutil.copy(fire, folder / "fire.jpg")
    command = [sys.executable, "-m", "inference_api.cli", "scan", str(folder / "fire.jpg"), "--no-progress"]
    completed = subprocess.run([*command, "--model", str(promoted_model())], capture_output=True, timeout=120)
    assert completed.returncode == 0, completed.stderr.decode()
    (record,) = (json.loads(line) for line in completed.stdout.decode("utf-8").splitlines())
    assert record["problems"], "the fire photo must raise a problem"
    return record


def georeferenced(record: dict, lat: float) -> dict:
    """`record` as a drone photo: another image whose first problem lies at `lat`, inside its footprint."""
    problem = record["problems"][0] | {"position": {"lat": lat, "lon": LON, "error_m": 2.0, "polygon": None}}
    georef = {"method": "exif_xmp", "footprint": [*RING, RING[0]]}
    return record | {"image": "drone/DJI_0001.JPG", "problems": [problem], "georef": georef}


def write_scan(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture
def scans(scanned: dict, tmp_path: Path) -> tuple[Path, Path]:
    """A valid OLD and NEW: the photo in both, and a drone finding that moved 300 m (gone + new)."""
    old = write_scan(tmp_path / "old.jsonl", [scanned, georeferenced(scanned, LAT)])
    new = write_scan(tmp_path / "new.jsonl", [scanned, georeferenced(scanned, LAT + 0.0027)])
    return old, new


def run_compare(*arguments: str | Path, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    """The CLI as a user runs it; with `limit_bytes`, no file it writes may grow past that (a full disk)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    command = [sys.executable, "-m", "inference_api.cli", "compare", *map(str, arguments)]
    env = os.environ | {"PYTHONDONTWRITEBYTECODE": "1"}
    preexec = limit if limit_bytes is not None else None
    return subprocess.run(command, capture_output=True, timeout=120, env=env, preexec_fn=preexec, text=True)


def refused(completed: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2, one `envwatch compare:` line naming the trouble, nothing on stdout."""
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.splitlines()
    assert completed.stdout == "" and len(lines) == 1 and lines[0].startswith("envwatch compare: "), completed.stderr
    assert all(word in completed.stderr for word in words), completed.stderr


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_the_valid_scans_compare(scans: tuple[Path, Path], scanned: dict, tmp_path: Path) -> None:
    """The baseline the damaged cases start from is accepted, so each refusal below is the damage's."""
    completed = run_compare(*scans, "--format", "geojson", "--out", tmp_path / "recheck.geojson")
    assert completed.returncode == 0, completed.stderr
    statuses = [f["properties"]["status"] for f in json.loads((tmp_path / "recheck.geojson").read_text())["features"]]
    assert statuses == ["still_there"] * len(scanned["problems"]) + ["gone", "new"]


# --out naming one of the scans or a photo ------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["old", "new", "dotdot", "link", "hard link"])
def test_out_that_is_one_of_the_scans_is_refused(scans: tuple[Path, Path], tmp_path: Path, spelling: str) -> None:
    """`--out old.jsonl` would replace the earlier scan by the comparison, whatever it is called."""
    old, new = scans
    out = {
        "old": old,
        "new": new,
        "dotdot": tmp_path / ".." / tmp_path.name / "old.jsonl",
        "link": tmp_path / "changes.jsonl",
        "hard link": tmp_path / "changes.jsonl",
    }[spelling]
    if spelling == "link":
        out.symlink_to(old)
    elif spelling == "hard link":
        os.link(new, out)
    before = contents(tmp_path)
    refused(run_compare(old, new, "--out", out), "one of the scans to compare", "nothing was written")
    assert contents(tmp_path) == before


def test_out_over_a_photo_is_refused_and_the_photo_kept(scans: tuple[Path, Path], fire: Path, tmp_path: Path) -> None:
    shutil.copy(fire, tmp_path / "victim.jpg")
    refused(run_compare(*scans, "--out", tmp_path / "victim.jpg"), "suffix")
    shutil.copy(fire, tmp_path / "results")
    refused(run_compare(*scans, "--out", tmp_path / "results"), "is an image")
    assert (tmp_path / "victim.jpg").read_bytes() == (tmp_path / "results").read_bytes() == fire.read_bytes()


def test_a_write_failing_part_way_leaves_the_earlier_output_whole(scans: tuple[Path, Path], tmp_path: Path) -> None:
    """The disk fills while the comparison is written: the earlier comparison stays, no part file is left."""
    out = tmp_path / "changes.jsonl"
    out.write_text("the earlier comparison\n", encoding="utf-8")
    before = contents(tmp_path)
    refused(run_compare(*scans, "--out", out, limit_bytes=200), str(out.name))
    assert contents(tmp_path) == before


# Records of the right shape with the wrong fields -------------------------------------------------------

Damage = Callable[[dict], object]


def problem(change: dict) -> Damage:
    """A damage to the first problem of the record."""
    return lambda record: record | {"problems": [record["problems"][0] | change, *record["problems"][1:]]}


def without(key: str) -> Damage:
    return lambda record: record | {"problems": [{k: v for k, v in record["problems"][0].items() if k != key}]}


def position(change: dict, drop: str = "") -> Damage:
    """A damage to the first problem's ground position: `change` applied, `drop` left out."""

    def damage(record: dict) -> dict:
        moved = {k: v for k, v in record["problems"][0]["position"].items() if k != drop}
        return problem({"position": moved | change})(record)

    return damage


DAMAGES: dict[str, tuple[Damage, str]] = {
    "problem without type": (without("type"), "`type`"),
    "problems null": (lambda r: r | {"problems": None}, "`problems`"),
    "problems a string": (lambda r: r | {"problems": "burning"}, "`problems`"),
    "problems [1]": (lambda r: r | {"problems": [1]}, "problem must be an object"),
    "box of three": (problem({"box": [1, 2, 3]}), "`box`"),
    "box of strings": (problem({"box": ["1", "2", "3", "4"]}), "`box`"),
    "box with NaN": (problem({"box": [1, 2, float("nan"), 4]}), "`box`"),
    "box inside out": (problem({"box": [10, 2, 3, 4]}), "`box`"),
    "score a string": (problem({"score": "high"}), "`score`"),
    "position without error_m": (position({}, drop="error_m"), "`position`"),
    "position without lon": (position({}, drop="lon"), "`position`"),
    "position with infinite lat": (position({"lat": float("inf")}), "`position`"),
    "position off the globe": (position({"lat": 123.0}), "`position`"),
    "footprint of bare numbers": (lambda r: r | {"georef": {"footprint": [[1], [2], [3]]}}, "footprint"),
    "image not a string": (lambda r: r | {"image": 7}, "`image`"),
    "a list, not an object": (lambda r: [r], "JSON object"),
}


@pytest.mark.parametrize("side", ["old", "new"])
@pytest.mark.parametrize("name", list(DAMAGES))
def test_a_damaged_record_is_refused_naming_file_and_line(
    scans: tuple[Path, Path], tmp_path: Path, name: str, side: str
) -> None:
    """Line 2 (the georeferenced record) is damaged; an earlier comparison in --out is left as it was."""
    damage, words = DAMAGES[name]
    path = scans[0] if side == "old" else scans[1]
    first, second = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    write_scan(path, [first, damage(second)])
    out = tmp_path / "recheck.geojson"
    out.write_text("the earlier comparison\n", encoding="utf-8")
    refused(run_compare(*scans, "--format", "geojson", "--out", out), f"{path}:2: ", words)
    assert out.read_text(encoding="utf-8") == "the earlier comparison\n"


def test_a_line_that_is_not_json_is_refused_naming_file_and_line(scans: tuple[Path, Path]) -> None:
    old, new = scans
    new.write_text(new.read_text(encoding="utf-8") + '{"image": "cut', encoding="utf-8")
    refused(run_compare(old, new), f"{new}:3: ", "not JSON")


# Options and empty scans ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option", [("--distance", "nan"), ("--distance", "inf"), ("--distance", "0"), ("--iou", "nan"), ("--iou", "1.5")]
)
def test_options_that_are_no_number_in_range_are_refused(scans: tuple[Path, Path], option: tuple[str, str]) -> None:
    """`--distance nan` passed `<= 0` (NaN compares false) and then matched nothing: 1 m apart became gone + new."""
    refused(run_compare(*scans, *option), option[0])


@pytest.mark.parametrize("side", ["old", "new"])
@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_an_empty_scan_is_refused(scans: tuple[Path, Path], tmp_path: Path, side: str, text: str) -> None:
    """An empty output is a scan that never ran or the wrong file: all `new` (or `not_covered`) would be a lie."""
    path = scans[0] if side == "old" else scans[1]
    path.write_text(text, encoding="utf-8")
    refused(run_compare(*scans, "--out", tmp_path / "changes.jsonl"), str(path), "no scan records")
    assert not (tmp_path / "changes.jsonl").exists()
