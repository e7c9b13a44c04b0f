"""A whole-photo problem (the v4 classifier saw it, no box says where) through the service.

The server loads `whole_photo_onnx` (tests/conftest.py): the tiny detector-and-classifier model
with a rule that vetoes every burning box and raises burning on every photo, so the finding is
certain and these tests check how it is stored and shown, not what a tiny classifier scores.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from service_helpers import Server, Upload, with_exif

PLACE = (28.7012, 113.5794, 96.5)


@pytest.fixture(scope="module")
def service_model(whole_photo_onnx: Path) -> Path:
    return whole_photo_onnx


@pytest.fixture(scope="module")
def uploaded(server: Server, inspector_key: str, garbage_photos: list[Path], upload: Upload) -> dict:
    photo = with_exif(garbage_photos[0], *PLACE, "2024:06:01 08:00:00")
    with server.client(inspector_key) as client:
        response = upload(client, [("whole.jpg", photo)], region="岳阳市", village="新墙村")
    assert response.status_code == 201, response.text
    body = response.json()
    image = body["files"][0]["image"]
    (whole,) = [f for f in body["findings"] if f["type"] == "burning"]
    return {"body": body, "image": image, "finding": whole}


def test_the_finding_says_it_covers_the_whole_photo(uploaded: dict) -> None:
    finding, image = uploaded["finding"], uploaded["image"]
    assert finding["extent"] == "photo" and finding["label"] == "burning"
    assert finding["box"] == {"x1": 0.0, "y1": 0.0, "x2": float(image["width"]), "y2": float(image["height"])}
    assert finding["model_version"] == "whole-photo-test"
    assert all(f["extent"] == "box" for f in uploaded["body"]["findings"] if f["type"] != "burning")


def test_ledger_csv_and_geojson_carry_the_extent(server: Server, integration_key: str, uploaded: dict) -> None:
    finding = uploaded["finding"]
    with server.client(integration_key) as client:
        detail = client.get(f"/v1/findings/{finding['id']}").json()
        rows = list(csv.DictReader(io.StringIO(client.get("/v1/findings.csv").content.decode("utf-8-sig"))))
        geo = client.get("/v1/findings.geojson").json()
    assert detail["extent"] == "photo"
    (row,) = [r for r in rows if r["id"] == str(finding["id"])]
    assert row["extent"] == "photo" and row["x2"] == str(float(uploaded["image"]["width"]))
    assert {r["extent"] for r in rows if r["id"] != str(finding["id"])} <= {"box"}
    (feature,) = [f for f in geo["features"] if f["id"] == finding["id"]]
    assert feature["properties"]["extent"] == "photo"
    assert feature["geometry"]["coordinates"][:2] == [PLACE[1], PLACE[0]]


def test_annotated_image_frames_the_whole_photo(server: Server, integration_key: str, uploaded: dict) -> None:
    image = uploaded["image"]
    with server.client(integration_key) as client:
        drawn = client.get(f"/v1/images/{image['id']}/annotated.jpg").content
        plain = client.get(f"/v1/images/{image['id']}/original").content
    drawn, plain = (cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR).astype(int) for b in (drawn, plain))
    changed = np.abs(drawn - plain).max(axis=2) > 40
    height, width = changed.shape
    edge = 2  # the frame lies just inside the photo's edge, all round
    border = np.concatenate(
        [changed[edge, :], changed[height - 1 - edge, :], changed[:, edge], changed[:, width - 1 - edge]]
    )
    assert border.mean() > 0.8, "a frame is drawn along the whole edge"
    centre = changed[height // 3 : 2 * height // 3, width // 3 : 2 * width // 3]
    assert centre.mean() < 0.05, "no box is drawn inside the photo"
    red = drawn[height - 1 - edge, width // 2]
    assert red[2] > 180 and red[0] < 90 and red[1] < 90, "in the colour of burning"
