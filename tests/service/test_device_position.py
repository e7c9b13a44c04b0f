"""A device position on upload: placed only on photos without EXIF GPS, marked as the device's, exported so.

Phones' browsers often strip a camera photo's GPS; the inspector's page then sends where the phone
was (`device_lat`, `device_lon`, `device_accuracy_m`). The photo's own GPS must win, and every
place a position is shown (the finding, GeoJSON, CSV) must say which one it is.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from service_helpers import Server, Upload, with_exif

EXIF_PLACE = (28.7012, 113.5794, 96.5)
PHONE = {"device_lat": "28.6105", "device_lon": "113.4021", "device_accuracy_m": "12.5"}


@pytest.fixture(scope="module")
def uploaded(server: Server, inspector_key: str, garbage_photos: list[Path], upload: Upload) -> dict:
    """One photo with EXIF GPS and one without, sent with a device position, at a near-zero threshold."""
    files = [
        ("exif.jpg", with_exif(garbage_photos[0], *EXIF_PLACE, "2024:06:01 08:00:00")),
        ("phone.jpg", garbage_photos[1].read_bytes()),
    ]
    with server.client(inspector_key) as client:
        response = upload(client, files, conf="0.001", region="平江县", **PHONE)
    assert response.status_code == 201, response.text
    body = response.json()
    by_file = {f["file"]: set(f["findings"]) for f in body["files"]}
    assert by_file["exif.jpg"] and by_file["phone.jpg"], "a near-zero threshold raises findings on both"
    return body


def _findings_of(inspection: dict, name: str) -> list[dict]:
    ids = next(set(f["findings"]) for f in inspection["files"] if f["file"] == name)
    return [f for f in inspection["findings"] if f["id"] in ids]


def test_the_photos_own_gps_wins_and_the_device_position_fills_in(uploaded: dict) -> None:
    for finding in _findings_of(uploaded, "exif.jpg"):
        gps = finding["gps"]
        assert (gps["lat"], gps["lon"], gps["alt"]) == pytest.approx(EXIF_PLACE, abs=1e-4)
        assert gps["source"] == "photo" and gps["accuracy_m"] is None
    for finding in _findings_of(uploaded, "phone.jpg"):
        assert finding["gps"] == {"lat": 28.6105, "lon": 113.4021, "alt": None, "source": "device", "accuracy_m": 12.5}
    phone_image = next(f["image"] for f in uploaded["files"] if f["file"] == "phone.jpg")
    assert phone_image["gps"] is None, "the stored photo keeps only its own GPS: none"


def test_exports_say_where_each_position_came_from(server: Server, integration_key: str, uploaded: dict) -> None:
    expected = {f["id"]: (f["gps"]["source"], f["gps"]["accuracy_m"]) for f in uploaded["findings"]}
    where = {"inspection_id": uploaded["id"]}
    with server.client(integration_key) as client:
        collection = client.get("/v1/findings.geojson", params=where).json()
        text = client.get("/v1/findings.csv", params=where).text
    features = {f["id"]: f for f in collection["features"]}
    assert set(features) == set(expected)
    for finding in uploaded["findings"]:
        props = features[finding["id"]]["properties"]
        assert (props["position_source"], props["position_accuracy_m"]) == expected[finding["id"]]
        assert features[finding["id"]]["geometry"]["coordinates"][:2] == [finding["gps"]["lon"], finding["gps"]["lat"]]
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert {int(r["id"]): (r["position_source"], r["position_accuracy_m"]) for r in rows} == {
        i: (source, "" if accuracy is None else str(accuracy)) for i, (source, accuracy) in expected.items()
    }
    assert {"photo", "device"} == {source for source, _ in expected.values()}


def test_without_a_device_position_a_photo_without_gps_has_none(
    server: Server, inspector_key: str, garbage_photos: list[Path], upload: Upload
) -> None:
    with server.client(inspector_key) as client:
        response = upload(client, [("plain.jpg", garbage_photos[2].read_bytes())], conf="0.001")
    assert response.status_code == 201, response.text
    findings = response.json()["findings"]
    assert findings and all(f["gps"] is None for f in findings)


@pytest.mark.parametrize(
    ("form", "mentions"),
    [
        ({"device_lat": "28.6"}, "device_lat and device_lon"),
        ({"device_lon": "113.4"}, "device_lat and device_lon"),
        ({"device_accuracy_m": "10"}, "device_accuracy_m"),
        ({"device_lat": "91", "device_lon": "113.4"}, "device_lat"),
        ({"device_lat": "28.6", "device_lon": "-181"}, "device_lon"),
        ({"device_lat": "nan", "device_lon": "113.4"}, "device_lat"),
        ({"device_lat": "28.6", "device_lon": "113.4", "device_accuracy_m": "-1"}, "device_accuracy_m"),
        ({"device_lat": "north", "device_lon": "113.4"}, "device_lat"),
    ],
)
def test_a_bad_device_position_is_refused_and_stores_nothing(
    server: Server, inspector_key: str, garbage_photos: list[Path], upload: Upload, form: dict, mentions: str
) -> None:
    with server.client(inspector_key) as client:
        before = client.get("/v1/inspections", params={"limit": 1}).json()["total"]
        response = upload(client, [("bad.jpg", garbage_photos[3].read_bytes())], client_id="bad-position", **form)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"
        assert mentions in response.json()["error"]["message"]
        assert client.get("/v1/inspections", params={"limit": 1}).json()["total"] == before
