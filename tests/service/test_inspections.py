"""POST /v1/inspections end to end: scoring, storage by hash, idempotency, and every kind of bad file."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational
from service_helpers import Server, Upload, with_exif

from model.networks import fastest_runtime
from model.runtime import Detector
from model.taxonomy import PROBLEMS_BY_KEY, problem_for_label

MAX_UPLOAD = 1_500_000
MAX_REQUEST = 6_000_000
MAX_PIXELS = 30_000_000
LOW_CONF = "0.001"
"""Near-zero threshold: any detector raises some boxes here, which makes findings certain to exist."""


@pytest.fixture(scope="module")
def server(make_server: Callable[..., Server]) -> Server:
    return make_server(
        {
            "ENVWATCH_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
            "ENVWATCH_MAX_REQUEST_BYTES": str(MAX_REQUEST),
            "ENVWATCH_MAX_PIXELS": str(MAX_PIXELS),
            "ENVWATCH_MAX_FILES": "8",
        }
    )


def stored_files(server: Server) -> list[Path]:
    """Every file under the server's data dir, temporary ones included."""
    return sorted(p for p in server.data_dir.rglob("*") if p.is_file()) if server.data_dir.exists() else []


def inspection_total(server: Server) -> int:
    with server.admin as client:
        return client.get("/v1/inspections", params={"limit": 1}).json()["total"]


def test_upload_scores_each_photo_and_reports_consistent_findings(
    server: Server, inspector_key: str, fire_photos: list[Path], garbage_photos: list[Path], upload: Upload
) -> None:
    photos = fire_photos[:2] + garbage_photos[:2]
    with server.client(inspector_key) as client:
        version = client.get("/v1/model").json()["version"]
        response = upload(
            client,
            [(p.name, p.read_bytes()) for p in photos],
            conf=LOW_CONF,
            region="平江县",
            township="安定镇",
            village="三和村",
            inspector="王",
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["region"], body["township"], body["village"], body["created_by"]) == (
        "平江县",
        "安定镇",
        "三和村",
        "inspector-wang",
    )
    assert [f["file"] for f in body["files"]] == [p.name for p in photos]
    findings_by_id = {f["id"]: f for f in body["findings"]}
    assert findings_by_id, "at a near-zero threshold the detector must raise something on four photos"
    listed: list[int] = []
    for photo, result in zip(photos, body["files"], strict=True):
        assert result["ok"] and result["error"] is None
        with Image.open(photo) as image:
            assert (result["image"]["width"], result["image"]["height"]) == image.size
        assert result["image"]["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
        assert result["model_version"] == version
        assert result["detections"] >= len(result["findings"])
        for finding_id in result["findings"]:
            finding = findings_by_id[finding_id]
            assert finding["image_id"] == result["image"]["id"]
            box, width, height = finding["box"], result["image"]["width"], result["image"]["height"]
            assert 0 <= box["x1"] <= box["x2"] <= width + 0.5 and 0 <= box["y1"] <= box["y2"] <= height + 0.5
        listed += result["findings"]
    assert sorted(listed) == sorted(findings_by_id)
    for finding in body["findings"]:
        assert PROBLEMS_BY_KEY[finding["type"]].detectable
        assert problem_for_label(finding["label"]) == finding["type"]
        assert 0.001 <= finding["score"] <= 1
        assert finding["status"] == "candidate"
        assert finding["model_version"] == version
        assert finding["inspection_id"] == body["id"]
        assert finding["region"] == "平江县"
    with server.client(inspector_key) as client:
        again = client.get(f"/v1/inspections/{body['id']}")
        history = client.get(f"/v1/findings/{body['findings'][0]['id']}").json()["history"]
    assert again.status_code == 200 and again.json() == body
    assert [(h["from_status"], h["to_status"], h["actor"]) for h in history] == [(None, "candidate", "inspector-wang")]


def test_default_thresholds_are_the_models_shipped_ones(
    server: Server, inspector_key: str, fire_photos: list[Path], garbage_photos: list[Path], upload: Upload
) -> None:
    with server.client(inspector_key) as client:
        labels = {label["key"]: label for label in client.get("/v1/model").json()["labels"]}
        files = [(p.name, p.read_bytes()) for p in fire_photos[2:4] + garbage_photos[2:4]]
        response = upload(client, files)
        low = upload(client, files, conf=LOW_CONF)
    assert response.status_code == 201, response.text
    shipped = Detector.load(Path(server.env["ENVWATCH_MODEL_PATH"]))
    assert {key: label["threshold"] for key, label in labels.items()} == pytest.approx(shipped.thresholds)
    findings = response.json()["findings"]
    assert findings and all(f["score"] >= shipped.thresholds[f["label"]] - 1e-4 for f in findings)
    below = [f for f in low.json()["findings"] if f["score"] < shipped.thresholds[f["label"]] - 1e-4]
    assert below, "a low conf raises what the shipped thresholds hold back"
    tiles = {name: shipped.tile_thresholds.get(name) for name in shipped.names}
    assert {key: label["tile_threshold"] for key, label in labels.items()} == tiles


def test_a_server_left_to_choose_runs_the_fastest_runtime_and_finds_what_the_reference_does(
    make_server: Callable[..., Server], inspector_key: str, fire_photos: list[Path], upload: Upload
) -> None:
    """A server on the reference runtime and one started as shipped (`ENVWATCH_RUNTIME` unset): the second
    names the runtime it chose and, on real fire photos, raises every finding of the reference's scored 0.5
    or more again: same type, boxes overlapping by IoU 0.8 or more (tests/test_networks.py)."""
    reference, chosen = make_server({"ENVWATCH_RUNTIME": "onnxruntime"}), make_server({"ENVWATCH_RUNTIME": ""})
    files = [(p.name, p.read_bytes()) for p in fire_photos[:4]]
    answers = {}
    for name, running in (("reference", reference), ("chosen", chosen)):
        with running.client(inspector_key) as client:
            answers[name] = (client.get("/v1/model").json()["runtime"], upload(client, files).json())
    assert answers["reference"][0] == "onnxruntime" and answers["chosen"][0] == fastest_runtime()
    found = {name: findings_per_file(body) for name, (_, body) in answers.items()}
    strong = [(i, f) for i, per_file in enumerate(found["reference"]) for f in per_file if f["score"] >= 0.5]
    assert any(f["type"] == "burning" for _, f in strong), "the fire photos raise burning on the reference"
    for index, want in strong:
        same = [f for f in found["chosen"][index] if f["type"] == want["type"]]
        assert max((box_overlap(f["box"], want["box"]) for f in same), default=0) >= 0.8, want


def findings_per_file(body: dict) -> list[list[dict]]:
    by_id = {f["id"]: f for f in body["findings"]}
    return [[by_id[i] for i in result["findings"]] for result in body["files"]]


def box_overlap(a: dict[str, float], b: dict[str, float]) -> float:
    inter = max(0.0, min(a["x2"], b["x2"]) - max(a["x1"], b["x1"])) * max(
        0.0, min(a["y2"], b["y2"]) - max(a["y1"], b["y1"])
    )
    union = (a["x2"] - a["x1"]) * (a["y2"] - a["y1"]) + (b["x2"] - b["x1"]) * (b["y2"] - b["y1"]) - inter
    return inter / union


def test_same_photo_is_stored_once_and_scored_the_same(
    server: Server, inspector_key: str, garbage_photos: list[Path], upload: Upload
) -> None:
    photo = garbage_photos[4]
    data = photo.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    with server.client(inspector_key) as client:
        first = upload(client, [(photo.name, data)], conf=LOW_CONF).json()
        second = upload(client, [("renamed.jpg", data)], conf=LOW_CONF).json()
    assert first["id"] != second["id"]
    assert first["files"][0]["image"]["id"] == second["files"][0]["image"]["id"]
    assert [p for p in stored_files(server) if p.name == sha] == [server.data_dir / sha[:2] / sha[2:4] / sha]
    assert (server.data_dir / sha[:2] / sha[2:4] / sha).read_bytes() == data

    def essence(body: dict) -> list[tuple]:
        return [(f["type"], f["label"], f["score"], tuple(f["box"].values())) for f in body["findings"]]

    assert essence(first) and essence(first) == essence(second)


def test_client_id_replays_the_first_inspection_without_new_work(
    server: Server, inspector_key: str, fire_photos: list[Path], garbage_photos: list[Path], upload: Upload
) -> None:
    before = inspection_total(server)
    with server.client(inspector_key) as client:
        first = upload(
            client, [(fire_photos[4].name, fire_photos[4].read_bytes())], conf=LOW_CONF, client_id="app-7f3e-0001"
        )
        files_after_first = stored_files(server)
        replay = upload(
            client, [(garbage_photos[5].name, garbage_photos[5].read_bytes())], conf=LOW_CONF, client_id="app-7f3e-0001"
        )
        findings = client.get("/v1/findings", params={"inspection_id": first.json()["id"]}).json()
    assert first.status_code == 201 and replay.status_code == 200
    assert replay.json() == first.json()
    assert inspection_total(server) == before + 1
    assert stored_files(server) == files_after_first
    assert findings["total"] == len(first.json()["findings"])


def test_bad_files_are_named_with_a_reason_and_the_good_ones_processed(
    server: Server,
    inspector_key: str,
    fire_photos: list[Path],
    bad_files: dict[str, bytes],
    noise_jpeg: Callable[[int, int], bytes],
    upload: Upload,
) -> None:
    oversized = noise_jpeg(1400, 1400)
    assert len(oversized) > MAX_UPLOAD
    good = fire_photos[5]
    files = [(good.name, good.read_bytes()), *bad_files.items(), ("huge.jpg", oversized)]
    with server.client(inspector_key) as client:
        response = upload(client, files, conf=LOW_CONF)
    assert response.status_code == 201, response.text
    results = {r["file"]: r for r in response.json()["files"]}
    assert results[good.name]["ok"] and results[good.name]["image"] is not None
    expected = {
        "empty.jpg": "empty",
        "truncated.jpg": "invalid_image",
        "notes.jpg": "invalid_image",
        "bomb.png": "invalid_image",
        "huge.jpg": "too_large",
    }
    for name, code in expected.items():
        result = results[name]
        assert not result["ok"] and result["image"] is None and result["findings"] == []
        assert result["error"]["file"] == name
        assert result["error"]["code"] == code
        assert result["error"]["message"]
    assert "pixels" in results["bomb.png"]["error"]["message"]
    assert "truncated" in results["truncated.jpg"]["error"]["message"]
    assert "not an image" in results["notes.jpg"]["error"]["message"]
    image_ids = {f["image_id"] for f in response.json()["findings"]}
    assert image_ids <= {results[good.name]["image"]["id"]}


def test_all_bad_files_is_422_naming_each_and_writes_nothing(
    server: Server, inspector_key: str, bad_files: dict[str, bytes], upload: Upload
) -> None:
    before_files, before_total = stored_files(server), inspection_total(server)
    with server.client(inspector_key) as client:
        response = upload(client, list(bad_files.items()), client_id="all-bad-1")
        retry = upload(client, list(bad_files.items()), client_id="all-bad-1")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "no_valid_images"
    assert [f["file"] for f in error["files"]] == list(bad_files)
    assert all(f["message"] and f["code"] for f in error["files"])
    for name in bad_files:
        assert name in error["message"]
    assert retry.status_code == 422, "a rejected upload must not reserve its client_id"
    assert stored_files(server) == before_files
    assert inspection_total(server) == before_total


def test_request_over_the_body_limit_is_413(
    server: Server, inspector_key: str, noise_jpeg: Callable[[int, int], bytes], upload: Upload
) -> None:
    big = noise_jpeg(1200, 1200)
    count = MAX_REQUEST // len(big) + 1
    with server.client(inspector_key) as client:
        response = upload(client, [(f"n{i}.jpg", big) for i in range(count)])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def chunked_form(files: list[tuple[str, bytes]], boundary: str) -> Iterator[bytes]:
    """A multipart body sent piece by piece: httpx gives it no Content-Length, only chunked encoding."""
    for name, data in files:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        yield data
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def test_chunked_request_is_counted_against_the_body_limit(
    server: Server, inspector_key: str, noise_jpeg: Callable[[int, int], bytes], fire_photos: list[Path]
) -> None:
    """A body without Content-Length is counted as it arrives; under the limit it is scored as usual."""
    big = noise_jpeg(1200, 1200)
    boundary = "envwatch-test-boundary"
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    over = [(f"n{i}.jpg", big) for i in range(MAX_REQUEST // len(big) + 1)]
    before_total, before_files = inspection_total(server), stored_files(server)
    with server.client(inspector_key) as client:
        refused = client.post("/v1/inspections", content=chunked_form(over, boundary), headers=headers)
        assert (inspection_total(server), stored_files(server)) == (before_total, before_files)
        small = [(fire_photos[0].name, fire_photos[0].read_bytes())]
        accepted = client.post("/v1/inspections", content=chunked_form(small, boundary), headers=headers)
    assert refused.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in refused.request.headers
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"]["code"] == "request_too_large"
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["files"][0]["file"] == fire_photos[0].name


def test_control_characters_in_a_file_name_are_replaced_not_refused(
    server: Server, inspector_key: str, fire_photos: list[Path]
) -> None:
    """A raw NUL in a multipart file name (PostgreSQL text refuses NUL) must not lose the upload."""
    boundary = "envwatch-test-boundary"
    files = [("a\x00b\nc.jpg", fire_photos[1].read_bytes()), (fire_photos[2].name, fire_photos[2].read_bytes())]
    body = b"".join(chunked_form(files, boundary))
    assert b"a\x00b\nc.jpg" in body
    with server.client(inspector_key) as client:
        response = client.post(
            "/v1/inspections", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
        )
    assert response.status_code == 201, response.text
    assert [(f["file"], f["ok"]) for f in response.json()["files"]] == [
        ("a\ufffdb\ufffdc.jpg", True),
        (fire_photos[2].name, True),
    ]


def test_heic_upload_is_scored_and_shown(server: Server, inspector_key: str, fire_photos: list[Path]) -> None:
    """iPhones save HEIC; it is scored like a JPEG, and the page's fallback (annotated.jpg) shows it."""
    pillow_heif.register_heif_opener()  # for this test's own encoding; the server registers it itself
    buffer = io.BytesIO()
    Image.open(fire_photos[3]).convert("RGB").save(buffer, "HEIF", quality=90)
    with server.client(inspector_key) as client:
        response = client.post(
            "/v1/inspections",
            files=[("files", ("IMG_0042.HEIC", buffer.getvalue(), "image/heic"))],
            data={"conf": LOW_CONF},
        )
        assert response.status_code == 201, response.text
        (result,) = response.json()["files"]
        annotated = client.get(f"/v1/images/{result['image']['id']}/annotated.jpg")
    assert result["ok"] and (result["image"]["width"], result["image"]["height"]) == Image.open(fire_photos[3]).size
    assert result["findings"], "a near-zero threshold raises findings on a fire photo"
    assert annotated.status_code == 200 and annotated.content[:3] == b"\xff\xd8\xff"


def test_more_files_than_allowed_is_413(
    server: Server, inspector_key: str, fire_photos: list[Path], upload: Upload
) -> None:
    data = fire_photos[0].read_bytes()
    before = inspection_total(server)
    with server.client(inspector_key) as client:
        response = upload(client, [(f"p{i}.jpg", data) for i in range(9)])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_files"
    assert inspection_total(server) == before


def test_exif_gps_and_capture_time_are_kept_on_image_and_findings(
    server: Server, inspector_key: str, garbage_photos: list[Path], upload: Upload
) -> None:
    data = with_exif(garbage_photos[3], lat=28.7012, lon=113.5794, alt=96.5, taken="2024:05:01 10:30:00")
    with server.client(inspector_key) as client:
        response = upload(client, [("gps.jpg", data)], conf=LOW_CONF)
    assert response.status_code == 201, response.text
    body = response.json()
    image = body["files"][0]["image"]
    assert image["gps"]["lat"] == pytest.approx(28.7012, abs=1e-4)
    assert image["gps"]["lon"] == pytest.approx(113.5794, abs=1e-4)
    assert image["gps"]["alt"] == pytest.approx(96.5, abs=0.01)
    assert image["captured_at"] == "2024-05-01T02:30:00Z", "EXIF local time (Asia/Shanghai) stored as UTC"
    assert body["findings"]
    for finding in body["findings"]:
        assert finding["gps"] == {**image["gps"], "source": "photo", "accuracy_m": None}
        assert finding["captured_at"] == finding["observed_at"] == image["captured_at"]


def test_broken_exif_gps_is_a_warning_not_a_rejection(
    server: Server, inspector_key: str, garbage_photos: list[Path], upload: Upload
) -> None:
    image = Image.open(garbage_photos[2]).convert("RGB")
    exif = Image.Exif()
    zero = IFDRational(0, 1)
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (IFDRational(95, 1), zero, zero), 3: "E", 4: (IFDRational(200, 1), zero, zero)})
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    with server.client(inspector_key) as client:
        response = upload(client, [("bad-gps.jpg", buffer.getvalue())])
    assert response.status_code == 201, response.text
    result = response.json()["files"][0]
    assert result["ok"] and result["image"]["gps"] is None
    assert any("GPS" in w for w in result["warnings"])


@pytest.mark.parametrize(
    ("form", "files"),
    [({}, None), ({"conf": "5"}, "one"), ({"conf": "not-a-number"}, "one")],
    ids=["no-files", "conf-out-of-range", "conf-not-a-number"],
)
def test_invalid_requests_get_the_error_schema(
    server: Server, inspector_key: str, fire_photos: list[Path], form: dict, files: str | None
) -> None:
    parts = [("files", (fire_photos[0].name, fire_photos[0].read_bytes(), "image/jpeg"))] if files else None
    with server.client(inspector_key) as client:
        response = client.post("/v1/inspections", data=form or {"region": "x"}, files=parts)
    assert response.status_code == 422
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["code"] == "invalid_request"


def test_text_with_a_nul_character_is_refused_everywhere_and_stores_nothing(
    server: Server, fire_photos: list[Path]
) -> None:
    """PostgreSQL cannot store NUL in text (SQLite can): both backends refuse it with the same 422."""
    photo = [("files", (fire_photos[0].name, fire_photos[0].read_bytes(), "image/jpeg"))]
    with server.admin as client:
        before = client.get("/v1/inspections").json()["total"]
        answers = [
            client.post("/v1/inspections", data={"region": "平江\x00县"}, files=photo),
            client.post("/v1/inspections", data={"client_id": "a\x00"}, files=photo),
            client.get("/v1/findings", params={"region": "\x00"}),
            client.get("/v1/findings/summary.csv", params={"region": "\x00"}),
            client.post("/v1/keys", json={"name": "bad\x00name", "role": "inspector"}),
            client.post("/v1/labels", json={"image_id": 1, "type": "burning", "note": "\x00"}),
        ]
        after = client.get("/v1/inspections").json()["total"]
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert "NUL" in answer.json()["error"]["message"], answer.json()
    assert after == before


def test_unknown_inspection_is_404(server: Server, integration_key: str) -> None:
    with server.client(integration_key) as client:
        response = client.get("/v1/inspections/999999")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
