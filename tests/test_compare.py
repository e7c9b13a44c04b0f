"""`envwatch compare`: repeat scans matched by ground position or, without one, by box on the same view.

The flights are real scans (shipped model) of two drone frames cut from one large scene of real
photos: the second camera is 400 px (so many metres) further east, so the same ground lies at
other pixels and only ground positions can match it. Fires are pasted into the scene so that the
answer is known: one in both frames (still there), one only in the first (gone), one only in the
second (new), and one in the strip the second frame does not cover (not covered).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from drone_scenes import FIRES, background, drone_jpeg, paste, street_photos, surest_fire
from pyproj import Geod

from inference_api import cli
from inference_api.compare import ScanView, Seen, compare
from model.images import load_image_file
from model.registry import promoted_model
from model.runtime import Detector

LAT, LON = 30.26, 120.15
HEIGHT_M, FOCAL_35MM = 60.0, 24
WIDTH, HEIGHT, SHIFT = 2496, 1872, 400
XMP = {"RelativeAltitude": f"+{HEIGHT_M}", "GimbalYawDegree": "+0.0", "GimbalPitchDegree": "-90.0"}


def at(lat: float, lon: float, error: float = 1.0) -> dict:
    return {"lat": lat, "lon": lon, "error_m": error, "polygon": None}


def seen(kind: str, position: dict | None, key: str = "a.jpg", box: tuple = (0, 0, 10, 10)) -> Seen:
    return Seen(key, key, kind, 0.9, box, position)


def test_matching_rules_with_known_answers() -> None:
    geod = Geod(ellps="WGS84")
    north_8m, north_30m, north_50m = (geod.fwd(LON, LAT, 0, metres)[:2] for metres in (8.0, 30.0, 50.0))
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)]
    ring = [[LON + 0.001 * dx, LAT + 0.001 * dy] for dx, dy in corners]  # about 200 x 220 m around the origin
    old = ScanView(
        [
            seen("burning", at(LAT, LON)),  # 8 m from a new burning: within 10 m
            seen("exposed_garbage", at(LAT, LON)),  # same spot, other type: no match
            seen("burning", at(north_30m[1], north_30m[0], error=25.0)),  # 20 m apart, but errors of 25 and 20 m
            seen("overflowing_garbage", None, "cam/a.jpg", (10, 10, 50, 50)),  # same view, boxes overlap
            seen("overflowing_garbage", None, "cam/b.jpg"),  # a view the new scan did not take
            seen("burning", at(LAT + 0.01, LON)),  # 1.1 km north: outside the new footprint
        ],
        {"cam/a.jpg"},
        [],
    )
    new = ScanView(
        [
            seen("burning", at(north_8m[1], north_8m[0])),
            seen("burning", at(north_50m[1], north_50m[0], error=20.0)),
            seen("overflowing_garbage", None, "cam/a.jpg", (14, 12, 52, 55)),
            seen("exposed_garbage", None, "cam/z.jpg"),
        ],
        {"cam/a.jpg", "cam/z.jpg"},
        [ring],
    )
    changes = compare(old, new, 10.0, 0.3)
    assert [(c.status, c.type) for c in changes] == [
        ("still_there", "burning"),
        ("gone", "exposed_garbage"),
        ("still_there", "burning"),
        ("still_there", "overflowing_garbage"),
        ("not_covered", "overflowing_garbage"),
        ("not_covered", "burning"),
        ("new", "exposed_garbage"),
    ]
    assert changes[0].new is new.findings[0] and changes[0].distance_m == pytest.approx(8.0, abs=1e-6)
    assert changes[2].new is new.findings[1] and changes[2].distance_m == pytest.approx(20.0, abs=1e-6)
    assert changes[3].iou == pytest.approx(36 * 38 / (40 * 40 + 38 * 43 - 36 * 38))
    strict = compare(old, new, 5.0, 0.9)
    assert [c.status for c in strict][:4] == ["gone", "gone", "still_there", "gone"]


def flight(canvas: np.ndarray, offset: int, lon: float) -> bytes:
    return drone_jpeg(canvas[:, offset : offset + WIDTH], LAT, lon, XMP, focal_35mm=FOCAL_35MM)


def scan(folder: Path, out: Path) -> list[dict]:
    assert cli.main(["scan", str(folder), "--out", str(out), "--no-progress"]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def run_compare(old: Path, new: Path, out: Path, *options: str) -> list[dict]:
    """The changes `envwatch compare` writes (JSON lines; other formats are read by the caller)."""
    assert cli.main(["compare", str(old), str(new), "--out", str(out), *options]) == 0
    if options:
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def covers(box: list[float], region: tuple[float, ...], offset: int = 0) -> bool:
    x1, y1, x2, y2 = region[0] - offset, region[1], region[2] - offset, region[3]
    return box[0] < x2 and box[2] > x1 and box[1] < y2 and box[3] > y1


def inside(box: list[float], region: tuple[float, ...], offset: int = 0, margin: float = 4) -> bool:
    x1, y1, x2, y2 = region[0] - offset - margin, region[1] - margin, region[2] - offset + margin, region[3] + margin
    return x1 <= box[0] < box[2] <= x2 and y1 <= box[1] < box[3] <= y2


def test_repeat_flight_matches_fires_by_ground_position(tmp_path: Path, capsys) -> None:
    fire = surest_fire(Detector.load(promoted_model()))
    before = background(WIDTH + SHIFT, HEIGHT, first=7)
    after = before.copy()
    stays = paste(before, fire, 200, 1000, 400)
    paste(after, fire, 200, 1000, 400)
    goes = paste(before, fire, 200, 1700, 1150)
    comes = paste(after, fire, 200, 2300, 500)
    unseen = paste(before, fire, 200, 100, 900)  # the new frame starts at x = SHIFT

    gsd = HEIGHT_M * math.hypot(36, 24) / (FOCAL_35MM * math.hypot(WIDTH, HEIGHT))  # metres per pixel
    east = Geod(ellps="WGS84").fwd(LON, LAT, 90, SHIFT * gsd)[0]
    for name, canvas, offset, lon in (("may", before, 0, LON), ("june", after, SHIFT, east)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "DJI_0001.JPG").write_bytes(flight(canvas, offset, lon))
    old, new = scan(tmp_path / "may", tmp_path / "may.jsonl"), scan(tmp_path / "june", tmp_path / "june.jsonl")
    assert old[0]["georef"] and new[0]["georef"]
    changes = run_compare(tmp_path / "may.jsonl", tmp_path / "june.jsonl", tmp_path / "changes.jsonl")
    counts = [sum(c["status"] == status for c in changes) for status in ("still_there", "gone", "not_covered", "new")]
    summary = "envwatch compare: {} still_there, {} gone, {} not_covered, {} new".format(*counts)
    assert capsys.readouterr().err.splitlines()[-1] == summary

    def fate(region: tuple[float, ...], side: str, offset: int = 0) -> list[dict]:
        """Changes of burning boxed inside a pasted photo (its smoke may also be boxed, reaching beyond it)."""
        return [c for c in changes if c["type"] == "burning" and c[side] and inside(c[side]["box"], region, offset)]

    (kept,) = fate(stays, "old")
    assert kept["status"] == "still_there" and covers(kept["new"]["box"], stays, SHIFT)
    assert kept["distance_m"] < 2.0, "the same ground should be found within the box-placement error"
    assert [c["status"] for c in fate(goes, "old")] == ["gone"]
    assert [c["status"] for c in fate(comes, "new", SHIFT)] == ["new"]
    assert [c["status"] for c in fate(unseen, "old")] == ["not_covered"]

    geojson = tmp_path / "changes.geojson"
    run_compare(tmp_path / "may.jsonl", tmp_path / "june.jsonl", geojson, "--format", "geojson")
    features = json.loads(geojson.read_text(encoding="utf-8"))["features"]
    assert [f["properties"]["status"] for f in features] == [c["status"] for c in changes]
    assert all(f["geometry"]["type"] == "Point" for f in features)


def test_photos_without_georeference_match_on_the_same_view(tmp_path: Path) -> None:
    """cam1 is photographed again unchanged, cam2's fire is gone, cam3 was not revisited and cam4 is new."""
    detector = Detector.load(promoted_model())

    def problems(photo: Path) -> list[str]:
        return [p.type for p in detector.problems(detector.detect([load_image_file(photo).pixels])[0])]

    burning = [photo for photo in sorted(FIRES.glob("*.jpg"))[:12] if "burning" in problems(photo)][:4]
    clean = next(photo for photo in street_photos() if not problems(photo))
    layout = {
        "2024-05": {"cam1": burning[0], "cam2": burning[1], "cam3": burning[2]},
        "2024-06": {"cam1": burning[0], "cam2": clean, "cam4": burning[3]},
    }
    for visit, cameras in layout.items():
        for camera, photo in cameras.items():
            (tmp_path / visit / camera).mkdir(parents=True)
            shutil.copy(photo, tmp_path / visit / camera / "view.jpg")
        scan(tmp_path / visit, tmp_path / f"{visit}.jsonl")
    changes = run_compare(tmp_path / "2024-05.jsonl", tmp_path / "2024-06.jsonl", tmp_path / "changes.jsonl")
    by_camera: dict[str, set[str]] = {}
    for change in changes:
        camera = Path((change["old"] or change["new"])["image"]).parent.name
        by_camera.setdefault(camera, set()).add(change["status"])
    assert by_camera == {"cam1": {"still_there"}, "cam2": {"gone"}, "cam3": {"not_covered"}, "cam4": {"new"}}
    assert all(c["iou"] == 1.0 for c in changes if c["status"] == "still_there")
