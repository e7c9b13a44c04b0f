"""`envwatch import-scan`: an offline scan stored as one inspection, read back through the running service.

The scan is real (shipped model) over real photos: a drone frame with a fire pasted in and DJI
metadata (findings placed on the ground), a phone photo with EXIF GPS (findings at the photo),
a plain photo and a broken JPEG. The import runs as a command against the database of a live
server (SQLite, and PostgreSQL when `ENVWATCH_TEST_POSTGRES_URL` is set); everything is then
checked over HTTP, as a reviewer would see it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from drone_scenes import background, drone_jpeg, paste, surest_fire
from service_helpers import GARBAGE_IMAGES, Server, with_exif

from inference_api import cli
from model.runtime import Detector

XMP = {"RelativeAltitude": "+70", "GimbalYawDegree": "-30", "GimbalPitchDegree": "-90"}


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory, service_model: Path) -> dict[str, Path]:
    """A scanned folder: its photos and the JSONL `envwatch scan` wrote for it (relative paths, as usual)."""
    root = tmp_path_factory.mktemp("import")
    folder = root / "survey"
    folder.mkdir()
    fire = surest_fire(Detector.load(service_model))
    frame = background(2080, 1560, first=2)
    paste(frame, fire, 220, 1200, 600)
    (folder / "DJI_0100.JPG").write_bytes(drone_jpeg(frame, 30.27, 120.16, XMP, focal_mm=8.8, sensor_width_mm=13.2))
    (folder / "phone.jpg").write_bytes(with_exif(fire, 30.26, 120.15, 12.0, "2024:05:17 09:41:07"))
    shutil.copy(sorted(GARBAGE_IMAGES.glob("*.jpg"))[0], folder / "plain.jpg")
    (folder / "broken.jpg").write_bytes(fire.read_bytes()[:2000])
    return {"root": root, "results": scan(root, "survey", service_model)}


def scan(root: Path, folder: str, model: Path) -> Path:
    """Scan `root/folder` from `root`, so the results name the photos relative to it, as users' scans do."""
    cwd = Path.cwd()
    os.chdir(root)
    try:
        assert cli.main(["scan", folder, "--model", str(model), "--out", f"{folder}.jsonl", "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    return root / f"{folder}.jsonl"


def import_scan(server: Server, results: Path, *options: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENVWATCH_DATABASE_URL": server.database_url, "ENVWATCH_DATA_DIR": str(server.data_dir)}
    command = [sys.executable, "-m", "inference_api.cli", "import-scan", str(results), *options]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_import_stores_one_inspection_with_findings_where_they_are(
    server: Server, inspector_key: str, survey: dict[str, Path]
) -> None:
    records = [json.loads(line) for line in survey["results"].read_text(encoding="utf-8").splitlines()]
    options = ["--images-root", str(survey["root"]), "--region", "西湖区", "--village", "龙井村"]
    completed = import_scan(server, survey["results"], *options)
    assert completed.returncode == 0, completed.stderr
    answer = json.loads(completed.stdout)
    assert answer["created"] is True

    with server.client(inspector_key) as client:
        inspection = client.get(f"/v1/inspections/{answer['inspection_id']}").json()
        findings = client.get("/v1/findings", params={"inspection_id": answer["inspection_id"]}).json()["items"]
        stored = [f for f in inspection["files"] if f["ok"]]
        originals = {f["file"]: client.get(f"/v1/images/{f['image']['id']}/original").content for f in stored}
    assert (inspection["region"], inspection["village"]) == ("西湖区", "龙井村")
    assert [f["file"] for f in inspection["files"]] == [r["image"] for r in records]
    assert [f["ok"] for f in inspection["files"]] == ["error" not in r for r in records]
    broken = next(f for f in inspection["files"] if not f["ok"])
    assert broken["file"].endswith("broken.jpg") and "truncated" in broken["error"]["message"]
    for name, data in originals.items():
        assert data == (survey["root"] / name).read_bytes()

    expected = [(r, p) for r in records if "error" not in r for p in r["problems"]]
    assert len(findings) == len(expected) > 0 and all(f["status"] == "candidate" for f in findings)
    by_file = {f["image"]["id"]: f["file"] for f in inspection["files"] if f["ok"]}
    placed = 0
    for finding, (record, problem) in zip(findings, expected, strict=True):
        assert by_file[finding["image_id"]] == record["image"]
        assert (finding["type"], finding["score"]) == (problem["type"], problem["score"])
        assert [finding["box"][k] for k in ("x1", "y1", "x2", "y2")] == problem["box"]
        if problem["position"]:  # the drone frame: on the ground, not at the camera
            placed += 1
            ground = {"lat": problem["position"]["lat"], "lon": problem["position"]["lon"], "alt": None}
            assert finding["gps"] == {**ground, "source": "photo", "accuracy_m": None}
        elif record["gps"]:
            assert finding["gps"] == {**record["gps"], "source": "photo", "accuracy_m": None}
        else:
            assert finding["gps"] is None
    assert placed > 0 and any(r["gps"] and not r["georef"] and r["problems"] for r in records if "error" not in r)


def test_importing_the_same_results_again_changes_nothing(server: Server, survey: dict[str, Path]) -> None:
    with server.admin as client:
        before = client.get("/v1/inspections").json()["total"]
    completed = import_scan(server, survey["results"], "--images-root", str(survey["root"]))
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["created"] is False and "already imported" in completed.stderr
    with server.admin as client:
        assert client.get("/v1/inspections").json()["total"] == before


def test_a_photo_changed_since_the_scan_is_recorded_as_a_file_error(
    server: Server, survey: dict[str, Path], tmp_path: Path
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(survey["root"], root)
    (root / "survey" / "plain.jpg").write_bytes(sorted(GARBAGE_IMAGES.glob("*.jpg"))[1].read_bytes())
    completed = import_scan(server, root / "survey.jsonl", "--images-root", str(root), "--client-id", "changed-1")
    assert completed.returncode == 0, completed.stderr
    with server.admin as client:
        inspection = client.get(f"/v1/inspections/{json.loads(completed.stdout)['inspection_id']}").json()
    (changed,) = [f for f in inspection["files"] if f["file"].endswith("plain.jpg")]
    assert changed["error"]["code"] == "changed" and "changed since it was scanned" in changed["error"]["message"]


def test_a_broken_results_file_is_refused_and_leaves_nothing(
    server: Server, service_model: Path, tmp_path: Path
) -> None:
    """Photos never imported before, then a torn line: the photos stored before the error are removed again."""
    (tmp_path / "fresh").mkdir()
    for photo in sorted(GARBAGE_IMAGES.glob("*.jpg"))[5:8]:
        shutil.copy(photo, tmp_path / "fresh" / photo.name)
    results = scan(tmp_path, "fresh", service_model)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(results.read_text(encoding="utf-8") + '{"image": "fresh/x.jpg", "problems": [\n', encoding="utf-8")
    with server.admin as client:
        before = client.get("/v1/inspections").json()["total"]
    files_before = sorted(p for p in server.data_dir.rglob("*") if p.is_file())
    completed = import_scan(server, bad, "--images-root", str(tmp_path), "--client-id", "bad-1")
    assert completed.returncode == 2 and "bad.jsonl:4: not JSON" in completed.stderr
    with server.admin as client:
        assert client.get("/v1/inspections").json()["total"] == before
    assert sorted(p for p in server.data_dir.rglob("*") if p.is_file()) == files_before


GOOD_PROBLEM = {"type": "exposed_garbage", "label": "exposed_garbage", "score": 0.5, "box": [1, 1, 10, 10]}


@pytest.fixture(scope="module")
def fresh(service_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Photos no other test imports, scanned; their records are tampered with one field at a time."""
    root = tmp_path_factory.mktemp("fresh-import")
    (root / "fresh").mkdir()
    for photo in sorted(GARBAGE_IMAGES.glob("*.jpg"))[8:11]:
        shutil.copy(photo, root / "fresh" / photo.name)
    return {"root": root, "results": scan(root, "fresh", service_model)}


def tampered(fresh: dict[str, Path], target: Path, change: Callable[[dict], object]) -> Path:
    """The fresh results with `change` applied to the last record (given a valid problem to change)."""
    records = [json.loads(line) for line in fresh["results"].read_text(encoding="utf-8").splitlines()]
    records[-1]["problems"] = [dict(GOOD_PROBLEM)]
    change(records[-1])
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return target


def nothing_stored(server: Server, before: tuple[int, list[Path]]) -> bool:
    with server.admin as client:
        listed = client.get("/v1/inspections")
    assert listed.status_code == 200, "the ledger must stay readable"
    return (listed.json()["total"], sorted(p for p in server.data_dir.rglob("*") if p.is_file())) == before


def stored_now(server: Server) -> tuple[int, list[Path]]:
    with server.admin as client:
        total = client.get("/v1/inspections").json()["total"]
    return total, sorted(p for p in server.data_dir.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: r.update(warnings=[{"a": 1}]), "warnings must be a list of text"),
        (lambda r: r["problems"][0].update(box=[0, 0, float("inf"), 10]), "box x must be a number"),
        (lambda r: r["problems"][0].update(box=[0, 0, 1e300, 1e300]), "box x must be a number"),
        (lambda r: r["problems"][0].update(box=[0, 0, 10]), "a box must be [x1, y1, x2, y2]"),
        (lambda r: r["problems"][0].update(box=[9, 9, 1, 1]), "x1 <= x2"),
        (lambda r: r["problems"][0].update(type="alien_invasion"), "unknown problem type"),
        (lambda r: r["problems"][0].update(score=2.5), "score must be a number from 0 to 1"),
        (lambda r: r["problems"][0].update(score=float("nan")), "score must be a number"),
        (lambda r: r["problems"][0].update(position={"lat": 1000, "lon": -999}), "position lat"),
        (lambda r: r.update(model=None), "model must be the model's version"),
        (lambda r: r.update(width=10**30), "width must be a number"),
        (lambda r: r.update(gps="30.1,120.2"), "gps must be an object"),
        (lambda r: r.update(problems="none"), "problems must be a list"),
    ],
    ids=[
        "warnings-not-text",
        "box-infinite",
        "box-huge",
        "box-three-numbers",
        "box-inverted",
        "unknown-type",
        "score-over-1",
        "score-nan",
        "position-off-earth",
        "model-null",
        "width-huge",
        "gps-text",
        "problems-text",
    ],
)
def test_records_a_scan_never_writes_are_refused_and_leave_nothing(
    server: Server, fresh: dict[str, Path], tmp_path: Path, change: Callable[[dict], object], reason: str
) -> None:
    """One impossible value stored (an infinite box, warnings that are objects) made later reads answer 500."""
    results = tampered(fresh, tmp_path / "tampered.jsonl", change)
    before = stored_now(server)
    completed = import_scan(server, results, "--images-root", str(fresh["root"]), "--client-id", f"t-{tmp_path.name}")
    assert completed.returncode == 2, completed.stderr
    assert "tampered.jsonl:3: not a valid scan record" in completed.stderr and reason in completed.stderr
    assert "Traceback" not in completed.stderr
    assert nothing_stored(server, before)


def test_the_same_results_with_a_valid_problem_import(server: Server, fresh: dict[str, Path], tmp_path: Path) -> None:
    """The control for the refusals above: the untampered problem is stored as given."""
    results = tampered(fresh, tmp_path / "fine.jsonl", lambda r: None)
    completed = import_scan(server, results, "--images-root", str(fresh["root"]), "--client-id", "fine-1")
    assert completed.returncode == 0, completed.stderr
    with server.admin as client:
        found = client.get("/v1/findings", params={"inspection_id": json.loads(completed.stdout)["inspection_id"]})
    box = found.json()["items"][-1]["box"]
    assert [box[k] for k in ("x1", "y1", "x2", "y2")] == GOOD_PROBLEM["box"]


def test_a_wrong_images_root_is_refused_so_the_right_one_can_follow(
    server: Server, fresh: dict[str, Path], tmp_path: Path
) -> None:
    """Imported as all-unreadable, the file's idempotency key would refuse the corrected run as done."""
    before = stored_now(server)
    wrong = import_scan(server, fresh["results"], "--images-root", str(tmp_path))
    assert wrong.returncode == 2 and "none of the 3 photos was found" in wrong.stderr, wrong.stderr
    assert nothing_stored(server, before)


def test_a_file_that_is_not_the_photo_or_is_a_pipe_is_a_file_error(
    server: Server, fresh: dict[str, Path], tmp_path: Path
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(fresh["root"], root)
    records = [json.loads(line) for line in fresh["results"].read_text(encoding="utf-8").splitlines()]
    text = root / "fresh" / "notes.jpg"
    text.write_bytes(b"not a photo at all\n")
    os.mkfifo(root / "fresh" / "pipe.jpg")
    faked = {**records[0], "image": "fresh/notes.jpg", "sha256": hashlib.sha256(text.read_bytes()).hexdigest()}
    piped = {**records[0], "image": "fresh/pipe.jpg"}
    results = root / "faked.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in (*records, faked, piped)), encoding="utf-8")
    completed = import_scan(server, results, "--images-root", str(root), "--client-id", "faked-1")
    assert completed.returncode == 0, completed.stderr
    with server.admin as client:
        inspection = client.get(f"/v1/inspections/{json.loads(completed.stdout)['inspection_id']}").json()
    errors = {f["file"]: f["error"] for f in inspection["files"] if not f["ok"]}
    assert (
        errors["fresh/notes.jpg"]["code"] == "invalid_image" and "not an image" in errors["fresh/notes.jpg"]["message"]
    )
    assert errors["fresh/pipe.jpg"]["code"] == "unreadable" and "is not a file" in errors["fresh/pipe.jpg"]["message"]
    assert len(errors) == 2


def test_a_photo_named_in_bytes_that_are_not_utf8_is_found(server: Server, service_model: Path, tmp_path: Path) -> None:
    """scan writes such a name with \\xNN escapes; the import opens the file those bytes name."""
    folder = tmp_path / "gbk"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), "垃圾".encode("gbk") + b".jpg"), "wb") as handle:
        handle.write(sorted(GARBAGE_IMAGES.glob("*.jpg"))[12].read_bytes())
    results = scan(tmp_path, "gbk", service_model)
    assert json.loads(results.read_text(encoding="utf-8"))["image"] == "gbk/\\xc0\\xac\\xbb\\xf8.jpg"
    completed = import_scan(server, results, "--images-root", str(tmp_path))
    assert completed.returncode == 0, completed.stderr
    with server.admin as client:
        inspection = client.get(f"/v1/inspections/{json.loads(completed.stdout)['inspection_id']}").json()
    assert [(f["file"], f["ok"]) for f in inspection["files"]] == [("gbk/\\xc0\\xac\\xbb\\xf8.jpg", True)]


def test_the_same_photo_twice_in_one_file_is_refused(server: Server, fresh: dict[str, Path], tmp_path: Path) -> None:
    lines = fresh["results"].read_text(encoding="utf-8").splitlines()
    results = tmp_path / "twice.jsonl"
    results.write_text("\n".join([*lines, lines[0]]) + "\n", encoding="utf-8")
    before = stored_now(server)
    completed = import_scan(server, results, "--images-root", str(fresh["root"]), "--client-id", "twice-1")
    assert (
        completed.returncode == 2 and "twice.jsonl:4:" in completed.stderr and "already on line 1" in completed.stderr
    )
    assert nothing_stored(server, before)
