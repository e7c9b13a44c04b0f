"""The issue's acceptance run, in headless Chromium against a running server, as an inspector would.

Sign in; upload a real photo from the shared datasets that the shipped model flags; see its box
and problem; confirm it; order rectification; upload a follow-up photo and mark it rectified; see
before/after, and the ledger, the map and the summary change. What the page shows is checked
against what the API says, and screenshots of each screen are saved under build/screenshots/.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from playwright.sync_api import Page
from web_helpers import FLAGGED_PHOTO, FOLLOWUP_PHOTO, Server, geotagged, screenshot, sign_in, wait_for_images


def _finding_row_status(page: Page, finding_id: int) -> str | None:
    page.goto("/#/findings")
    page.wait_for_selector("#ledger-count")
    return page.get_attribute(f"tr[data-finding-id='{finding_id}']", "data-status")


def _map_point_status(page: Page, finding_id: int) -> str | None:
    page.goto("/#/map")
    page.wait_for_selector("#map-count")
    return page.get_attribute(f"a.point[data-finding-id='{finding_id}']", "data-status")


def test_upload_review_rectify_and_see_ledger_map_and_summary_update(
    open_page, server: Server, inspector_key: str, tmp_path: Path
) -> None:
    photo = tmp_path / "平江-三墩村-垃圾桶.jpg"
    photo.write_bytes(geotagged(FLAGGED_PHOTO))
    page = open_page(server)
    assert page.get_attribute("html", "lang") == "zh-CN"
    sign_in(page, inspector_key)
    assert page.inner_text("h1") == "上传巡查照片"

    # Upload: per-file progress, then the photo with its box and the problem in Chinese and English.
    page.set_input_files("#files", str(photo))
    page.fill("#f-region", "平江县")
    page.fill("#f-village", "三墩村")
    page.fill("#f-note", "村口垃圾桶")
    page.click("form.upload-form button[type=submit]")
    page.wait_for_selector(".inspection")
    inspection_id = int(page.get_attribute(".inspection", "data-inspection-id"))
    with server.client(inspector_key) as client:
        inspection = client.get(f"/v1/inspections/{inspection_id}").json()
        taxonomy = {p["key"]: p for p in client.get("/v1/model").json()["problem_types"]}
    findings = inspection["findings"]
    assert findings, "the shipped model flags this photo at its own thresholds"
    assert page.get_attribute(".progress-row", "class").split()[-1] == "ok"
    assert page.locator(".file-result svg.boxes g.box").count() == len(findings)
    assert page.locator(".problem").count() == len(findings)
    first = findings[0]
    problem = page.locator(f".problem[data-finding-id='{first['id']}']")
    assert problem.locator(".zh").inner_text() == taxonomy[first["type"]]["name_zh"]
    assert problem.locator(".en").inner_text() == taxonomy[first["type"]]["name_en"]
    assert f"{first['score']:.2f}" in problem.inner_text()
    _box_is_drawn_where_the_api_says(page, first, inspection["files"][0]["image"])
    screenshot(page, "desktop-upload-result")

    # The ledger and the map before review: the new finding is a candidate.
    assert _finding_row_status(page, first["id"]) == "candidate"
    assert _map_point_status(page, first["id"]) == "candidate"

    # Review on the finding's page: confirm, order rectification, rectify with a follow-up photo.
    page.goto(f"/#/findings/{first['id']}")
    page.wait_for_selector("#finding-status[data-status='candidate']")
    page.fill("#f-note", "现场核实")
    page.click("button[data-to='confirmed']")
    page.wait_for_selector("#finding-status[data-status='confirmed']")
    assert page.locator("table.history tr[data-to='confirmed']").inner_text().count("现场核实") == 1
    page.click("button[data-to='rectification_ordered']")
    page.wait_for_selector("#finding-status[data-status='rectification_ordered']")
    page.set_input_files("#f-followup", str(FOLLOWUP_PHOTO))
    page.fill("#f-note", "已清运")
    page.click("button[data-to='rectified']")
    page.wait_for_selector("#finding-status[data-status='rectified']")
    wait_for_images(page, ".before-after")

    with server.client(inspector_key) as client:
        detail = client.get(f"/v1/findings/{first['id']}").json()
    assert detail["status"] == "rectified"
    steps = [h["to_status"] for h in detail["history"]]
    assert steps == ["candidate", "confirmed", "rectification_ordered", "rectified"]
    assert {h["actor"] for h in detail["history"][1:]} == {"inspector-wang"}
    followup = detail["history"][-1]
    assert followup["note"] == "已清运" and followup["image_id"] is not None
    figures = page.locator(".before-after figure")
    assert figures.count() == 2
    assert figures.nth(0).get_attribute("data-image-id") == str(first["image_id"])
    assert figures.nth(1).get_attribute("data-image-id") == str(followup["image_id"])
    assert figures.nth(1).get_attribute("data-boxes") == str(len(followup["followup_problems"]))
    screenshot(page, "desktop-finding-before-after")

    # The ledger and the map after: the same finding, now rectified; the map point opens it.
    assert _finding_row_status(page, first["id"]) == "rectified"
    page.goto("/#/findings?status=rectified")
    page.wait_for_selector("#ledger-count")
    with server.client(inspector_key) as client:
        rectified_total = client.get("/v1/findings", params={"status": "rectified"}).json()["total"]
    assert page.get_attribute("#ledger-count", "data-total") == str(rectified_total) == "1"
    screenshot(page, "desktop-ledger")
    assert _map_point_status(page, first["id"]) == "rectified"
    screenshot(page, "desktop-map")
    page.click(f"a.point[data-finding-id='{first['id']}']")
    page.wait_for_url(f"**/#/findings/{first['id']}")
    page.wait_for_selector("#finding-status[data-status='rectified']")

    # The summary: one rectified in 平江县, and the CSV export says the same.
    page.goto("/#/summary")
    card = page.locator("article.region[data-region='平江县']")
    card.wait_for()
    assert card.locator(".rectified").get_attribute("data-rectified") == "1"
    with page.expect_download() as download:
        page.click("#summary-csv")
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    row = next(r for r in csv.DictReader(io.StringIO(text)) if r["region"] == "平江县")
    assert row["rectified"] == "1" and int(row["total"]) == len(findings)
    screenshot(page, "desktop-summary")


def _box_is_drawn_where_the_api_says(page: Page, finding: dict, image: dict) -> None:
    """The SVG box sits on the photo where the API's pixel box is, at the size the photo is shown."""
    wait_for_images(page, ".file-result")
    shown = page.locator(".file-result img").first.bounding_box()
    rect = page.locator(".file-result svg.boxes g.box rect").first.bounding_box()
    assert shown and rect
    scale = shown["width"] / image["width"]
    box = finding["box"]
    assert abs(rect["x"] - (shown["x"] + box["x1"] * scale)) < 3
    assert abs(rect["y"] - (shown["y"] + box["y1"] * scale)) < 3
    assert abs(rect["width"] - (box["x2"] - box["x1"]) * scale) < 4
    assert abs(shown["height"] / shown["width"] - image["height"] / image["width"]) < 0.02
