"""The bulletin in Chromium: the page's screen, the printable A4 page, and the deadline marks of the ledger.

The ledger is tests/service/campaign.py's two weeks on a controlled clock; the numbers the screen
and the printed page show are those test_bulletin.py works out by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from campaign import ADMIN_KEY, REGION, Campaign, in_process_server, play
from playwright.sync_api import Browser, Page
from web_helpers import SCREENSHOTS, screenshot, sign_in, wait_for_images

A4 = {"width": 794, "height": 1123}
"""A4 at 96 dpi: what the printable page is laid out for."""


@pytest.fixture(scope="module")
def campaign(database_url: str, service_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    with in_process_server(database_url, tmp_path_factory.mktemp("campaign"), service_model, "2026-11-16 08:00") as c:
        play(c)
        yield c


def test_bulletin_screen_shows_the_weeks_numbers(campaign: Campaign, open_page: Callable[..., Page]) -> None:
    page = open_page(campaign)
    sign_in(page, ADMIN_KEY)
    page.goto(f"/#/bulletin?period=2026-W48&region={REGION}")
    rectification = page.locator("#bulletin-rectification")
    rectification.wait_for()
    assert (rectification.get_attribute("data-on-time"), rectification.get_attribute("data-late")) == ("1", "2")
    assert rectification.get_attribute("data-overdue") == "1"
    rows = page.locator("#bulletin-ranking tbody tr")
    assert [rows.nth(i).get_attribute("data-township") for i in range(rows.count())] == ["石桥乡", "河口镇", "城关镇"]
    assert rows.nth(1).locator(".up").inner_text() == "↑1" and rows.nth(2).locator(".down").inner_text() == "↓2"
    assert page.locator("#bulletin-recurrences tbody tr").count() == 1
    assert page.locator("#bulletin-overdue tbody tr").inner_text().startswith(f"#{campaign.ids['e2']}")
    # Times are the offices' (Asia/Shanghai) whatever the browser's zone: b was rectified at 10:00 there.
    late = page.locator("#bulletin-late tbody tr").filter(has_text=f"#{campaign.ids['b']}")
    assert "10:00" in late.inner_text()
    assert page.locator(".bulletin-photos figure").count() == 4
    wait_for_images(page, ".bulletin-photos")
    screenshot(page, "desktop-bulletin")

    with page.expect_download() as download:
        page.click("#bulletin-html")
    assert download.value.suggested_filename == f"bulletin-2026-W48-{REGION}.html"

    page.goto(f"/#/bulletin?period=2026-W40&region={REGION}")
    page.locator("#bulletin-empty").wait_for()
    screenshot(page, "desktop-bulletin-empty")


def test_printable_bulletin_fits_a4(campaign: Campaign, browser: Browser) -> None:
    with campaign.client() as client:
        html = client.get("/v1/bulletin.html", params={"region": REGION, "period": "2026-W48"}).text
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "bulletin-2026-W48.html").write_text(html)
    context = browser.new_context(viewport=A4, locale="zh-CN")
    try:
        page = context.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.set_content(html, wait_until="load")
        assert [url for url in requests if not url.startswith("data:")] == []  # self-contained: nothing fetched
        widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"wider than A4: {widths}"
        loaded = page.evaluate("() => [...document.images].map((i) => i.complete && i.naturalWidth > 0)")
        assert loaded == [True] * 4
        assert page.locator("#new-total").inner_text() == "4" and page.locator("#still-overdue").inner_text() == "1"
        page.screenshot(path=str(SCREENSHOTS / "bulletin-a4.png"), full_page=True)
        pdf = page.pdf(format="A4", print_background=True)
        (SCREENSHOTS / "bulletin-2026-W48.pdf").write_bytes(pdf)
        pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
        assert 1 <= pages <= 3, f"{pages} A4 pages"
    finally:
        context.close()


def test_ledger_and_finding_show_deadlines_and_recurrences(campaign: Campaign, open_page: Callable[..., Page]) -> None:
    c = campaign
    page = open_page(c)
    sign_in(page, ADMIN_KEY)
    page.goto("/#/findings?overdue=true")
    page.locator("#ledger-count").wait_for()
    rows = page.locator("table.ledger tbody tr")
    assert rows.count() == 1 and rows.first.get_attribute("data-finding-id") == str(c.ids["e2"])
    assert rows.first.locator(".mark.overdue").count() == 1
    screenshot(page, "desktop-ledger-overdue")

    page.goto(f"/#/findings/{c.ids['d']}")
    link = page.locator("#recurrence-of")
    link.wait_for()
    assert link.get_attribute("href") == f"#/findings/{c.ids['a']}"
    # The picker offers no day before the browser's real today and the server none before its own (the
    # campaign's 2026-12-01): a week after the real today passes both, whenever the suite runs.
    due = (date.today() + timedelta(days=7)).isoformat()
    page.fill("#f-deadline", due)
    page.click("button[data-to=rectification_ordered]")
    page.locator("#finding-status[data-status=rectification_ordered]").wait_for()
    assert page.locator("#finding-deadline").inner_text() == due
    screenshot(page, "desktop-finding-deadline")
    with c.client() as client:
        assert client.get(f"/v1/findings/{c.ids['d']}").json()["deadline"] == due

    page.goto("/#/summary")
    page.locator(f"article.region[data-region='{REGION}'] [data-overdue]").wait_for()
    card = page.locator(f"article.region[data-region='{REGION}']")
    assert card.locator("[data-overdue]").get_attribute("data-overdue") == "1"
    assert card.locator("[data-late]").get_attribute("data-late") == "2"
