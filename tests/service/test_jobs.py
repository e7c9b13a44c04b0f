"""Batch jobs: zip and folder sources, progress, cancel, resume after a crash, hostile zips refused."""

from __future__ import annotations

import io
import os
import signal
import stat
import time
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import pytest
from PIL import Image
from service_helpers import Server, Upload, at_once


@pytest.fixture(scope="module")
def jobs_root(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh jobs root per database backend (depending on `database_url` makes it follow that parameter)."""
    return tmp_path_factory.mktemp("jobs-root")


@pytest.fixture(scope="module")
def server(make_server: Callable[..., Server], jobs_root: Path) -> Server:
    return make_server({"ENVWATCH_JOBS_ROOT": str(jobs_root), "ENVWATCH_MAX_ZIP_RATIO": "50"})


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def big_jpegs(photos: list[Path], count: int) -> list[bytes]:
    """`count` distinct 2400x1600 JPEGs: slow enough to score that a job is observably in progress."""
    out = []
    for i in range(count):
        image = Image.open(photos[i % len(photos)]).convert("RGB").resize((2400, 1600))
        image.putpixel((i, 0), (i % 256, 7, 7))  # distinct bytes, so each is its own image
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def wait_job(client: httpx.Client, job_id: int, until: Callable[[dict], bool], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not get there in {timeout} s: {job}")


def test_zip_job_scores_every_image_and_reports_bad_ones(
    server: Server, inspector_key: str, fire_photos: list[Path], garbage_photos: list[Path]
) -> None:
    entries = {f"village/{p.name}": p.read_bytes() for p in fire_photos[:2] + garbage_photos[:2]}
    entries["village/broken.jpg"] = b"not a photo"
    entries["readme.txt"] = b"ignored: not an image suffix"
    with server.client(inspector_key) as client:
        created = client.post(
            "/v1/jobs/zip",
            files={"archive": ("batch.zip", zip_of(entries), "application/zip")},
            data={"region": "临湘市", "conf": "0.001"},
        )
        assert created.status_code == 201, created.text
        job = wait_job(client, created.json()["id"], lambda j: j["status"] == "done")
        inspection = client.get(f"/v1/inspections/{job['inspection_id']}").json()
    assert (job["total"], job["processed"], job["failed"]) == (5, 5, 1)
    assert job["started_at"] and job["finished_at"] and job["created_by"] == "inspector-wang"
    results = {r["file"]: r for r in inspection["files"]}
    assert set(results) == {name for name in entries if name.endswith(".jpg")}
    assert not results["village/broken.jpg"]["ok"]
    assert "not an image" in results["village/broken.jpg"]["error"]["message"]
    assert all(r["ok"] for name, r in results.items() if name != "village/broken.jpg")
    assert inspection["region"] == "临湘市" and inspection["findings"]
    assert all(f["status"] == "candidate" for f in inspection["findings"])
    jobs_dir = server.data_dir.parent / "jobs"
    deadline = time.monotonic() + 10
    while any(jobs_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(jobs_dir.iterdir()), "extracted files of a finished zip job are removed"


def test_a_job_scores_each_photo_as_an_upload_of_it_alone_does(
    server: Server, inspector_key: str, fire_photos: list[Path], garbage_photos: list[Path], upload: Upload
) -> None:
    """Nine photos: batches of four detected together, the next while the last is recorded; each photo's
    findings are still its own, in its own place, as one upload of that photo alone finds them."""
    photos = [*fire_photos[:5], *garbage_photos[:4]]
    entries = {f"{i:02d}-{p.name}": p.read_bytes() for i, p in enumerate(photos)}
    with server.client(inspector_key) as client:
        created = client.post("/v1/jobs/zip", files={"archive": ("nine.zip", zip_of(entries), "application/zip")})
        assert created.status_code == 201, created.text
        job = wait_job(client, created.json()["id"], lambda j: j["status"] == "done")
        inspection = client.get(f"/v1/inspections/{job['inspection_id']}").json()
        alone = [upload(client, [(name, data)]).json() for name, data in entries.items()]
    assert (job["processed"], job["failed"]) == (9, 0)
    assert [r["file"] for r in inspection["files"]] == list(entries)
    by_id = {f["id"]: f for f in inspection["findings"]}
    assert by_id, "nine fire and garbage photos raise something"
    for result, single in zip(inspection["files"], alone, strict=True):
        found = [(by_id[i]["type"], by_id[i]["score"], by_id[i]["box"]) for i in result["findings"]]
        want = [(f["type"], f["score"], f["box"]) for f in single["findings"]]
        assert [(t, round(s, 3)) for t, s, _ in found] == [(t, round(s, 3)) for t, s, _ in want], result["file"]
        for (_, _, got), (_, _, expected) in zip(found, want, strict=True):
            assert all(abs(got[k] - expected[k]) < 1.0 for k in ("x1", "y1", "x2", "y2"))


def tampered_zip(name: str, *, flags: int = 0, method: int | None = None, raw_name: bytes | None = None) -> bytes:
    """A one-entry zip with its header fields rewritten in both the local and the central header."""
    data = bytearray(zip_of({name: b"\xff\xd8 hardly a photo " * 40}))
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + flags_at
        data[at : at + 2] = (int.from_bytes(data[at : at + 2], "little") | flags).to_bytes(2, "little")
        if method is not None:
            data[at + 2 : at + 4] = method.to_bytes(2, "little")
    if raw_name is not None:
        assert len(raw_name) == len(name.encode())
        data = bytearray(bytes(data).replace(name.encode(), raw_name))
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (zip_of({"../../escaped.jpg": b"x"}), "unsafe_archive"),
        (zip_of({"/etc/cron.d/evil.jpg": b"x"}), "unsafe_archive"),
        (zip_of({"ok/..\\..\\win.jpg": b"x"}), "unsafe_archive"),
        (zip_of({"bomb.jpg": b"\0" * 30_000_000}), "unsafe_archive"),
        # each entry under the 1 MB that the per-entry ratio ignores; together 30 MB from 30 kB
        (zip_of({f"z{i}.jpg": b"\0" * 999_999 for i in range(30)}), "unsafe_archive"),
        (b"PK\x03\x04 this is not really a zip", "invalid_archive"),
        (tampered_zip("secret.jpg", flags=0x1), "invalid_archive"),
        (tampered_zip("aes.jpg", method=99), "invalid_archive"),
        (tampered_zip("bad-X.jpg", flags=0x800, raw_name=b"bad-\xff.jpg"), "invalid_archive"),
        (zip_of({"readme.txt": b"no photos here"}), "no_images"),
    ],
    ids=[
        "dotdot",
        "absolute",
        "backslash-dotdot",
        "zip-bomb",
        "many-small-bombs",
        "not-a-zip",
        "encrypted",
        "unknown-method",
        "bad-utf8-name",
        "no-images",
    ],
)
def test_hostile_or_broken_zips_are_refused_and_leave_nothing(
    server: Server, inspector_key: str, data: bytes, code: str
) -> None:
    jobs_dir = server.data_dir.parent / "jobs"
    before = sorted(jobs_dir.rglob("*")) if jobs_dir.exists() else []
    with server.client(inspector_key) as client:
        response = client.post("/v1/jobs/zip", files={"archive": ("x.zip", data, "application/zip")})
        listed = client.get("/v1/jobs").json()
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert (sorted(jobs_dir.rglob("*")) if jobs_dir.exists() else []) == before
    assert not (server.root / "escaped.jpg").exists()
    assert all(j["source"] != "x.zip" for j in listed)


def test_zip_links_are_refused(server: Server, inspector_key: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("link.jpg")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    with server.client(inspector_key) as client:
        response = client.post("/v1/jobs/zip", files={"archive": ("l.zip", buffer.getvalue(), "application/zip")})
    assert response.status_code == 422 and "link" in response.json()["error"]["message"]


def test_folder_jobs_are_admin_only_and_confined_to_the_jobs_root(
    server: Server, inspector_key: str, jobs_root: Path, garbage_photos: list[Path], tmp_path: Path
) -> None:
    folder = jobs_root / "2024-06" / "乡镇A"
    folder.mkdir(parents=True)
    for photo in garbage_photos[:3]:
        (folder / photo.name).write_bytes(photo.read_bytes())
    (tmp_path / "outside.jpg").write_bytes(garbage_photos[0].read_bytes())
    with server.client(inspector_key) as inspector:
        assert inspector.post("/v1/jobs", json={"folder": "2024-06"}).status_code == 403
    with server.admin as admin:
        outside = admin.post("/v1/jobs", json={"folder": str(tmp_path)})
        escape = admin.post("/v1/jobs", json={"folder": "../"})
        created = admin.post("/v1/jobs", json={"folder": "2024-06", "region": "A"})
        assert created.status_code == 201, created.text
        job = wait_job(admin, created.json()["id"], lambda j: j["status"] == "done")
        inspection = admin.get(f"/v1/inspections/{job['inspection_id']}").json()
    assert outside.status_code == escape.status_code == 422
    assert outside.json()["error"]["code"] == "outside_jobs_root"
    assert (job["kind"], job["total"], job["processed"], job["failed"]) == ("folder", 3, 3, 0)
    assert job["source"] == "2024-06", "readers see the folder within the jobs root, not the server's layout"
    assert sorted(r["file"] for r in inspection["files"]) == sorted(f"乡镇A/{p.name}" for p in garbage_photos[:3])


def test_folder_job_scores_files_whose_names_are_not_utf8(
    server: Server, jobs_root: Path, garbage_photos: list[Path]
) -> None:
    """A GBK name copied from Windows (垃圾 is b"\\xc0\\xac\\xbb\\xf8") is scored, and shown with escapes."""
    folder = jobs_root / "gbk"
    folder.mkdir()
    gbk = os.path.join(os.fsencode(folder), "垃圾".encode("gbk") + b".jpg")
    with open(gbk, "wb") as handle:
        handle.write(garbage_photos[0].read_bytes())
    (folder / "plain.jpg").write_bytes(garbage_photos[1].read_bytes())
    with server.admin as admin:
        created = admin.post("/v1/jobs", json={"folder": "gbk"})
        assert created.status_code == 201, created.text
        job = wait_job(admin, created.json()["id"], lambda j: j["status"] == "done")
        inspection = admin.get(f"/v1/inspections/{job['inspection_id']}").json()
    assert (job["total"], job["processed"], job["failed"]) == (2, 2, 0)
    assert sorted(r["file"] for r in inspection["files"]) == ["\\xc0\\xac\\xbb\\xf8.jpg", "plain.jpg"]
    assert all(r["ok"] for r in inspection["files"])


def test_folder_name_too_long_for_the_file_system_is_422(server: Server) -> None:
    with server.admin as admin:
        response = admin.post("/v1/jobs", json={"folder": "x" * 300})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "not_a_folder"


def settled(client: httpx.Client, job_id: int, quiet_s: float = 5.0, limit_s: float = 120.0) -> dict:
    """The job once its `processed` count has not moved for `quiet_s`: a job still working would have moved it."""
    job, since, deadline = client.get(f"/v1/jobs/{job_id}").json(), time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, f"job {job_id} kept processing: {job}"
        time.sleep(0.25)
        now = client.get(f"/v1/jobs/{job_id}").json()
        if now["processed"] != job["processed"]:
            job, since = now, time.monotonic()
    return job


def test_cancel_stops_before_the_next_file(server: Server, inspector_key: str, fire_photos: list[Path]) -> None:
    entries = {f"p{i}.jpg": data for i, data in enumerate(big_jpegs(fire_photos, 12))}
    with server.client(inspector_key) as client:
        job_id = client.post("/v1/jobs/zip", files={"archive": ("c.zip", zip_of(entries), "application/zip")}).json()[
            "id"
        ]
        cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
        later = settled(client, job_id)
        again = client.post(f"/v1/jobs/{job_id}/cancel")
        missing = client.post("/v1/jobs/999999/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert later["status"] == "cancelled"
    assert later["processed"] <= cancelled.json()["processed"] + 1 < 12
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
    assert missing.status_code == 404


def test_only_the_starter_or_an_admin_may_cancel_a_job(
    server: Server, inspector_key: str, fire_photos: list[Path]
) -> None:
    entries = {f"q{i}.jpg": data for i, data in enumerate(big_jpegs(fire_photos, 6))}
    with server.admin as admin:
        colleague = admin.post("/v1/keys", json={"name": "inspector-li", "role": "inspector"}).json()["key"]
    with server.client(inspector_key) as client:
        job_id = client.post("/v1/jobs/zip", files={"archive": ("q.zip", zip_of(entries), "application/zip")}).json()[
            "id"
        ]
    with server.client(colleague) as other:
        refused = other.post(f"/v1/jobs/{job_id}/cancel")
    with server.admin as admin:
        cancelled = admin.post(f"/v1/jobs/{job_id}/cancel")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden", refused.text
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_job_resumes_after_a_crash_and_scores_nothing_twice(
    make_server: Callable[..., Server], server: Server, inspector_key: str, fire_photos: list[Path]
) -> None:
    server.stop()  # one process at a time on this data: the module server steps aside
    crashing = make_server(
        {"ENVWATCH_JOBS_ROOT": server.env["ENVWATCH_JOBS_ROOT"]},
    )
    entries = {f"r{i}.jpg": data for i, data in enumerate(big_jpegs(fire_photos[1:], 10))}
    with crashing.client(inspector_key) as client:
        job_id = client.post("/v1/jobs/zip", files={"archive": ("r.zip", zip_of(entries), "application/zip")}).json()[
            "id"
        ]
        partial = wait_job(client, job_id, lambda j: j["processed"] >= 2)
    assert partial["processed"] < 10, "the job must still be running when the server dies"
    assert crashing.process is not None
    os.kill(crashing.process.pid, signal.SIGKILL)
    crashing.process.wait()
    jobs_dir = crashing.data_dir.parent / "jobs"
    (active_folder,) = list(jobs_dir.iterdir())
    hour_ago = time.time() - 3700
    for name in ("killed-mid-extraction.part", "never-became-a-job", "upload-in-progress.part"):
        (jobs_dir / name).mkdir()
        (jobs_dir / name / "000000.jpg").write_bytes(b"x")
        if name != "upload-in-progress.part":
            os.utime(jobs_dir / name, (hour_ago, hour_ago))
    os.utime(active_folder, (hour_ago, hour_ago))
    restarted = make_server(
        {"ENVWATCH_DATA_DIR": str(crashing.data_dir), "ENVWATCH_JOBS_ROOT": server.env["ENVWATCH_JOBS_ROOT"]}
    )
    with restarted.client(inspector_key) as client:
        job = wait_job(client, job_id, lambda j: j["status"] == "done")
        inspection = client.get(f"/v1/inspections/{job['inspection_id']}").json()
    assert (job["total"], job["processed"], job["failed"]) == (10, 10, 0)
    deadline = time.monotonic() + 10  # the done job's folder goes at the runner's next step
    while len(list(jobs_dir.iterdir())) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(p.name for p in jobs_dir.iterdir()) == ["upload-in-progress.part"], (
        "an hour-old folder no job reads is removed at start; a young one may be another server's upload"
    )
    names = [r["file"] for r in inspection["files"]]
    assert sorted(names) == sorted(entries), "each file recorded exactly once"
    image_ids = [r["image"]["id"] for r in inspection["files"]]
    assert len(set(image_ids)) == 10
    per_image = {i: [f for f in inspection["findings"] if f["image_id"] == i] for i in image_ids}
    for result in inspection["files"]:
        assert sorted(result["findings"]) == sorted(f["id"] for f in per_image[result["image"]["id"]])
    restarted.stop()
    server.start()


def test_a_key_may_have_only_so_many_jobs_queued_even_when_it_sends_them_at_once(
    make_server: Callable[..., Server], fire_photos: list[Path]
) -> None:
    """Four zips at once from a key allowed two: two are queued, two get 429 with Retry-After and leave
    nothing extracted; another key is not held back, and a finished (cancelled) job makes room."""
    server = make_server({"ENVWATCH_MAX_ACTIVE_JOBS": "2", "ENVWATCH_RETRY_AFTER_S": "9"})
    busy, other = server.new_key("inspector", "busy-inspector"), server.new_key("inspector", "other-inspector")
    archive = zip_of({f"p{i}.jpg": data for i, data in enumerate(big_jpegs(fire_photos, 8))})
    files = {"archive": ("many.zip", archive, "application/zip")}
    clients = [server.client(busy) for _ in range(4)]
    try:
        answers = at_once(*(partial(client.post, "/v1/jobs/zip", files=files) for client in clients))
    finally:
        for client in clients:
            client.close()
    assert sorted(a.status_code for a in answers) == [201, 201, 429, 429], [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.json()["error"]["code"] == "too_many_jobs" and refused.headers["Retry-After"] == "9"
    extracted = [p for p in (server.data_dir.parent / "jobs").iterdir() if p.is_dir()]
    assert len(extracted) == 2, "refused zips leave no extracted files"
    with server.client(other) as client:
        assert client.post("/v1/jobs/zip", files=files).status_code == 201
    with server.client(busy) as client:
        assert client.post("/v1/jobs/zip", files=files).status_code == 429
        first = next(a for a in answers if a.status_code == 201).json()["id"]
        assert client.post(f"/v1/jobs/{first}/cancel").status_code == 200
        assert client.post("/v1/jobs/zip", files=files).status_code == 201
