"""Per-region summary additions the page shows: how many findings were rectified, how fast, and as CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from web_helpers import FLAGGED_PHOTO, FOLLOWUP_PHOTO, GARBAGE_IMAGES, Server, rectify, upload

from inference_api.models import Finding

LOW_CONF = "0.001"


@pytest.fixture(scope="module")
def ledger(server: Server, inspector_key: str, database_url: str) -> dict[str, list[int]]:
    """Region A: two findings rectified, raised 2 and 4 days before; one sent back after a failed
    re-check; region B: nothing rectified. Raised times are set in the database, as if raised then."""
    with server.client(inspector_key) as client:
        a: list[dict] = []
        for n, photo in enumerate([FLAGGED_PHOTO, *sorted(GARBAGE_IMAGES.glob("*.jpg"))[:20]]):
            a += upload(client, photo.read_bytes(), f"a{n}.jpg", region="A县", conf=LOW_CONF)["findings"]
            if len(a) >= 3:
                break
        b = upload(client, FOLLOWUP_PHOTO.read_bytes(), "b.jpg", region="B镇", conf=LOW_CONF)["findings"]
        assert len(a) >= 3 and b, "region A needs three findings, region B one (garbage photos, near-zero threshold)"
        followup = FOLLOWUP_PHOTO.read_bytes()
        rectified = [rectify(client, f["id"], followup)["history"][-1]["at"] for f in a[:3]]
        back = client.post(f"/v1/findings/{a[2]['id']}/transitions", json={"to": "rectification_ordered"})
        assert back.status_code == 200, back.text
    engine = sa.create_engine(database_url)
    with Session(engine) as session, session.begin():
        for finding, days, done in zip(a[:2], (2, 4), rectified, strict=False):
            raised = datetime.fromisoformat(done).astimezone(UTC) - timedelta(days=days)
            session.execute(sa.update(Finding).where(Finding.id == finding["id"]).values(created_at=raised))
    engine.dispose()
    return {"A县": [f["id"] for f in a], "B镇": [f["id"] for f in b]}


def test_summary_counts_standing_rectifications_and_their_median_days(
    server: Server, inspector_key: str, ledger: dict[str, list[int]]
) -> None:
    with server.client(inspector_key) as client:
        summary = client.get("/v1/findings/summary").json()
    regions = {r["region"]: r for r in summary["regions"]}
    assert regions["A县"]["total"] == len(ledger["A县"]) and regions["B镇"]["total"] == len(ledger["B镇"])
    assert regions["A县"]["rectified"] == 2, "the finding sent back after a failed re-check does not count"
    assert regions["A县"]["median_days_to_rectified"] == pytest.approx(3.0, abs=0.01)
    assert regions["B镇"]["rectified"] == 0 and regions["B镇"]["median_days_to_rectified"] is None
    assert summary["rectified"] == 2 and summary["median_days_to_rectified"] == pytest.approx(3.0, abs=0.01)
    assert regions["A县"]["by_status"]["rectified"] == 2
    assert regions["A县"]["by_status"]["rectification_ordered"] == 1


def test_summary_filters_apply_to_the_rectification_numbers(
    server: Server, inspector_key: str, ledger: dict[str, list[int]]
) -> None:
    with server.client(inspector_key) as client:
        only_b = client.get("/v1/findings/summary", params={"region": "B镇"}).json()
        candidates = client.get("/v1/findings/summary", params={"status": "candidate"}).json()
    assert [r["region"] for r in only_b["regions"]] == ["B镇"] and only_b["rectified"] == 0
    assert candidates["rectified"] == 0 and candidates["median_days_to_rectified"] is None


def test_summary_csv_has_the_same_numbers_as_the_summary(
    server: Server, integration_key: str, ledger: dict[str, list[int]]
) -> None:
    with server.client(integration_key) as client:
        response = client.get("/v1/findings/summary.csv")
        summary = client.get("/v1/findings/summary").json()
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())
    rows = {row["region"]: row for row in csv.DictReader(io.StringIO(response.text.lstrip("\ufeff")))}
    assert set(rows) == {r["region"] for r in summary["regions"]}
    for region in summary["regions"]:
        row = rows[region["region"]]
        assert int(row["total"]) == region["total"] and int(row["rectified_total"]) == region["rectified"]
        assert all(int(row[t]) == n for t, n in region["by_type"].items())
        assert all(int(row[s]) == n for s, n in region["by_status"].items())
        median = region["median_days_to_rectified"]
        assert row["median_days_to_rectified"] == ("" if median is None else str(median))


def test_summary_csv_needs_a_key(server: Server) -> None:
    with server.client() as client:
        assert client.get("/v1/findings/summary.csv").status_code == 401
