"""Back-pressure: more concurrent uploads than workers + queue are refused with 503, not queued without bound."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import Server, Upload

CLIENTS = 8


@pytest.fixture(scope="module")
def server(make_server: Callable[..., Server]) -> Server:
    """One worker and one queue slot: the third concurrent detection must be refused."""
    return make_server({"ENVWATCH_DETECT_WORKERS": "1", "ENVWATCH_DETECT_QUEUE": "1", "ENVWATCH_RETRY_AFTER_S": "7"})


@pytest.fixture(scope="module")
def heavy_upload(fire_photos: list[Path]) -> list[tuple[str, bytes]]:
    """Six 3000x2000 photos: enough decoding work that one request keeps the worker busy for a while."""
    files = []
    for i, photo in enumerate(fire_photos[:6]):
        buffer = io.BytesIO()
        Image.open(photo).convert("RGB").resize((3000, 2000)).save(buffer, "JPEG", quality=92)
        files.append((f"big{i}.jpg", buffer.getvalue()))
    return files


def overloaded_total(server: Server) -> float:
    for family in text_string_to_metric_families(httpx.get(server.url + "/metrics").text):
        for sample in family.samples:
            if sample.name == "envwatch_overloaded_total":
                return sample.value
    raise AssertionError("envwatch_overloaded_total missing")


def test_concurrent_uploads_beyond_pool_and_queue_get_503_with_retry_after(
    server: Server, heavy_upload: list[tuple[str, bytes]], upload: Upload
) -> None:
    start = threading.Barrier(CLIENTS)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def client_run() -> None:
        with server.admin as client:
            start.wait()
            response = upload(client, heavy_upload)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=client_run) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    statuses = sorted(r.status_code for r in responses)
    assert len(statuses) == CLIENTS
    assert set(statuses) <= {201, 503}, statuses
    accepted = statuses.count(201)
    refused = [r for r in responses if r.status_code == 503]
    assert accepted >= 1, "the first request always gets the worker"
    assert refused, f"{CLIENTS} simultaneous heavy uploads cannot all fit 1 worker + 1 queue slot"
    for response in refused:
        assert response.headers["Retry-After"] == "7"
        assert response.json()["error"]["code"] == "overloaded"
    assert overloaded_total(server) == len(refused)
    with server.admin as client:
        assert client.get("/v1/inspections").json()["total"] == accepted, "refused uploads leave nothing behind"
        after = upload(client, heavy_upload[:1])
    assert after.status_code == 201, "the service recovers once the load is gone"


def detection_running(server: Server) -> float:
    for family in text_string_to_metric_families(httpx.get(server.url + "/metrics").text):
        for sample in family.samples:
            if sample.name == "envwatch_detection_running":
                return sample.value
    raise AssertionError("envwatch_detection_running missing")


def test_annotated_jpg_is_refused_by_a_full_pool_before_its_photo_is_read(
    make_server: Callable[..., Server], heavy_upload: list[tuple[str, bytes]], fire_photos: list[Path], upload: Upload
) -> None:
    """The pool must refuse before the photo is read (50 waiting requests once held 50 photos in memory).

    Seen from outside by a photo whose file is gone: with the only worker busy drawing a large photo,
    asking for it is 503 `overloaded` (nothing read); with the worker free, it is 500 `image_file_missing`.
    """
    server = make_server({"ENVWATCH_DETECT_WORKERS": "1", "ENVWATCH_DETECT_QUEUE": "0"})
    with server.admin as client:
        large = upload(client, heavy_upload[:1]).json()["files"][0]["image"]
        small = upload(client, [(fire_photos[1].name, fire_photos[1].read_bytes())]).json()["files"][0]["image"]
    sha = small["sha256"]
    (server.data_dir / sha[:2] / sha[2:4] / sha).unlink()
    answers: list[int] = []

    def draw_large() -> None:
        with server.admin as client:
            answers.append(client.get(f"/v1/images/{large['id']}/annotated.jpg").status_code)

    for _ in range(5):  # until the large drawing was seen in progress while the small one was asked for
        drawing = threading.Thread(target=draw_large)
        drawing.start()
        while drawing.is_alive() and detection_running(server) < 1:
            time.sleep(0.01)
        with server.admin as client:
            refused = client.get(f"/v1/images/{small['id']}/annotated.jpg")
        still_busy = drawing.is_alive()
        drawing.join()
        if still_busy:
            break
    assert still_busy, "the large photo was never drawn long enough to overlap"
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "overloaded", refused.text
    assert answers[-1] == 200
    with server.admin as client:
        for path in ("annotated.jpg", "original"):
            missing = client.get(f"/v1/images/{small['id']}/{path}")
            assert missing.status_code == 500 and missing.json()["error"]["code"] == "image_file_missing", path
