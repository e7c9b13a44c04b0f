"""Every main screen fits a 1024×768 laptop, a 768-wide tablet and a 390×844 phone (touch): no sideways
scrolling, the whole navigation on screen. Screenshots of each screen at each size go to build/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page
from web_helpers import (
    DESKTOP,
    FLAGGED_PHOTO,
    FOLLOWUP_PHOTO,
    PHONE,
    PHONE_CONTEXT,
    TABLET,
    Server,
    geotagged,
    rectify,
    screenshot,
    sign_in,
    wait_for_images,
)
from web_helpers import upload as api_upload


@pytest.fixture(scope="module")
def reviewed(server: Server, inspector_key: str) -> dict:
    """An inspection with a rectified finding (before/after) and a candidate, from the API."""
    with server.client(inspector_key) as client:
        inspection = api_upload(
            client, geotagged(FLAGGED_PHOTO), "村口垃圾桶.jpg", region="平江县", township="三市镇", village="三墩村"
        )
        assert inspection["findings"], "the shipped model flags this photo at its own thresholds"
        finding = rectify(client, inspection["findings"][0]["id"], FOLLOWUP_PHOTO.read_bytes())
    return {"inspection": inspection, "finding": finding}


def _fits(page: Page, width: int) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url}: {overflow}px wider than the window"
    for link in page.locator("#nav a").all():
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, f"nav link off screen: {link.inner_text()}"


@pytest.mark.parametrize("viewport", [DESKTOP, TABLET, PHONE], ids=["1024x768", "768x1024", "390x844"])
def test_main_screens_fit_laptop_tablet_and_phone(
    open_page, server: Server, inspector_key: str, reviewed: dict, viewport: dict[str, int]
) -> None:
    finding, inspection = reviewed["finding"], reviewed["inspection"]
    screens = {
        "upload-result": (f"/#/inspections/{inspection['id']}", ".file-result img"),
        "ledger": ("/#/findings", "table.ledger"),
        "finding-before-after": (f"/#/findings/{finding['id']}", ".before-after img"),
        "map": ("/#/map", "a.point"),
        "summary": ("/#/summary", "article.region"),
        "bulletin": ("/#/bulletin?region=平江县", "#bulletin-ranking"),
        "labels": ("/#/labels", "table.label-counts"),
        "jobs": ("/#/jobs", "form.job-form"),
        "upload": ("/#/upload", "#files"),
        "queue": ("/#/queue", "#queue[data-waiting]"),
    }
    page = open_page(server, viewport, **(PHONE_CONTEXT if viewport is PHONE else {}))
    sign_in(page, inspector_key)
    size = f"{viewport['width']}x{viewport['height']}"
    for name, (path, ready) in screens.items():
        page.goto(path)
        page.wait_for_selector(ready)
        wait_for_images(page, "main")
        _fits(page, viewport["width"])
        screenshot(page, f"{size}-{name}")
    # Label mode with the keyboard's new box and its editor open beside (or below) the photo.
    page.goto(f"/#/inspections/{inspection['id']}")
    page.wait_for_selector(".labels-panel[data-count]")
    page.click("button.label-new")
    page.wait_for_selector("form.label-editor")
    _fits(page, viewport["width"])
    screenshot(page, f"{size}-label-mode")
    # On the finding's page the review controls are on screen without sideways scrolling.
    page.goto(f"/#/findings/{finding['id']}")
    button = page.locator("button[data-to='closed']")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box and box["x"] + box["width"] <= viewport["width"]
