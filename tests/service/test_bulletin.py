"""Deadlines, overdue findings, recurrences, the weekly bulletin and the township ranking, over a campaign.

The ledger is campaign.py's (two weeks on a controlled clock); every number below is worked out
by hand from its table, on SQLite and PostgreSQL (the `database_url` fixture's two backends).
"""

from __future__ import annotations

import io
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from campaign import REGION, Campaign, in_process_server, local, plain_photo, play
from openpyxl import load_workbook
from service_helpers import GARBAGE_IMAGES, with_exif

from inference_api import cli


@pytest.fixture(scope="module")
def campaign(database_url: str, service_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    with in_process_server(database_url, tmp_path_factory.mktemp("campaign"), service_model, "2026-11-16 08:00") as c:
        play(c)
        yield c


def bulletin(c: Campaign, **params: str) -> dict:
    with c.client() as client:
        response = client.get("/v1/bulletin", params={"region": REGION, **params})
    assert response.status_code == 200, response.text
    return response.json()


def finding(c: Campaign, name: str) -> dict:
    with c.client() as client:
        return client.get(f"/v1/findings/{c.ids[name]}").json()


def by_type(c: Campaign, *names: str) -> dict[str, int]:
    return dict(Counter(c.types[n] for n in names))


# ---------------------------------------------------------------- deadlines and overdue


def test_deadlines_lateness_and_one_overdue_event_each(campaign: Campaign) -> None:
    c = campaign
    assert finding(c, "a")["deadline"] == "2026-11-19" and finding(c, "a")["rectified_late"] is False
    assert finding(c, "b")["rectified_late"] is True and finding(c, "e1")["rectified_late"] is True
    assert finding(c, "f")["rectified_late"] is False
    e2 = finding(c, "e2")
    assert e2["overdue"] is True and e2["status"] == "rectification_ordered"
    assert datetime.fromisoformat(e2["overdue_at"]) >= local("2026-11-25 00:00")
    order = [e for e in e2["history"] if e["to_status"] == "rectification_ordered"]
    assert [e["deadline"] for e in order] == ["2026-11-24"]
    # Rectified late: overdue once, but not overdue now.
    assert finding(c, "b")["overdue"] is False and finding(c, "b")["overdue_at"] is not None
    assert finding(c, "f")["overdue_at"] is None

    c.wait_until(lambda: len(c.hooks.of("finding.overdue")) >= 3, "three finding.overdue events")
    c.clock.set("2026-12-02 10:00")  # a day on, many sweeps later, nothing is announced twice
    time.sleep(1)
    overdue = c.hooks.of("finding.overdue")
    assert sorted(e["finding_id"] for e in overdue) == sorted(c.ids[n] for n in ("b", "e1", "e2"))
    assert {e["finding_id"]: e["deadline"] for e in overdue}[c.ids["b"]] == "2026-11-20"
    assert all(e["region"] == REGION for e in overdue)
    c.clock.set("2026-12-01 10:00")

    with c.client() as client:
        listed = client.get("/v1/findings", params={"overdue": "true"}).json()
        assert [f["id"] for f in listed["items"]] == [c.ids["e2"]]
        not_overdue = client.get("/v1/findings", params={"overdue": "false", "limit": 1}).json()
        everything = client.get("/v1/findings", params={"limit": 1}).json()
        assert not_overdue["total"] == everything["total"] - 1
        summary = client.get("/v1/findings/summary", params={"region": REGION}).json()
        assert (summary["overdue"], summary["rectified_late"]) == (1, 2)
        assert (summary["regions"][0]["overdue"], summary["regions"][0]["rectified_late"]) == (1, 2)
        csv_rows = client.get("/v1/findings/summary.csv", params={"region": REGION}).text.lstrip("\ufeff").splitlines()
        header, row = csv_rows[0].split(","), csv_rows[1].split(",")
        assert (row[header.index("overdue")], row[header.index("rectified_late")]) == ("1", "2")


def test_deadline_before_the_order_date_is_refused(campaign: Campaign) -> None:
    c = campaign
    d = c.ids["d"]  # confirmed, never ordered; the clock says 2026-12-01
    with c.client() as client:
        before = client.post(
            f"/v1/findings/{d}/transitions", json={"to": "rectification_ordered", "deadline": "2026-11-30"}
        )
        assert before.status_code == 422, before.text
        assert (
            before.json()["error"]["code"] == "invalid_deadline" and "2026-12-01" in before.json()["error"]["message"]
        )
        both = client.post(
            f"/v1/findings/{d}/transitions",
            json={"to": "rectification_ordered", "deadline": "2026-12-05", "deadline_days": 2},
        )
        assert both.status_code == 422 and both.json()["error"]["code"] == "invalid_deadline"
        elsewhere = client.post(f"/v1/findings/{d}/transitions", json={"to": "dismissed", "deadline": "2026-12-05"})
        assert elsewhere.status_code == 422 and elsewhere.json()["error"]["code"] == "invalid_deadline"
        negative = client.post(
            f"/v1/findings/{d}/transitions", json={"to": "rectification_ordered", "deadline_days": -1}
        )
        assert negative.status_code == 422
        after = client.get(f"/v1/findings/{d}").json()
    assert after["status"] == "confirmed" and after["deadline"] is None and len(after["history"]) == 2


# ---------------------------------------------------------------- recurrences


def test_recurrence_is_marked_and_linked(campaign: Campaign) -> None:
    c = campaign
    assert finding(c, "d")["recurrence_of"] == c.ids["a"]
    for name in ("a", "b", "c", "e1", "e2", "f", "x"):
        assert finding(c, name)["recurrence_of"] is None, name
    with c.client() as client:
        recurring = client.get("/v1/findings", params={"recurrence": "true", "limit": 1000}).json()["items"]
        d_inspection = finding(c, "d")["inspection_id"]
    # Every finding of d's upload with a's type came back at a's village; nothing else recurs.
    assert c.ids["d"] in [f["id"] for f in recurring]
    assert all(f["inspection_id"] == d_inspection and f["type"] == c.types["a"] for f in recurring)
    assert all(f["recurrence_of"] == c.ids["a"] for f in recurring)
    events = c.hooks.of("inspection.created")
    marked = {f["id"]: f["recurrence_of"] for e in events for f in e["findings"]}
    assert marked[c.ids["d"]] == c.ids["a"]


# ---------------------------------------------------------------- the bulletin


def test_week_48_bulletin_numbers(campaign: Campaign) -> None:
    c = campaign
    b = bulletin(c, period="2026-W48")
    assert (b["first_day"], b["last_day"], b["timezone"]) == ("2026-11-23", "2026-11-29", "Asia/Shanghai")
    assert datetime.fromisoformat(b["as_of"]) == local("2026-11-30 00:00")
    assert b["empty"] is False
    assert b["new_total"] == 4
    assert b["new_by_type"] == by_type(c, "d", "e1", "e2", "f")
    assert [(t["township"], t["total"]) for t in b["new_by_township"]] == [("城关镇", 3), ("河口镇", 1)]
    assert b["new_by_township"][0]["by_type"] == by_type(c, "d", "e1", "e2")
    assert b["awaiting_review"] == sum(c.candidates[n] for n in ("d", "e1", "e2", "f", "x"))
    assert (b["rectified_on_time"], b["rectified_late"], b["still_overdue"]) == (1, 2, 1)
    assert sorted(i["finding_id"] for i in b["late"]) == sorted([c.ids["b"], c.ids["e1"]])
    assert [(i["finding_id"], i["deadline"]) for i in b["overdue"]] == [(c.ids["e2"], "2026-11-24")]
    assert [(i["finding_id"], i["recurrence_of"]) for i in b["recurrences"]] == [(c.ids["d"], c.ids["a"])]
    late_b = next(i for i in b["late"] if i["finding_id"] == c.ids["b"])
    assert datetime.fromisoformat(late_b["at"]) == local("2026-11-24 10:00")
    scores = {f["id"]: f["score"] for f in (finding(c, n) for n in ("d", "e1", "e2", "f"))}
    assert [p["finding_id"] for p in b["photos"]] == sorted(scores, key=lambda i: (-scores[i], i))


def test_week_48_ranking_and_rank_changes(campaign: Campaign) -> None:
    ranking = bulletin(campaign, period="2026-W48")["ranking"]
    rows = {r["township"]: r for r in ranking}
    assert [r["township"] for r in ranking] == ["石桥乡", "河口镇", "城关镇"]
    # 城关镇: 3 problems in 2 villages, 0 on time, e1 late, e2 overdue, d recurs: 60·0 − 10·1.5 − 5·1 − 10·1.
    assert rows["城关镇"] == {
        "township": "城关镇",
        "rank": 3,
        "previous_rank": 1,
        "change": -2,
        "score": -30.0,
        "problems": 3,
        "villages": 2,
        "problems_per_village": 1.5,
        "on_time": 0,
        "late": 1,
        "overdue": 1,
        "on_time_rate": 0.0,
        "recurrences": 1,
    }
    # 河口镇: f on time, b late, 1 problem in 1 village: 60·0.5 − 10·1.
    assert (rows["河口镇"]["score"], rows["河口镇"]["on_time_rate"], rows["河口镇"]["problems_per_village"]) == (
        20.0,
        0.5,
        1.0,
    )
    assert (rows["河口镇"]["rank"], rows["河口镇"]["previous_rank"], rows["河口镇"]["change"]) == (2, 3, 1)
    # 石桥乡: inspected, nothing this week: the full 60.
    assert (rows["石桥乡"]["score"], rows["石桥乡"]["rank"], rows["石桥乡"]["change"]) == (60.0, 1, 0)


def test_week_47_ranking_shares_a_rank(campaign: Campaign) -> None:
    b = bulletin(campaign, period="2026-W47")
    assert (b["new_total"], b["rectified_on_time"], b["rectified_late"], b["still_overdue"]) == (3, 2, 0, 1)
    assert b["recurrences"] == []
    ranks = {r["township"]: (r["rank"], r["score"], r["previous_rank"], r["villages"]) for r in b["ranking"]}
    # 西村 was first inspected in W48: 城关镇 had one village in W47. 河口镇: b overdue at the week's end.
    assert ranks == {"城关镇": (1, 50.0, None, 1), "石桥乡": (1, 50.0, None, 1), "河口镇": (3, -15.0, None, 1)}
    assert [r["township"] for r in b["ranking"]] == ["城关镇", "石桥乡", "河口镇"]


def test_township_bulletin_keeps_the_county_ranking(campaign: Campaign) -> None:
    b = bulletin(campaign, period="2026-W48", township="城关镇")
    assert (b["township"], b["new_total"], b["rectified_on_time"], b["rectified_late"], b["still_overdue"]) == (
        "城关镇",
        3,
        0,
        1,
        1,
    )
    assert [t["township"] for t in b["new_by_township"]] == ["城关镇"]
    assert len(b["ranking"]) == 3


def test_month_bulletin_and_custom_weights(campaign: Campaign) -> None:
    b = bulletin(campaign, period="2026-11")
    assert (b["first_day"], b["last_day"]) == ("2026-11-01", "2026-11-30")
    assert (b["new_total"], b["rectified_on_time"], b["rectified_late"], b["still_overdue"]) == (7, 3, 2, 1)
    weights = {"on_time_rate": 100, "problems_per_village": 0, "overdue": 0, "recurrences": 0}
    settings = campaign.settings.model_copy(update={"ranking_weights": weights})
    from inference_api import bulletin as computation
    from inference_api.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        ranked = computation.make(session, settings, computation.parse_period("2026-W48"), REGION)
    engine.dispose()
    # On-time rate alone: 石桥乡 1.0, 河口镇 0.5, 城关镇 0.
    assert [(r.township, r.score) for r in ranked.ranking] == [("石桥乡", 100.0), ("河口镇", 50.0), ("城关镇", 0.0)]


def test_empty_period_and_unknown_region_give_a_clear_page(campaign: Campaign) -> None:
    c = campaign
    early = bulletin(c, period="2026-W40")
    assert early["empty"] is True and early["new_total"] == 0 and early["ranking"] == []
    nowhere = bulletin(c, period="2026-W48", region="无名县")
    assert nowhere["empty"] is True and nowhere["ranking"] == [] and nowhere["photos"] == []
    with c.client() as client:
        for params in ({"period": "2026-W40"}, {"period": "2026-W48", "region": "无名县"}):
            page = client.get("/v1/bulletin.html", params={"region": REGION, **params})
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert 'id="empty"' in page.text and "没有新发现、整改或超期的问题记录" in page.text


@pytest.mark.parametrize("period", ["2026-W54", "2026-13", "W48", "2026-W48x", "48"])
def test_bad_period_is_422(campaign: Campaign, period: str) -> None:
    with campaign.client() as client:
        response = client.get("/v1/bulletin", params={"region": REGION, "period": period})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


def test_region_is_required(campaign: Campaign) -> None:
    with campaign.client() as client:
        assert client.get("/v1/bulletin", params={"period": "2026-W48"}).status_code == 422


# ---------------------------------------------------------------- the page, the CLI and the spreadsheets


def _numbers(page: str) -> dict[str, str]:
    return dict(re.findall(r'<strong id="([a-z-]+)">(\d+)</strong>', page))


def test_cli_writes_the_same_bulletin_as_the_api(
    campaign: Campaign, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    c = campaign
    for name in ("database_url", "data_dir", "timezone"):
        monkeypatch.setenv(f"ENVWATCH_{name.upper()}", str(getattr(c.settings, name)))
    monkeypatch.setenv("ENVWATCH_DEADLINE_DAYS", json.dumps(c.settings.deadline_days))
    from inference_api.settings import get_settings

    get_settings.cache_clear()
    try:
        code = cli.main(
            ["bulletin", "--period", "2026-W48", "--region", REGION, "--out", str(tmp_path), "--base-url", c.url]
        )
    finally:
        get_settings.cache_clear()
    assert code == 0
    written = json.loads(capsys.readouterr().out)
    page = Path(written["html"]).read_text()
    assert Path(written["html"]).name == "bulletin-2026-W48-青山县.html"
    assert _numbers(page) == {"new-total": "4", "on-time": "1", "late": "2", "still-overdue": "1", "recurrences": "1"}
    with c.client() as client:
        served = client.get("/v1/bulletin.html", params={"region": REGION, "period": "2026-W48"}).text
    assert _numbers(served) == _numbers(page)
    assert page.count("data:image/jpeg;base64,") == 4  # d, e1, e2, f: one photo each, boxes drawn
    assert f'href="{c.url}/#/findings/{c.ids["e2"]}"' in page
    ranking = re.findall(r'data-township="([^"]+)"><td>(\d+)</td>', page)
    assert ranking == [("石桥乡", "1"), ("河口镇", "2"), ("城关镇", "3")]

    book = load_workbook(written["xlsx"])
    assert book.sheetnames == ["乡镇排名", "超期未改", "逾期整改", "反弹问题"]
    rows = list(book["乡镇排名"].iter_rows(values_only=True))
    assert rows[0][:5] == ("名次", "乡镇", "得分", "上期名次", "名次变化")
    assert [r[:5] for r in rows[1:]] == [(1, "石桥乡", 60, 1, 0), (2, "河口镇", 20, 3, 1), (3, "城关镇", -30, 1, -2)]
    overdue = book["超期未改"]
    assert overdue["A2"].value == c.ids["e2"] and overdue["A2"].hyperlink.target == f"{c.url}/#/findings/{c.ids['e2']}"
    assert overdue["E2"].value == datetime(2026, 11, 24) and overdue["E2"].number_format == "yyyy-mm-dd"
    late = {r[0]: r[5] for r in book["逾期整改"].iter_rows(min_row=2, values_only=True)}
    assert late[c.ids["b"]] == datetime(2026, 11, 24, 10, 0)  # Shanghai wall-clock time, a real date
    recurrence = list(book["反弹问题"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[6]) for r in recurrence] == [(c.ids["d"], c.ids["a"])]


def test_bulletin_xlsx_from_the_api(campaign: Campaign) -> None:
    with campaign.client() as client:
        response = client.get("/v1/bulletin.xlsx", params={"region": REGION, "period": "2026-W47"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    rows = list(load_workbook(io.BytesIO(response.content))["乡镇排名"].iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (1, "城关镇", 50, None),
        (1, "石桥乡", 50, None),
        (3, "河口镇", -15, None),
    ]


def test_ledger_and_summary_xlsx(campaign: Campaign) -> None:
    c = campaign
    with c.client() as client:
        ledger = client.get("/v1/findings.xlsx", params={"region": REGION, "sort": "id"})
        listed = client.get("/v1/findings", params={"region": REGION, "limit": 1000}).json()
        summary_book = client.get("/v1/findings/summary.xlsx", params={"region": REGION})
    assert ledger.status_code == 200 and int(ledger.headers["x-total-count"]) == listed["total"]
    sheet = load_workbook(io.BytesIO(ledger.content))["问题台账"]
    header = [cell.value for cell in sheet[1]]
    assert header[:7] == ["编号", "问题类型", "置信度", "状态", "区县", "乡镇", "村"]
    rows = {row[0].value: row for row in sheet.iter_rows(min_row=2)}
    assert len(rows) == listed["total"]
    col = {name: header.index(name) for name in header}
    e2 = rows[c.ids["e2"]]
    assert e2[0].hyperlink.target == f"{c.url}/#/findings/{c.ids['e2']}"
    assert e2[col["状态"]].value == "整改中" and e2[col["超期未改"]].value == "是"
    assert e2[col["整改时限"]].value == datetime(2026, 11, 24)
    observed = e2[col["发现时间（Asia/Shanghai）"]].value
    assert observed == datetime(2026, 11, 23, 9, 0) and e2[col["发现时间（Asia/Shanghai）"]].number_format.startswith(
        "yyyy"
    )
    assert rows[c.ids["b"]][col["逾期整改"]].value == "是" and rows[c.ids["f"]][col["逾期整改"]].value == "否"
    assert rows[c.ids["d"]][col["反弹自"]].value == c.ids["a"]
    assert rows[c.ids["d"]][col["乡镇"]].value == "城关镇" and rows[c.ids["d"]][col["村"]].value == "东村"

    summary = load_workbook(io.BytesIO(summary_book.content))["分区汇总"]
    head = [cell.value for cell in summary[1]]
    county = [cell for cell in summary[2]]
    assert county[0].value == REGION and county[0].hyperlink.target.startswith(f"{c.url}/#/findings?")
    assert county[head.index("问题总数")].value == listed["total"]
    assert (county[head.index("超期未改")].value, county[head.index("逾期整改")].value) == (1, 2)
    assert summary.cell(summary.max_row, 1).value == "合计"


def test_xlsx_keeps_formula_like_text_as_text(campaign: Campaign) -> None:
    """A village typed as a formula is stored as that text in the .xlsx, never run."""
    c = campaign
    with c.client() as client:
        response = client.post(
            "/v1/inspections",
            files=[("files", ("evil.jpg", plain_photo(7), "image/jpeg"))],
            data={"region": '=HYPERLINK("http://x")', "village": "=1+1", "conf": "0.001"},
        )
        assert response.status_code == 201
        sheet = client.get("/v1/findings.xlsx", params={"inspection_id": response.json()["id"]})
    row = list(load_workbook(io.BytesIO(sheet.content))["问题台账"].iter_rows(min_row=2, max_row=2))[0]
    assert row[4].value == '=HYPERLINK("http://x")' and row[4].data_type == "s"
    assert row[6].value == "=1+1" and row[6].data_type == "s"


def test_recurrence_by_distance_needs_gps_nearby_and_a_close_before(campaign: Campaign) -> None:
    """Another county, other villages: only GPS can tie these findings to the closed one."""
    c = campaign
    photo = sorted(GARBAGE_IMAGES.glob("*.jpg"))[8]
    lat, lon = 28.70000, 113.60000

    def raise_at(dlat: float, taken: str, village: str) -> dict:
        with c.client() as client:
            response = client.post(
                "/v1/inspections",
                files=[("files", ("gps.jpg", with_exif(photo, lat + dlat, lon, 30.0, taken), "image/jpeg"))],
                data={"region": "临水县", "township": "甲镇", "village": village, "conf": "0.001"},
            )
        assert response.status_code == 201, response.text
        return max(response.json()["findings"], key=lambda f: (f["score"], -f["id"]))

    c.clock.set("2026-12-01 10:00")
    first = raise_at(0.0, "2026:11:30 09:00:00", "甲村")
    with c.client() as client:
        for step in ({"to": "confirmed"}, {"to": "rectification_ordered", "deadline_days": 0}):
            assert client.post(f"/v1/findings/{first['id']}/transitions", json=step).status_code == 200
        assert client.post(f"/v1/findings/{first['id']}/rectification").status_code == 200
        assert client.post(f"/v1/findings/{first['id']}/transitions", json={"to": "closed"}).status_code == 200
    near = raise_at(0.00018, "2026:12:01 11:00:00", "乙村")  # 20 m north, an hour after the close
    far = raise_at(0.0045, "2026:12:01 11:05:00", "丙村")  # 500 m north
    earlier = raise_at(0.00018, "2026:12:01 09:30:00", "丁村")  # 20 m, but photographed before the close
    assert (near["type"], near["recurrence_of"]) == (first["type"], first["id"])
    assert far["recurrence_of"] is None and earlier["recurrence_of"] is None


def test_cli_refuses_a_bad_period_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert cli.main(["bulletin", "--period", "2026-W60", "--region", REGION, "--out", str(out)]) == 2
    assert "no such ISO week" in capsys.readouterr().err and not out.exists()


def test_photo_taken_in_the_week_but_uploaded_after_it_ranks_its_township(campaign: Campaign) -> None:
    c = campaign
    c.clock.set("2026-12-01 10:00")  # W49; the photo was taken on W48's Sunday
    photo = with_exif(sorted(GARBAGE_IMAGES.glob("*.jpg"))[9], 28.8, 113.7, 40.0, "2026:11:29 15:00:00")
    with c.client() as client:
        response = client.post(
            "/v1/inspections",
            files=[("files", ("late-upload.jpg", photo, "image/jpeg"))],
            data={"region": "远山县", "township": "新镇", "village": "新村", "conf": "0.001"},
        )
        assert response.status_code == 201
        raised = len(response.json()["findings"])
        b = client.get("/v1/bulletin", params={"region": "远山县", "period": "2026-W48"}).json()
    assert (b["new_total"], b["awaiting_review"], b["empty"]) == (0, raised, False)
    assert [(r["township"], r["rank"], r["score"], r["villages"]) for r in b["ranking"]] == [("新镇", 1, 60.0, 1)]
