"""`envwatch scan` run as a user runs it: the real CLI in a subprocess, on real photos, with the tiny model.

The folder holds real shared-dataset photos, a truncated JPEG, a text file a folder walk must skip,
and, in a subfolder, a photo with GPS and capture time in its EXIF (inserted as an APP1 segment so
its pixels stay byte-identical) and one with an upper-case suffix.

The tiny model is barely trained, so at its shipped thresholds it finds nothing. The scan model is
therefore the same ONNX with a lower threshold shipped (`SCAN_THRESHOLD` below), chosen from the
photos' own scores so that a few problems exist and `--conf` has room to differ from it.
"""

from __future__ import annotations

import csv
import json
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference_api.scan_formats import CSV_COLUMNS
from model.images import EXIF_IFD, GPS_IFD, load_image_file
from model.runtime import Detector
from model.taxonomy import PROBLEMS_BY_KEY, problem_for_label
from training.export import write_metadata

GPS = {"lat": 30.26, "lon": 120.1501, "alt": 12.5}
CAPTURED_AT = "2024-05-17T09:41:07"


def with_exif_gps(jpeg: bytes) -> bytes:
    """`jpeg` with an EXIF segment holding `GPS` and `CAPTURED_AT` inserted after SOI; image data untouched."""
    exif = Image.Exif()
    exif[GPS_IFD] = {1: "N", 2: (30.0, 15.0, 36.0), 3: "E", 4: (120.0, 9.0, 0.36), 6: 12.5}
    exif[EXIF_IFD] = {0x9003: "2024:05:17 09:41:07"}
    payload = exif.tobytes()
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.fixture(scope="module")
def photos(shared_datasets: Path, tiny_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The scan folder and model; the photo whose best problem box scores highest gets the GPS tag."""
    fire = sorted((shared_datasets / "fire-continuous" / "test" / "images").glob("*.jpg"))
    wide = [path for path in fire[:40] if (size := Image.open(path).size)[0] > size[1]][:2]
    garbage = sorted((shared_datasets / "garbage-cn" / "valid" / "images").glob("*.jpg"))[:2]
    smoke = sorted((shared_datasets / "fire-smoke-8" / "test" / "images").glob("*.jpg"))[:2]
    sources = wide + garbage + smoke

    detector = Detector.load(tiny_onnx)
    found = detector.detect([load_image_file(path).pixels for path in sources], conf=0.001)
    raises_problem = [np.array([problem_for_label(label) is not None for label in f.labels], bool) for f in found]
    best = [float(f.scores[mask].max()) if mask.any() else 0.0 for f, mask in zip(found, raises_problem, strict=True)]
    problem_scores = np.sort(np.concatenate([f.scores[mask] for f, mask in zip(found, raises_problem, strict=True)]))
    threshold = float(problem_scores[-6:-4].mean())  # about five problem boxes pass; midway, so no score equals it

    root = tmp_path_factory.mktemp("scan")
    folder = root / "photos"
    (folder / "sub").mkdir(parents=True)
    tagged = int(np.argmax(best))
    for index, source in enumerate(sources):
        if index == tagged:
            (folder / "sub" / "gps.jpg").write_bytes(with_exif_gps(source.read_bytes()))
        else:
            shutil.copy(source, folder / source.name)
    shutil.move(folder / sources[(tagged + 1) % len(sources)].name, folder / "sub" / "UPPER.JPG")
    (folder / "broken.jpg").write_bytes(garbage[0].read_bytes()[:5000])
    (folder / "notes.txt").write_text("not a photo; a folder scan skips it\n")

    model = root / "scan.onnx"
    shutil.copy(tiny_onnx, model)
    write_metadata(model, {"envwatch.thresholds": dict.fromkeys(detector.names, threshold)})
    return {"folder": folder, "model": model}


def suite_runtime(model: Path) -> str:
    """The runtime the suite runs on (tests/conftest.py), resolved as `envwatch scan` resolves it."""
    return Detector.load(model).network.runtime


def run_scan(model: Path, *arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "inference_api.cli", "scan", *arguments, "--model", str(model), "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, encoding="utf-8", timeout=300)


def jsonl(completed: subprocess.CompletedProcess) -> list[dict]:
    assert completed.returncode == 0, completed.stderr
    return [json.loads(line) for line in completed.stdout.splitlines()]


@pytest.fixture(scope="module")
def default_scan(photos: dict[str, Path]) -> subprocess.CompletedProcess:
    return run_scan(photos["model"], str(photos["folder"]))


def test_jsonl_has_one_record_per_photo_in_order_and_goes_on_after_errors(
    photos: dict[str, Path], default_scan: subprocess.CompletedProcess
) -> None:
    folder = photos["folder"]
    records = jsonl(default_scan)
    expected = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".jpg")
    assert [record["image"] for record in records] == [str(p) for p in expected]
    assert len(records) == 7 and folder / "sub" / "UPPER.JPG" in expected

    broken = next(record for record in records if record["image"].endswith("broken.jpg"))
    assert broken == {"image": str(folder / "broken.jpg"), "error": broken["error"]}
    assert "truncated or corrupt" in broken["error"]

    good = [record for record in records if "error" not in record]
    problems = sum(len(record["problems"]) for record in good)
    assert default_scan.stderr.strip().splitlines()[-1] == (
        f"envwatch scan: 7 images, {problems} problems, 1 errors (model tiny-test on {suite_runtime(photos['model'])})"
    )
    for record in good:
        assert record["model"] == "tiny-test"
        height, width = Image.open(record["image"]).size[::-1]
        assert (record["width"], record["height"]) == (width, height)
        for item in record["detections"] + record["problems"]:
            x1, y1, x2, y2 = item["box"]
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height, (record["image"], item)

    tagged = next(record for record in records if record["image"].endswith("gps.jpg"))
    assert tagged["gps"] == GPS and tagged["captured_at"] == CAPTURED_AT
    assert all(record["gps"] is None and record["captured_at"] is None for record in good if record is not tagged)


def test_problems_follow_the_shipped_thresholds(
    photos: dict[str, Path], default_scan: subprocess.CompletedProcess
) -> None:
    threshold = Detector.load(photos["model"]).thresholds["fire"]
    records = [record for record in jsonl(default_scan) if "error" not in record]
    assert sum(len(record["problems"]) for record in records) > 0, "no problems: nothing was checked"
    assert next(r for r in records if r["image"].endswith("gps.jpg"))["problems"]
    for record in records:
        for problem in record["problems"]:
            kind = PROBLEMS_BY_KEY[problem["type"]]
            assert problem["score"] >= round(threshold, 4)
            assert problem_for_label(problem["label"]) == problem["type"]
            assert (problem["name_zh"], problem["name_en"]) == (kind.name_zh, kind.name_en)
        raising = [d for d in record["detections"] if problem_for_label(d["label"])]
        assert all(d["score"] >= round(threshold, 4) for d in record["detections"])
        for detection in raising:  # every box that raises a problem lies inside one problem's (union) box
            x1, y1, x2, y2 = detection["box"]
            assert any(
                p["type"] == problem_for_label(detection["label"])
                and p["box"][0] <= x1
                and p["box"][1] <= y1
                and x2 <= p["box"][2]
                and y2 <= p["box"][3]
                for p in record["problems"]
            ), (record["image"], detection)


@pytest.mark.parametrize("conf", ["0.001", "0.99"])
def test_conf_changes_detections_but_not_problems(
    photos: dict[str, Path], default_scan: subprocess.CompletedProcess, conf: str
) -> None:
    default = [record for record in jsonl(default_scan) if "error" not in record]
    changed = jsonl(run_scan(photos["model"], str(photos["folder"]), "--conf", conf))
    changed = [record for record in changed if "error" not in record]
    assert [r["problems"] for r in changed] == [r["problems"] for r in default]
    count = sum(len(r["detections"]) for r in changed)
    baseline = sum(len(r["detections"]) for r in default)
    assert count > baseline if conf == "0.001" else count < baseline
    assert all(d["score"] >= float(conf) for r in changed for d in r["detections"])


def test_csv_has_a_row_per_problem_and_one_for_each_other_photo(
    photos: dict[str, Path], default_scan: subprocess.CompletedProcess, tmp_path: Path
) -> None:
    out = tmp_path / "scan.csv"
    completed = run_scan(photos["model"], str(photos["folder"]), "--format", "csv", "--out", str(out))
    assert completed.returncode == 0 and completed.stdout == "", completed.stderr
    with out.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    records = jsonl(default_scan)
    for record in records:
        mine = [row for row in rows if row["image"] == record["image"]]
        if "error" in record:
            assert mine == [dict.fromkeys(CSV_COLUMNS, "") | {"image": record["image"], "error": record["error"]}]
            continue
        assert {row["detections"] for row in mine} == {str(len(record["detections"]))}
        if not record["problems"]:
            assert len(mine) == 1 and mine[0]["problem"] == mine[0]["score"] == mine[0]["error"] == ""
            continue
        assert [row["problem"] for row in mine] == [p["type"] for p in record["problems"]]
        assert [row["name_zh"] for row in mine] == [p["name_zh"] for p in record["problems"]]
        assert [float(row["score"]) for row in mine] == [p["score"] for p in record["problems"]]
        assert [[float(row[k]) for k in ("x1", "y1", "x2", "y2")] for row in mine] == [
            p["box"] for p in record["problems"]
        ]
    assert len(rows) == sum(max(len(r.get("problems", [])), 1) for r in records)
    tagged = [row for row in rows if row["image"].endswith("gps.jpg")]
    assert {(row["lat"], row["lon"], row["alt"], row["captured_at"]) for row in tagged} == {
        ("30.26", "120.1501", "12.5", CAPTURED_AT)
    }


def test_geojson_is_a_feature_collection_of_problems(
    photos: dict[str, Path], default_scan: subprocess.CompletedProcess
) -> None:
    completed = run_scan(photos["model"], str(photos["folder"]), "--format", "geojson")
    assert completed.returncode == 0, completed.stderr
    collection = json.loads(completed.stdout)
    assert set(collection) == {"type", "features"} and collection["type"] == "FeatureCollection"
    expected = [(r["image"], p) for r in jsonl(default_scan) if "error" not in r for p in r["problems"]]
    assert len(collection["features"]) == len(expected) > 0
    for feature, (image, problem) in zip(collection["features"], expected, strict=True):
        assert set(feature) == {"type", "geometry", "properties"} and feature["type"] == "Feature"
        properties = feature["properties"]
        assert properties["image"] == image
        assert {k: properties[k] for k in ("type", "score", "box", "label")} == {
            k: problem[k] for k in ("type", "score", "box", "label")
        }
        if image.endswith("gps.jpg"):
            assert feature["geometry"] == {"type": "Point", "coordinates": [GPS["lon"], GPS["lat"], GPS["alt"]]}
            assert properties["captured_at"] == CAPTURED_AT
        else:
            assert feature["geometry"] is None and properties["captured_at"] is None


def test_quoted_globs_are_expanded_and_files_can_be_named(photos: dict[str, Path]) -> None:
    folder = photos["folder"]
    pattern = str(folder / "**" / "*.jpg")  # `**` also matches no folder; globs are case-sensitive
    records = jsonl(run_scan(photos["model"], pattern, str(folder / "sub" / "UPPER.JPG"), str(folder / "notes.txt")))
    expected = sorted(p for p in folder.rglob("*.jpg")) + [folder / "sub" / "UPPER.JPG", folder / "notes.txt"]
    assert [record["image"] for record in records] == [str(p) for p in expected]
    assert "not an image" in records[-1]["error"]


@pytest.mark.parametrize("arguments", [["{folder}/*.png"], ["{folder}/missing.jpg"], ["{folder}", "--batch", "0"]])
def test_usage_errors_exit_2(photos: dict[str, Path], arguments: list[str]) -> None:
    completed = run_scan(photos["model"], *(a.format(folder=photos["folder"]) for a in arguments))
    assert completed.returncode == 2
    assert completed.stdout == "" and completed.stderr.startswith("envwatch scan: ")


def test_heic_photos_in_a_folder_are_scanned_like_jpegs(photos: dict[str, Path], tmp_path: Path) -> None:
    """An iPhone folder: the same photo as JPEG and as HEIC gives the same size and nearly the same detections."""
    source = next(p for p in sorted(photos["folder"].glob("*.jpg")) if p.name != "broken.jpg")
    folder = tmp_path / "iphone"
    folder.mkdir()
    shutil.copy(source, folder / "IMG_0001.jpg")
    Image.open(source).convert("RGB").save(folder / "IMG_0002.HEIC", "HEIF", quality=95)
    records = {Path(r["image"]).name: r for r in jsonl(run_scan(photos["model"], str(folder), "--conf", "0.001"))}
    assert set(records) == {"IMG_0001.jpg", "IMG_0002.HEIC"}
    jpeg, heic = records["IMG_0001.jpg"], records["IMG_0002.HEIC"]
    assert "error" not in heic and (heic["width"], heic["height"]) == (jpeg["width"], jpeg["height"])
    assert jpeg["detections"] and heic["detections"], "a near-zero --conf gives boxes to compare"
    top_jpeg, top_heic = (max(r["detections"], key=lambda d: d["score"]) for r in (jpeg, heic))
    assert top_heic["label"] == top_jpeg["label"] and abs(top_heic["score"] - top_jpeg["score"]) < 0.05
    assert np.allclose(top_heic["box"], top_jpeg["box"], atol=0.05 * max(jpeg["width"], jpeg["height"]))


def test_decoding_runs_one_batch_ahead_not_through_the_folder(
    shared_datasets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next batch decodes while the current one is detected, and no further: memory stays a few batches."""
    from inference_api import scan

    paths = sorted((shared_datasets / "garbage-cn" / "valid" / "images").glob("*.jpg"))[:12]
    decoded: list[Path] = []

    def counted(path: Path, *args: object, **kwargs: object) -> object:
        decoded.append(path)
        return load_image_file(path, *args, **kwargs)

    monkeypatch.setattr(scan, "load_image_file", counted)
    batches = scan._decoded(paths, 3, scan.decode_size((416, 416)))
    first_paths, first = next(batches)
    assert list(first_paths) == paths[:3] and [item.sha256 for item in first] == [
        load_image_file(path).sha256 for path in paths[:3]
    ]
    for _ in range(200):  # the thread decoding ahead finishes its one batch, then waits
        if len(decoded) >= 6:
            break
        time.sleep(0.01)
    time.sleep(0.2)
    assert paths[:6] == decoded, "the next batch was not decoded ahead, or decoding ran past it"
    rest = [list(chunk) for chunk, _ in batches]
    assert rest == [paths[3:6], paths[6:9], paths[9:12]] and decoded == paths
