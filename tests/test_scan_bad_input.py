"""`envwatch scan` given what a careless or hostile user gives it: the real CLI in a subprocess, real files.

An `--out` that names a photo, a file name that is not UTF-8, a named pipe matched by a glob, a
symbolic link looping back up the tree, a hand-edited manifest, a decompression bomb. Each must
either be scanned like any other photo or refused with exit 2 and one line, never lose a photo,
hang, crash half-way or scan a photo twice. The photos are real shared-dataset photos and the
model the shipped one, so problems are found where the output has to name the photo.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from drone_scenes import STREETS, surest_fire

from inference_api.scan_manifest import manifest_path
from model.registry import promoted_model
from model.runtime import Detector

NOT_UTF8 = b"b\xff\xfe.jpg"
"""A GBK-era name as it arrives from Windows: bytes that are no UTF-8."""
NOT_UTF8_TEXT = "b\\xff\\xfe.jpg"
"""How the scan writes that name (docs/scan.md): valid UTF-8 kept, other bytes as \\xNN."""


@pytest.fixture(scope="module")
def model() -> Path:
    return promoted_model()


@pytest.fixture(scope="module")
def fire(model: Path) -> Path:
    """A real photo on which the shipped model raises a problem, so GeoJSON has a Feature naming it."""
    return surest_fire(Detector.load(model))


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of three real photos, a.jpg, c.jpg, d.jpg."""
    folder = tmp_path / "photos"
    folder.mkdir()
    sources = sorted((STREETS / "images").glob("*.jpg"))[:3]
    assert len(sources) == 3, f"shared photos missing in {STREETS}"
    for name, source in zip(("a.jpg", "c.jpg", "d.jpg"), sources, strict=True):
        shutil.copy(source, folder / name)
    return folder


def run_scan(model: Path, *arguments: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI as a user runs it; stdout as bytes, so a path the scan writes wrongly shows as it is."""
    command = [sys.executable, "-m", "inference_api.cli", "scan", *map(str, arguments), "--model", str(model)]
    return subprocess.run([*command, "--no-progress"], capture_output=True, timeout=timeout)


def stderr(completed: subprocess.CompletedProcess) -> str:
    return completed.stderr.decode("utf-8", "replace")


def jsonl(completed: subprocess.CompletedProcess) -> list[dict]:
    assert completed.returncode == 0, stderr(completed)
    return [json.loads(line) for line in completed.stdout.decode("utf-8").splitlines()]


def refused(completed: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2, one `envwatch scan:` line naming the trouble, nothing on stdout."""
    text = stderr(completed)
    assert completed.returncode == 2, text
    assert completed.stdout == b"" and text.startswith("envwatch scan: ") and len(text.splitlines()) == 1, text
    assert all(word in text for word in words), text


# --out naming a photo ------------------------------------------------------------------------------


def test_out_slipped_before_a_photo_is_refused_and_the_photo_kept(model: Path, photos: Path) -> None:
    """`envwatch scan --out a.jpg c.jpg`: argparse takes a.jpg for the output; it has a photo's suffix."""
    before = (photos / "a.jpg").read_bytes()
    completed = run_scan(model, "--out", photos / "a.jpg", photos / "c.jpg")
    refused(completed, "a.jpg", "suffix")
    assert (photos / "a.jpg").read_bytes() == before
    assert not manifest_path(photos / "a.jpg").exists()


def test_out_with_a_photo_suffix_is_refused_even_when_new(model: Path, photos: Path, tmp_path: Path) -> None:
    refused(run_scan(model, photos, "--out", tmp_path / "results.PNG"), "suffix")
    assert not (tmp_path / "results.PNG").exists() and not manifest_path(tmp_path / "results.PNG").exists()


@pytest.mark.parametrize("spelling", ["same", "dotdot", "link"])
def test_out_that_is_one_of_the_scanned_photos_is_refused(
    model: Path, photos: Path, tmp_path: Path, spelling: str
) -> None:
    """Whatever it is called: the photo's name, a `..` detour, or a link without an image suffix."""
    out = {
        "same": photos / "c.jpg",
        "dotdot": photos / ".." / "photos" / "c.jpg",
        "link": tmp_path / "results.jsonl",
    }[spelling]
    if spelling == "link":
        out.symlink_to(photos / "c.jpg")
    before = {path.name: path.read_bytes() for path in photos.iterdir()}
    refused(run_scan(model, photos, "--format", "csv", "--out", out), "one of the photos to scan")
    assert {path.name: path.read_bytes() for path in photos.iterdir()} == before
    assert not manifest_path(out).exists()


def test_out_that_is_an_image_without_a_suffix_is_refused(model: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    shutil.copy(photos / "a.jpg", out)
    refused(run_scan(model, photos / "c.jpg", "--out", out), "is an image")
    assert out.read_bytes() == (photos / "a.jpg").read_bytes() and not manifest_path(out).exists()


# File names that are not UTF-8 ---------------------------------------------------------------------


def with_not_utf8_name(folder: Path, fire: Path) -> Path:
    """`folder` with the fire photo under `NOT_UTF8`, sorted before the others; the path Python sees."""
    raw = os.path.join(os.fsencode(folder), NOT_UTF8)
    with open(raw, "wb") as handle:
        handle.write(fire.read_bytes())
    return Path(os.fsdecode(raw))


def test_a_name_that_is_not_utf8_is_scanned_and_written_readably_to_stdout(
    model: Path, photos: Path, fire: Path
) -> None:
    with_not_utf8_name(photos, fire)
    records = jsonl(run_scan(model, photos))
    assert [r["image"] for r in records] == [f"{photos}/{name}" for name in ("a.jpg", NOT_UTF8_TEXT, "c.jpg", "d.jpg")]
    assert all("error" not in r for r in records) and records[1]["problems"], "the photo itself was scanned"


@pytest.mark.parametrize("kind", ["jsonl", "csv", "geojson"])
def test_a_name_that_is_not_utf8_is_written_by_every_format_and_resumed(
    model: Path, photos: Path, fire: Path, tmp_path: Path, kind: str
) -> None:
    """Every writer and the manifest write the same form, so a resumed scan skips the photo it recorded."""
    with_not_utf8_name(photos, fire)
    out = tmp_path / f"scan.{kind}"
    completed = run_scan(model, photos, "--format", kind, "--out", out)
    assert completed.returncode == 0, stderr(completed)
    assert stderr(completed).strip().splitlines()[-1].startswith("envwatch scan: 4 images, ")
    full = out.read_text(encoding="utf-8")
    if kind == "jsonl":
        images = [json.loads(line)["image"] for line in full.splitlines()]
    elif kind == "csv":
        images = list(dict.fromkeys(row["image"] for row in csv.DictReader(io.StringIO(full))))
    else:
        images = list(dict.fromkeys(f["properties"]["image"] for f in json.loads(full)["features"]))
    named = [f"{photos}/{name}" for name in ("a.jpg", NOT_UTF8_TEXT, "c.jpg", "d.jpg")]
    assert images == named if kind != "geojson" else f"{photos}/{NOT_UTF8_TEXT}" in images  # Features: problems only

    lines = manifest_path(out).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["image"] for line in lines[1:3]] == [f"{photos}/a.jpg", f"{photos}/{NOT_UTF8_TEXT}"]
    manifest_path(out).write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")  # stopped after the second photo
    with out.open("r+b") as handle:
        handle.truncate(json.loads(lines[2])["offset"])
    completed = run_scan(model, photos, "--format", kind, "--out", out, "--resume")
    assert completed.returncode == 0, stderr(completed)
    assert "2 done, 2 to scan" in stderr(completed)
    assert out.read_text(encoding="utf-8") == full


# Globs and folders: what is no photo, and what is the same photo ------------------------------------


def test_a_named_pipe_matched_by_a_glob_is_skipped_not_waited_on(model: Path, photos: Path) -> None:
    os.mkfifo(photos / "b.jpg")
    records = jsonl(run_scan(model, photos / "*.jpg", timeout=60))  # opening b.jpg to read it would wait forever
    assert [r["image"] for r in records] == [str(photos / name) for name in ("a.jpg", "c.jpg", "d.jpg")]


def test_a_link_looping_back_up_the_tree_scans_each_photo_once(model: Path, photos: Path) -> None:
    (photos / "sub").mkdir()
    (photos / "sub" / "up").symlink_to("..")
    records = jsonl(run_scan(model, photos / "**" / "*.jpg"))
    assert [r["image"] for r in records] == [str(photos / name) for name in ("a.jpg", "c.jpg", "d.jpg")]


def test_a_photo_reached_by_several_names_is_scanned_once_under_the_first(model: Path, photos: Path) -> None:
    """A link in the folder, the photo also named outright, and the same folder given twice over."""
    (photos / "b.jpg").symlink_to("c.jpg")
    records = jsonl(run_scan(model, photos / "d.jpg", photos, photos / ".." / "photos"))
    assert [r["image"] for r in records] == [str(photos / name) for name in ("d.jpg", "a.jpg", "b.jpg")]


# Damaged manifests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda header, entries: ({k: v for k, v in header.items() if k != "settings"}, entries),
        lambda header, entries: (header | {"settings": "v3"}, entries),
        lambda header, entries: ({k: v for k, v in header.items() if k != "offset"}, entries),
        lambda header, entries: (header, [{k: v for k, v in entries[0].items() if k != "offset"}, *entries[1:]]),
        lambda header, entries: (header, [{k: v for k, v in entries[0].items() if k != "image"}, *entries[1:]]),
        lambda header, entries: (header, [[], *entries[1:]]),
    ],
    ids=["no settings", "settings not an object", "no offset", "entry without offset", "entry without image", "list"],
)
def test_a_hand_damaged_manifest_is_refused_with_exit_2_and_nothing_cut(
    model: Path, photos: Path, tmp_path: Path, damage
) -> None:
    out = tmp_path / "scan.jsonl"
    assert run_scan(model, photos, "--out", out).returncode == 0
    header, *entries = (json.loads(line) for line in manifest_path(out).read_text(encoding="utf-8").splitlines())
    header, entries = damage(header, entries)
    manifest_path(out).write_text("".join(json.dumps(line) + "\n" for line in [header, *entries]), encoding="utf-8")
    before = (out.read_bytes(), manifest_path(out).read_bytes())
    refused(run_scan(model, photos, "--out", out, "--resume"), "is not an envwatch scan manifest")
    assert (out.read_bytes(), manifest_path(out).read_bytes()) == before


# Error messages ----------------------------------------------------------------------------------------


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` pixels (the data behind it is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_an_error_names_the_photo_once(model: Path, photos: Path) -> None:
    """The record's `image` names the photo; its `error` says only what is wrong (the stderr line joins them)."""
    (photos / "bomb.png").write_bytes(bomb_png(50000, 50000))
    completed = run_scan(model, photos / "bomb.png")
    (record,) = jsonl(completed)
    assert record == {"image": str(photos / "bomb.png"), "error": record["error"]}
    assert record["error"].startswith("50000x50000 is 2,500,000,000 pixels") and "bomb" not in record["error"]
    assert stderr(completed).count("bomb.png") == 1, stderr(completed)
