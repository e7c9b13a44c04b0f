"""The review ledger: transitions, their history, and the filters and summary inspectors work from."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
from service_helpers import Server, Upload, with_exif

from model.images import load_image
from model.runtime import Detector

LOW_CONF = "0.001"


@pytest.fixture(scope="module")
def seeded(
    server: Server, inspector_key: str, fire_photos: list[Path], garbage_photos: list[Path], upload: Upload
) -> dict[str, list[dict]]:
    """Two regions' inspections with findings, one dated by EXIF in 2023, the others uploaded now."""
    old_photo = with_exif(garbage_photos[0], lat=28.5, lon=113.2, alt=50, taken="2023:03:10 09:00:00")
    with server.client(inspector_key) as client:
        a = upload(client, [(p.name, p.read_bytes()) for p in fire_photos[:4]], conf=LOW_CONF, region="平江县")
        b = upload(
            client,
            [("old.jpg", old_photo), *((p.name, p.read_bytes()) for p in garbage_photos[1:4])],
            conf=LOW_CONF,
            region="汨罗市",
        )
    assert a.status_code == b.status_code == 201, (a.text, b.text)
    seeded = {"平江县": a.json()["findings"], "汨罗市": b.json()["findings"]}
    assert all(seeded.values()), "a near-zero threshold must raise findings in each region"
    return seeded


def move(client: httpx.Client, finding_id: int, to: str, note: str | None = None) -> httpx.Response:
    return client.post(f"/v1/findings/{finding_id}/transitions", json={"to": to, "note": note})


def test_full_workflow_with_follow_up_photo_is_recorded_in_history(
    server: Server, inspector_key: str, seeded: dict[str, list[dict]], garbage_photos: list[Path]
) -> None:
    finding_id = seeded["平江县"][0]["id"]
    supervisor = server.new_key("inspector", "supervisor-li")
    with server.client(inspector_key) as wang, server.client(supervisor) as li:
        assert move(wang, finding_id, "confirmed", "checked on site").status_code == 200
        assert move(li, finding_id, "rectification_ordered", "clear within 3 days").status_code == 200
        followup = garbage_photos[5].read_bytes()
        rectified = wang.post(
            f"/v1/findings/{finding_id}/rectification",
            data={"note": "cleaned"},
            files={"file": ("after.jpg", followup, "image/jpeg")},
        )
        assert rectified.status_code == 200, rectified.text
        closed = move(li, finding_id, "closed", "re-check passed")
    assert closed.status_code == 200
    detail = closed.json()
    assert detail["status"] == "closed"
    steps = [(h["from_status"], h["to_status"], h["actor"], h["note"]) for h in detail["history"]]
    assert steps[1:] == [
        ("candidate", "confirmed", "inspector-wang", "checked on site"),
        ("confirmed", "rectification_ordered", "supervisor-li", "clear within 3 days"),
        ("rectification_ordered", "rectified", "inspector-wang", "cleaned"),
        ("rectified", "closed", "supervisor-li", "re-check passed"),
    ]
    times = [h["at"] for h in detail["history"]]
    assert times == sorted(times)
    photo_event = detail["history"][3]
    assert photo_event["image_id"] is not None
    assert photo_event["model_version"] == detail["model_version"]
    served = Detector.load(Path(server.env["ENVWATCH_MODEL_PATH"]))
    expected = served.problems(served.detect([load_image(followup).pixels])[0])
    recorded = photo_event["followup_problems"]
    assert sorted((p["type"], p["label"]) for p in recorded) == sorted((p.type, p.label) for p in expected)
    assert sorted(p["score"] for p in recorded) == pytest.approx(sorted(float(p.score) for p in expected), abs=1e-3)
    with server.client(inspector_key) as client:
        image = client.get(f"/v1/images/{photo_event['image_id']}")
        original = client.get(f"/v1/images/{photo_event['image_id']}/original")
    assert image.status_code == 200 and image.json()["width"] > 0
    assert original.content == followup


def test_failed_recheck_goes_back_to_rectification(
    server: Server, inspector_key: str, seeded: dict[str, list[dict]]
) -> None:
    finding_id = seeded["平江县"][1]["id"] if len(seeded["平江县"]) > 1 else seeded["汨罗市"][-1]["id"]
    with server.client(inspector_key) as client:
        for to in ("confirmed", "rectification_ordered", "rectified", "rectification_ordered"):
            assert move(client, finding_id, to).status_code == 200, to
        rectified = client.post(f"/v1/findings/{finding_id}/rectification", data={"note": "second try"})
    assert rectified.status_code == 200
    assert rectified.json()["status"] == "rectified"
    assert rectified.json()["history"][-1]["image_id"] is None


@pytest.mark.parametrize(
    ("path", "to"),
    [
        ([], "rectified"),
        ([], "closed"),
        (["dismissed"], "confirmed"),
        (["confirmed"], "dismissed"),
        (["confirmed"], "confirmed"),
        (["confirmed", "rectification_ordered"], "closed"),
    ],
    ids=[
        "candidate-rectified",
        "candidate-closed",
        "dismissed-final",
        "confirmed-dismissed",
        "same-state",
        "ordered-closed",
    ],
)
def test_invalid_transitions_are_409_and_change_nothing(
    server: Server, inspector_key: str, seeded: dict[str, list[dict]], path: list[str], to: str
) -> None:
    with server.client(inspector_key) as client:
        candidates = client.get("/v1/findings", params={"status": "candidate", "limit": 1}).json()["items"]
        assert candidates, "the seeded findings include candidates"
        finding_id = candidates[0]["id"]
        for step in path:
            assert move(client, finding_id, step).status_code == 200
        before = client.get(f"/v1/findings/{finding_id}").json()
        response = move(client, finding_id, to)
        after = client.get(f"/v1/findings/{finding_id}").json()
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "invalid_transition"
    assert before["status"] in error["message"] and to in error["message"]
    assert after == before


def test_concurrent_moves_of_one_finding_let_exactly_one_win(
    server: Server, inspector_key: str, seeded: dict[str, list[dict]]
) -> None:
    with server.client(inspector_key) as client:
        candidates = client.get("/v1/findings", params={"status": "candidate", "limit": 1}).json()["items"]
    finding_id = candidates[0]["id"]
    barrier = threading.Barrier(6)
    results: list[tuple[str, int]] = []

    def race(to: str) -> None:
        with server.client(inspector_key) as client:
            barrier.wait()
            results.append((to, move(client, finding_id, to).status_code))

    threads = [threading.Thread(target=race, args=(to,)) for to in ["confirmed", "dismissed"] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(code for _, code in results) == [200, 409, 409, 409, 409, 409]
    winner = next(to for to, code in results if code == 200)
    with server.client(inspector_key) as client:
        detail = client.get(f"/v1/findings/{finding_id}").json()
    assert detail["status"] == winner
    assert [h["to_status"] for h in detail["history"]] == ["candidate", winner]


def test_unknown_finding_is_404_and_unknown_status_422(server: Server, inspector_key: str) -> None:
    with server.client(inspector_key) as client:
        missing = move(client, 987654, "confirmed")
        bad = client.post("/v1/findings/1/transitions", json={"to": "burned_down"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_integration_keys_read_but_cannot_review(
    server: Server, integration_key: str, seeded: dict[str, list[dict]]
) -> None:
    with server.client(integration_key) as client:
        candidates = client.get("/v1/findings", params={"status": "candidate", "limit": 1000}).json()["items"]
        finding_id = candidates[-1]["id"]
        assert client.get(f"/v1/findings/{finding_id}").status_code == 200
        response = move(client, finding_id, "confirmed")
        status = client.get(f"/v1/findings/{finding_id}").json()["status"]
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert status == "candidate"


def all_findings(client: httpx.Client, **params: str | float) -> list[dict]:
    """Every page of GET /v1/findings, checking that pages add up to `total`."""
    items: list[dict] = []
    offset = 0
    while True:
        page = client.get("/v1/findings", params={**params, "limit": 7, "offset": offset}).json()
        items += page["items"]
        offset += 7
        if offset >= page["total"]:
            assert len(items) == page["total"]
            return items


def test_filters_and_pagination_agree_with_the_data(
    server: Server, integration_key: str, seeded: dict[str, list[dict]]
) -> None:
    with server.client(integration_key) as client:
        everything = all_findings(client)
        ids = [f["id"] for f in everything]
        assert ids == sorted(set(ids)), "pages neither repeat nor skip"
        for region, findings in seeded.items():
            assert {f["id"] for f in all_findings(client, region=region)} == {f["id"] for f in findings}
        for type_ in {f["type"] for f in everything}:
            chosen = all_findings(client, type=type_)
            assert chosen and all(f["type"] == type_ for f in chosen)
            assert len(chosen) == sum(f["type"] == type_ for f in everything)
        scores = sorted(f["score"] for f in everything)
        median = scores[len(scores) // 2]
        strong = all_findings(client, min_score=median)
        assert {f["id"] for f in strong} == {f["id"] for f in everything if f["score"] >= median}
        old = all_findings(client, to="2023-12-31T23:59:59Z")
        recent = all_findings(client, **{"from": "2024-01-01T00:00:00Z"})
        assert old and all(f["observed_at"].startswith("2023-03-10") for f in old)
        assert len(old) + len(recent) == len(everything)
        window = all_findings(client, **{"from": "2023-03-10T00:00:00+08:00", "to": "2023-03-10T23:59:59+08:00"})
        assert {f["id"] for f in window} == {f["id"] for f in old}
        photos = {f["image_id"] for f in everything}
        assert len(photos) > 1, "the seed must hold findings on several photos for this to test anything"
        for image_id in photos:
            on_photo = all_findings(client, image_id=image_id)
            assert {f["id"] for f in on_photo} == {f["id"] for f in everything if f["image_id"] == image_id}
        confirmed = all_findings(client, status="confirmed")
        assert all(f["status"] == "confirmed" for f in confirmed)
        assert client.get("/v1/findings", params={"type": "spaceship"}).status_code == 422
        reversed_range = client.get("/v1/findings", params={"from": "2024-01-02", "to": "2024-01-01"})
        assert reversed_range.status_code == 422


def test_date_filters_take_any_offset_and_refuse_what_is_not_a_date_time(
    server: Server, integration_key: str, seeded: dict[str, list[dict]]
) -> None:
    """Regressions (found fuzzing the filters): an offset-aware bound with a naive one (naive means UTC) was a
    500, so was a bound the UTC conversion takes past year 1 or 9999, and a bare number was read as a Unix time."""
    with server.client(integration_key) as client:
        old = all_findings(client, **{"from": "2023-01-01T00:00:00Z", "to": "2023-12-31T23:59:59Z"})
        mixed = all_findings(client, **{"from": "2023-01-01T08:00:00+08:00", "to": "2023-12-31T23:59:59"})
        assert old and {f["id"] for f in mixed} == {f["id"] for f in old}
        for path in ("/v1/findings", "/v1/findings/summary", "/v1/findings.csv", "/v1/findings.geojson"):
            for params in (
                {"from": "2023-01-01T00:00:00Z", "to": "2022-12-31T23:59:59"},
                {"from": "0001-01-01T00:00:00+14:00"},
                {"to": "9999-12-31T23:59:59-14:00"},
                {"from": "12"},
                {"to": "1700000000"},
            ):
                response = client.get(path, params=params)
                assert response.status_code == 422, (path, params, response.text)
                assert response.json()["error"]["code"] == "invalid_request"


def test_summary_counts_match_the_list(server: Server, integration_key: str, seeded: dict[str, list[dict]]) -> None:
    with server.client(integration_key) as client:
        everything = all_findings(client)
        summary = client.get("/v1/findings/summary").json()
        only_burning = client.get("/v1/findings/summary", params={"type": "burning"}).json()
    assert summary["total"] == len(everything)
    by_region = {r["region"]: r for r in summary["regions"]}
    assert set(by_region) == {f["region"] for f in everything}
    for region, entry in by_region.items():
        mine = [f for f in everything if f["region"] == region]
        assert entry["total"] == len(mine)
        assert entry["by_type"] == dict(Counter(f["type"] for f in mine))
        assert entry["by_status"] == dict(Counter(f["status"] for f in mine))
        pairs = Counter((f["type"], f["status"]) for f in mine)
        assert {(t, s): n for t, per in entry["by_type_status"].items() for s, n in per.items()} == dict(pairs)
    assert only_burning["total"] == sum(f["type"] == "burning" for f in everything)
