"""`GET /v1/findings?sort=`: every order over real HTTP, paged without gaps or overlaps, with filters.

The expected orders are computed here from the unsorted findings (what the API documents), not
read back from the server: types in taxonomy order, statuses in workflow order, places with
missing parts last in both directions, ties in id order. The seeded data is chosen so that none
of these orders is the id order, nor plain alphabetical order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import Server, Upload, with_exif

CONF = "0.001"
FIELDS = ["id", "score", "created_at", "observed_at", "type", "status", "region"]
STATUS_ORDER = ["candidate", "confirmed", "dismissed", "rectification_ordered", "rectified", "closed"]
PLACES = [
    {"region": "Pingjiang 平江县", "township": "Sanshi 三市镇", "village": "Sandun 三墩村"},
    {},
    {"region": "Anhua 安化县"},
    {"region": "Pingjiang 平江县", "township": "Anding 安定镇"},
]
"""One inspection each; region names start with ASCII so SQLite's and PostgreSQL's collations agree."""
STATUS_STEPS = [
    [],
    ["confirmed"],
    ["dismissed"],
    ["confirmed", "rectification_ordered"],
    ["confirmed", "rectification_ordered", "rectified", "closed"],
]


@pytest.fixture(scope="module")
def ledger(
    server: Server, inspector_key: str, fire_photos: list[Path], garbage_photos: list[Path], upload: Upload
) -> list[dict[str, Any]]:
    """Findings of four inspections (three places and none; fire and garbage; EXIF dates that run
    against upload order) moved into every review status; returned in id order."""
    batches = [
        [("a.jpg", with_exif(garbage_photos[0], lat=28.7, lon=113.6, alt=80, taken="2024:05:01 09:30:00"))],
        [(p.name, p.read_bytes()) for p in (fire_photos[0], garbage_photos[1])],
        [("c.jpg", with_exif(fire_photos[1], lat=28.1, lon=111.2, alt=90, taken="2023:03:10 08:00:00"))],
        [(p.name, p.read_bytes()) for p in garbage_photos[2:4]],
    ]
    with server.client(inspector_key) as client:
        for files, place in zip(batches, PLACES, strict=True):
            response = upload(client, files, conf=CONF, **place)
            assert response.status_code == 201, response.text
        items = _all(client, {})
        for i, finding in enumerate(items):
            for to in STATUS_STEPS[i % len(STATUS_STEPS)]:
                moved = client.post(f"/v1/findings/{finding['id']}/transitions", json={"to": to})
                assert moved.status_code == 200, moved.text
        items = _all(client, {})
    assert len(items) >= 20, "enough findings to page through"
    assert len({f["type"] for f in items}) >= 2 and "burning" in {f["type"] for f in items}
    return items


def _all(client: httpx.Client, params: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.get("/v1/findings", params={**params, "limit": 1000})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["items"])
    return body["items"]


def _paged(client: httpx.Client, params: dict[str, Any], size: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = client.get("/v1/findings", params={**params, "limit": size, "offset": len(items)}).json()
        items.extend(page["items"])
        if len(items) >= page["total"] or not page["items"]:
            return items


def _keys(types: list[str]) -> dict[str, Callable[[dict[str, Any]], tuple[Any, ...]]]:
    """Per field, the tuple of values the API orders by (None for a missing place part)."""
    return {
        "id": lambda f: (f["id"],),
        "score": lambda f: (f["score"],),
        "created_at": lambda f: (datetime.fromisoformat(f["created_at"]),),
        "observed_at": lambda f: (datetime.fromisoformat(f["observed_at"]),),
        "type": lambda f: (types.index(f["type"]),),
        "status": lambda f: (STATUS_ORDER.index(f["status"]),),
        "region": lambda f: (f["region"], f["township"], f["village"]),
    }


def expected(items: list[dict[str, Any]], sort: str, types: list[str]) -> list[dict[str, Any]]:
    """`items` in the documented order for `sort`: missing values last either way, then id ascending."""
    key = _keys(types)[sort.removeprefix("-")]
    sign = -1 if sort.startswith("-") else 1

    def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
        for x, y in zip(key(a), key(b), strict=True):
            if x != y:
                if x is None or y is None:
                    return 1 if x is None else -1
                return sign * (1 if x > y else -1)
        return 0 if sort == "-id" else a["id"] - b["id"]

    return sorted(items, key=functools.cmp_to_key(compare))


@pytest.mark.parametrize("sort", [s for f in FIELDS for s in (f, f"-{f}")])
def test_each_sort_orders_every_page_as_documented(
    server: Server, inspector_key: str, ledger: list[dict[str, Any]], sort: str
) -> None:
    with server.client(inspector_key) as client:
        types = [p["key"] for p in client.get("/v1/model").json()["problem_types"]]
        whole = _all(client, {"sort": sort})
        paged = _paged(client, {"sort": sort}, size=7)
    want = expected(ledger, sort, types)
    if sort.removeprefix("-") == "score":
        # Scores are shown rounded to 4 decimals but ordered by their stored value: two findings
        # that round alike may come in either order, so compare the scores, and the ids as a set.
        assert [f["score"] for f in whole] == [f["score"] for f in want]
        assert sorted(f["id"] for f in whole) == [f["id"] for f in ledger]
    else:
        assert [f["id"] for f in whole] == [f["id"] for f in want]
    assert [f["id"] for f in paged] == [f["id"] for f in whole], "pages of 7 neither overlap nor skip"
    if sort not in ("id", "created_at"):
        assert [f["id"] for f in whole] != [f["id"] for f in ledger], "the seed must make this order differ from id"


def test_without_sort_the_order_stays_id_ascending(server: Server, inspector_key: str, ledger: list) -> None:
    with server.client(inspector_key) as client:
        default = _all(client, {})
        explicit = _all(client, {"sort": "id"})
    assert [f["id"] for f in default] == [f["id"] for f in explicit] == sorted(f["id"] for f in ledger)


def test_sort_applies_within_the_filters(server: Server, inspector_key: str, ledger: list) -> None:
    with server.client(inspector_key) as client:
        types = [p["key"] for p in client.get("/v1/model").json()["problem_types"]]
        candidates = _all(client, {"status": "candidate", "sort": "-region"})
        pingjiang = _all(client, {"region": PLACES[0]["region"], "sort": "-observed_at"})
    assert [f["id"] for f in candidates] == [
        f["id"] for f in expected([f for f in ledger if f["status"] == "candidate"], "-region", types)
    ]
    in_region = [f for f in ledger if f["region"] == PLACES[0]["region"]]
    assert {f["township"] for f in in_region} == {"Sanshi 三市镇", "Anding 安定镇"}
    assert [f["id"] for f in pingjiang] == [f["id"] for f in expected(in_region, "-observed_at", types)]


@pytest.mark.parametrize("bad", ["place", "--id", "score,id", "Score", "", "-"])
def test_an_unknown_sort_is_refused_with_the_choices(server: Server, inspector_key: str, bad: str) -> None:
    with server.client(inspector_key) as client:
        response = client.get("/v1/findings", params={"sort": bad})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert "sort" in error["message"] and "'-observed_at'" in error["message"]


def test_openapi_lists_every_sort(server: Server) -> None:
    with server.client() as client:
        spec = client.get("/openapi.json").json()
    parameter = next(p for p in spec["paths"]["/v1/findings"]["get"]["parameters"] if p["name"] == "sort")
    schema = parameter["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert sorted(schema["enum"]) == sorted(s for f in FIELDS for s in (f, f"-{f}"))
