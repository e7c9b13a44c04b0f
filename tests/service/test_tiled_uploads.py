"""Tiled detection through the service: a drone-sized photo with a small real fire in it.

The scene (tests/drone_scenes.py) is a 2496 x 1872 mosaic of real street photos with a real fire
photo pasted 240 px wide, written as a DJI frame (its XMP says it flew). Resized to the model's
input the fire is a few dozen pixels and is missed; tiled, it is found, on an upload and in a zip
job, in the photo's own pixels. `tile=auto`, the default, tiles the drone frame and not the same
pixels written as a phone would. Uses the shipped model, like tests/test_tiling.py (the tiny test
model finds nothing at this scale).
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable

import cv2
import httpx
import numpy as np
import pytest
from drone_scenes import background, drone_jpeg, paste, surest_fire
from service_helpers import Server

from model.registry import promoted_model
from model.runtime import Detector
from model.tiling import plan_tiles

WIDTH, HEIGHT = 2496, 1872


@pytest.fixture(scope="module")
def server(make_server: Callable[..., Server]) -> Server:
    return make_server({"ENVWATCH_MODEL_PATH": str(promoted_model())})


@pytest.fixture(scope="module")
def scene() -> tuple[bytes, tuple[float, float, float, float]]:
    """The scene as a drone frame's JPEG bytes, and the pasted fire's box."""
    image = background(WIDTH, HEIGHT)
    x, y = plan_tiles(WIDTH, HEIGHT, (416, 416))[10][:2] + 100  # inside one tile, clear of the seams
    box = paste(image, surest_fire(Detector.load(promoted_model())), 240, int(x), int(y))
    flight = {"RelativeAltitude": "+60.00", "GimbalPitchDegree": "-90.0", "FlightYawDegree": "+0.0"}
    return drone_jpeg(image, 30.5, 114.3, flight), box


def as_phone_photo(photo: bytes) -> bytes:
    """The same pixels as a plain JPEG, with no drone metadata."""
    ok, encoded = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR))
    assert ok
    return encoded.tobytes()


def burning_on(findings: list[dict], box: tuple[float, ...], label: str | None = None) -> list[dict]:
    """Burning findings whose box lies on the pasted fire (raised by `label` boxes, when given)."""

    def overlaps(b: dict) -> bool:
        return b["x1"] < box[2] and b["x2"] > box[0] and b["y1"] < box[3] and b["y2"] > box[1]

    return [f for f in findings if f["type"] == "burning" and overlaps(f["box"]) and label in (None, f["label"])]


def findings_of(client: httpx.Client, inspection_id: int) -> list[dict]:
    response = client.get("/v1/findings", params={"inspection_id": inspection_id, "limit": 500})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_upload_tiles_a_drone_frame_by_default_but_not_a_ground_photo_or_with_tile_off(
    server: Server, scene: tuple
) -> None:
    photo, box = scene
    with server.admin as client:
        tiled = client.post("/v1/inspections", files=[("files", ("drone.jpg", photo, "image/jpeg"))])
        phone = client.post("/v1/inspections", files=[("files", ("phone.jpg", as_phone_photo(photo), "image/jpeg"))])
        off = client.post(
            "/v1/inspections", files=[("files", ("drone.jpg", photo, "image/jpeg"))], data={"tile": "off"}
        )
        assert {r.status_code for r in (tiled, phone, off)} == {201}, (tiled.text, phone.text, off.text)
        assert burning_on(findings_of(client, phone.json()["id"]), box) == []
        assert burning_on(findings_of(client, off.json()["id"]), box) == []
        found = burning_on(findings_of(client, tiled.json()["id"]), box, "fire")  # its smoke may be raised too
        assert len(found) == 1, found
        x1, y1, x2, y2 = found[0]["box"].values()  # in the photo's own pixels, inside the pasted fire (+ a few px)
        assert box[0] - 4 <= x1 < x2 <= box[2] + 4 and box[1] - 4 <= y1 < y2 <= box[3] + 4
        refused = client.post(
            "/v1/inspections", files=[("files", ("drone.jpg", photo, "image/jpeg"))], data={"tile": "sometimes"}
        )
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_request"


def test_zip_job_keeps_its_tiling_mode(server: Server, scene: tuple) -> None:
    photo, box = scene
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("flight-7/DJI_0001.JPG", photo)
    with server.admin as client:
        created = client.post(
            "/v1/jobs/zip", files={"archive": ("flight.zip", buffer.getvalue(), "application/zip")}, data={"tile": "on"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["tile"] == "on"
        deadline = time.monotonic() + 120
        while (job := client.get(f"/v1/jobs/{created.json()['id']}").json())["status"] != "done":
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert len(burning_on(findings_of(client, job["inspection_id"]), box, "fire")) == 1


def test_a_phone_sized_upload_is_detected_on_reduced_pixels_and_its_findings_sit_in_the_files_own(
    server: Server,
) -> None:
    """A real fire photo enlarged to a 4000 px wide phone JPEG: the service decodes a quarter of each side
    for the detector (model/tiling.py's `decode_size`), and the burning finding is the one detecting
    the fully decoded photo gives, in the file's pixels (left in the reduced ones, it would cover a
    quarter of the fire's width and miss its place)."""
    from model.images import load_image

    detector = Detector.load(promoted_model())
    pixels = cv2.imread(str(surest_fire(detector)))
    big = cv2.resize(pixels, (4000, round(4000 * pixels.shape[0] / pixels.shape[1])), interpolation=cv2.INTER_CUBIC)
    photo = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    full = detector.detect([load_image(photo).pixels])[0].with_min_scores(detector.thresholds)
    (expected,) = [p for p in detector.problems(full) if p.type == "burning" and p.label == "fire"][:1]
    with server.admin as client:
        created = client.post("/v1/inspections", files=[("files", ("phone.jpg", photo, "image/jpeg"))])
        assert created.status_code == 201, created.text
        found = burning_on(findings_of(client, created.json()["id"]), expected.box, "fire")
    assert found, "the fire's finding is missing or not where the full photo has it"
    best = max(found, key=lambda f: f["score"])
    x1, y1, x2, y2 = best["box"].values()
    inter = max(0.0, min(x2, expected.box[2]) - max(x1, expected.box[0])) * max(
        0.0, min(y2, expected.box[3]) - max(y1, expected.box[1])
    )
    union = (x2 - x1) * (y2 - y1) + (expected.box[2] - expected.box[0]) * (expected.box[3] - expected.box[1]) - inter
    assert inter / union > 0.9 and abs(best["score"] - expected.score) < 0.05
