"""`envwatch probe`: photos fetched from real Debian packages, checked byte for byte, then scored.

The packages here are built with `dpkg-deb --build` from shared-dataset photos, so the test runs
without the network; `envwatch probe fetch` without `--debs` runs `apt-get download` on the same
code path after that.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inference_api.cli import main as envwatch
from model.registry import promoted_model
from model.runtime import Detector
from training.probes import ProbeError, fetch, read_manifest, score

REPO = Path(__file__).resolve().parents[1]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def fire_photos(shared_datasets: Path) -> list[Path]:
    return sorted((shared_datasets / "fire-continuous").rglob("*.jpg"))[:2]


def build_deb(root: Path, name: str, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A real .deb holding `files` (path inside the package: bytes) and symbolic `links`."""
    tree = root / f"{name}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    control = (
        f"Package: {name}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: test <t@example.org>\nDescription: test\n"
    )
    (tree / "DEBIAN" / "control").write_text(control)
    for path, data in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_bytes(data)
    for path, target in (links or {}).items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).symlink_to(target)
    deb = root / "debs" / f"{name}_1.0-1_all.deb"
    deb.parent.mkdir(exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)], check=True, capture_output=True)
    return deb


def manifest(root: Path, deb: Path, images: list[dict]) -> Path:
    path = root / "probe.yaml"
    pin = {"version": "1.0-1", "sha256": sha256(deb.read_bytes()), "licence": "CC BY 4.0"}
    path.write_text(yaml.safe_dump({"packages": {"photos": pin}, "images": images}))
    return path


def entry(name: str, path: str, data: bytes) -> dict:
    return {"name": name, "package": "photos", "path": path, "sha256": sha256(data), "shows": "a fire",
            "traps": [], "author": "test", "licence": "CC BY 4.0"}  # fmt: skip


@pytest.fixture
def probe(tmp_path: Path, fire_photos: list[Path]) -> tuple[Path, Path, dict[str, bytes]]:
    """A package with two photos, a symlink to one of them, and a file the manifest does not name."""
    photos = {f"usr/share/photos/{p.name}": p.read_bytes() for p in fire_photos}
    files = {**photos, "usr/share/doc/photos/README": b"not a photo"}
    deb = build_deb(tmp_path, "photos", files, links={"usr/share/photos/link.jpg": fire_photos[0].name})
    images = [entry(f"fire-{i}", path, data) for i, (path, data) in enumerate(photos.items())]
    return manifest(tmp_path, deb, images), deb.parent, {f"fire-{i}.jpg": d for i, d in enumerate(photos.values())}


def test_halves_alternate_within_each_trap_so_both_hold_every_kind() -> None:
    from training.probes import ProbeImage, roles

    def image(name: str, *traps: str) -> ProbeImage:
        return ProbeImage(name, "p", f"{name}.jpg", "0" * 64, "", traps, "", "")

    given = [image("d", "sunset"), image("a", "sunset", "glare"), image("c", "mist"), image("b", "sunset"), image("e")]
    assert roles(given) == {"a": "report", "b": "calibrate", "d": "report", "c": "report", "e": "report"}
    shipped = roles(read_manifest(REPO / "datasets" / "probes" / "wallpaper-negatives.yaml")[1])
    assert sorted(shipped.values()).count("report") == 21 and len(shipped) == 36


def test_fetch_writes_exactly_the_pinned_photos_with_credits(probe: tuple, tmp_path: Path) -> None:
    pinned, debs, expected = probe
    out = tmp_path / "out"
    written = fetch(pinned, out, debs)
    assert {p.name: p.read_bytes() for p in written} == expected
    assert sorted(p.name for p in out.iterdir()) == ["ATTRIBUTION.md", "calibrate", "report"]
    assert [p.name for p in (out / "report").iterdir()] == ["fire-0.jpg"], "one trap group: the first reports"
    assert [p.name for p in (out / "calibrate").iterdir()] == ["fire-1.jpg"]
    credits = (out / "ATTRIBUTION.md").read_text()
    assert "| fire-0 | report | a fire | test | CC BY 4.0 | photos: /usr/share/photos/" in credits


def test_a_package_that_is_not_the_pinned_one_is_refused_and_nothing_changes(probe: tuple, tmp_path: Path) -> None:
    pinned, debs, _ = probe
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.jpg").write_bytes(b"earlier probe")
    data = yaml.safe_load(pinned.read_text())
    data["packages"]["photos"]["sha256"] = "0" * 64
    pinned.write_text(yaml.safe_dump(data))
    with pytest.raises(ProbeError, match="not photos 1.0-1 as pinned"):
        fetch(pinned, out, debs)
    assert [p.name for p in out.iterdir()] == ["kept.jpg"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".probe-")], "staging folder left behind"


def test_a_photo_that_is_not_the_pinned_one_is_refused(probe: tuple, tmp_path: Path) -> None:
    pinned, debs, _ = probe
    data = yaml.safe_load(pinned.read_text())
    data["images"][1]["sha256"] = sha256(b"another photo")
    pinned.write_text(yaml.safe_dump(data))
    with pytest.raises(ProbeError, match="fire-1: .* is not the photo the manifest pins"):
        fetch(pinned, tmp_path / "out", debs)
    assert not (tmp_path / "out").exists()


def test_symlinks_and_missing_members_are_not_photos(probe: tuple, tmp_path: Path, fire_photos: list[Path]) -> None:
    """A manifest naming the package's symlink gets no file through it: the member counts as missing."""
    pinned, debs, _ = probe
    data = yaml.safe_load(pinned.read_text())
    data["images"].append(entry("linked", "usr/share/photos/link.jpg", fire_photos[0].read_bytes()))
    pinned.write_text(yaml.safe_dump(data))
    assert (
        envwatch(["probe", "fetch", "--manifest", str(pinned), "--out", str(tmp_path / "o"), "--debs", str(debs)]) == 2
    )
    assert not (tmp_path / "o").exists()


def test_score_counts_what_envwatch_scan_raises(probe: tuple, tmp_path: Path) -> None:
    """Per problem type, the photos flagged are those `envwatch scan` raises that type on."""
    pinned, debs, _ = probe
    folder = tmp_path / "out"
    fetch(pinned, folder, debs)
    result = score(Detector.load(promoted_model()), folder, tile="off")
    command = [sys.executable, "-m", "inference_api.cli", "scan", str(folder), "--tile", "off", "--no-progress"]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    scanned = [json.loads(line) for line in completed.stdout.splitlines()]
    expected: dict[str, set[str]] = {}
    for record in scanned:
        for problem in record["problems"]:
            expected.setdefault(problem["type"], set()).add(Path(record["image"]).stem)
    assert result.images == 2 and result.errors == []
    assert {k: set(v) for k, v in result.flagged.items() if v} == expected
    assert expected.get("burning") == {"fire-0", "fire-1"}, "real fire photos: the probe must see the flags"

    out = tmp_path / "score.json"
    assert envwatch(["probe", "score", "--images", str(folder), "--tile", "off", "--out", str(out)]) == 0
    recorded = json.loads(out.read_text())["tile=off"]
    assert {k: set(v) for k, v in recorded["flagged"].items() if v} == expected


def test_score_without_photos_says_to_fetch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert envwatch(["probe", "score", "--images", str(tmp_path / "none")]) == 2
    assert "envwatch probe fetch" in capsys.readouterr().out


def test_a_file_that_is_no_package_and_unsafe_names_are_refused(probe: tuple, tmp_path: Path) -> None:
    pinned, _, _ = probe
    fake = tmp_path / "fake" / "photos_1.0-1_all.deb"
    fake.parent.mkdir()
    fake.write_bytes(b"!<arch>\nnot really a package")
    data = yaml.safe_load(pinned.read_text())
    data["packages"]["photos"]["sha256"] = sha256(fake.read_bytes())
    pinned.write_text(yaml.safe_dump(data))
    with pytest.raises(ProbeError, match="is not a Debian package"):
        fetch(pinned, tmp_path / "out", fake.parent)
    data["images"][0]["name"] = "../escape"
    pinned.write_text(yaml.safe_dump(data))
    with pytest.raises(ProbeError, match="unique file names: ../escape"):
        fetch(pinned, tmp_path / "out", fake.parent)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.jpg").exists()


def test_tile_calibration_is_the_least_strict_choice_within_the_cap(fire_photos: list[Path], tmp_path: Path) -> None:
    """On enlarged real fire photos every tiled flag counts as a false alarm: at cap 0.1 of 2 photos, none may stay.

    The choice must flag none, and lowering any one label's tile threshold by a grid step (while
    above its shipped threshold) must flag one again: nothing stricter than needed.
    """
    import cv2

    from model.images import load_image_file
    from training.probes import NEVER, calibrate_tiles

    folder = tmp_path / "enlarged"
    folder.mkdir()
    for photo in fire_photos:
        pixels = load_image_file(photo).pixels
        cv2.imwrite(str(folder / photo.name), cv2.resize(pixels, None, fx=3, fy=3))
    detector = Detector.load(promoted_model())
    record = calibrate_tiles(detector, folder, cap=0.1)["burning"]
    chosen, best = record["tile_thresholds"], record["best_tile_scores"]
    assert record["photos"] == 2 and record["flagged"] == 0 and record["flagged_without"] >= 1
    assert all(scores[label] < chosen[label] for scores in best.values() for label in chosen)
    checked = 0
    for label, threshold in chosen.items():
        lower = round(threshold - 0.01, 2) if threshold != NEVER else 0.9
        if lower >= detector.thresholds[label]:
            assert any(scores[label] >= lower for scores in best.values()), f"{label} could be {lower}"
            checked += 1
    assert checked >= 1, "a label raised above its shipped threshold must have been moved, and minimally"

    out = tmp_path / "tile-thresholds.json"
    assert envwatch(["probe", "calibrate-tiles", "--images", str(folder), "--out", str(out)]) == 0
    shipped = json.loads(out.read_text())
    assert {k: shipped[k] for k in chosen} == chosen and set(shipped) == set(detector.names) - {"garbage_bin"}
