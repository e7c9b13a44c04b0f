"""Shared by the web page tests: viewports, the photos they upload, and steps done through the API.

A plain module (not conftest) so test modules can import these names directly; it puts
tests/service on the path so the service's helpers (`Server`, `with_exif`) are reused, not copied.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
from playwright.sync_api import Page

SERVICE_TESTS = Path(__file__).resolve().parents[1] / "service"
sys.path.insert(0, str(SERVICE_TESTS))

from service_helpers import GARBAGE_IMAGES, Server, with_exif  # noqa: E402

__all__ = ["GARBAGE_IMAGES", "Server", "with_exif"]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "screenshots"
DESKTOP = {"width": 1024, "height": 768}
TABLET = {"width": 768, "height": 1024}
PHONE = {"width": 390, "height": 844}
PHONE_CONTEXT = {"has_touch": True, "is_mobile": True}
"""A phone: touch, and the viewport meta tag honoured as a phone's browser does."""


def _first_clearly_flagged(photos: list[Path]) -> Path:
    """The first photo the promoted model raises exactly one problem on, overflowing garbage, scored >= 0.6.

    Chosen by the model rather than named, so promoting another version does not break the walk.
    """
    from model.images import load_image_file
    from model.problems import problems_from
    from model.runtime import Detector

    detector = Detector.load()
    for photo in photos:
        (found,) = detector.detect([load_image_file(photo).pixels])
        problems = problems_from(found)
        if len(problems) == 1 and problems[0].type == "overflowing_garbage" and problems[0].score >= 0.6:
            return photo
    raise AssertionError(f"the promoted model clearly flags none of {len(photos)} garbage-cn photos")


FLAGGED_PHOTO = _first_clearly_flagged(sorted(GARBAGE_IMAGES.glob("*.jpg"))[:40])
"""A garbage-cn validation photo (an overflowing bin) the promoted model flags at its own thresholds."""
FOLLOWUP_PHOTO = GARBAGE_IMAGES / "000014.jpg"
"""Another garbage-cn photo, uploaded as the follow-up after rectification."""


def geotagged(photo: Path, lat: float = 28.7046, lon: float = 113.5931) -> bytes:
    """`photo` with EXIF GPS (a village in 平江县, Hunan) and a capture time, so it lands on the map."""
    return with_exif(photo, lat=lat, lon=lon, alt=80, taken="2024:05:01 09:30:00")


def sign_in(page: Page, key: str) -> None:
    """Sign in through the form, as a person would, and wait for the header to show who is in."""
    page.fill("#f-key", key)
    page.click("form.signin button[type=submit]")
    page.wait_for_selector("#who")


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as build/screenshots/<name>.png (a test artefact to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_for_images(page: Page, selector: str) -> None:
    """Wait until every <img> under `selector` has loaded (they are fetched with the key, then shown).

    Waits take functions, not expressions: Playwright polls an expression with eval, which the
    page's Content-Security-Policy (rightly) forbids.
    """
    page.wait_for_function(
        "selector => [...document.querySelectorAll(selector + ' img')].every(i => i.complete && i.naturalWidth)",
        arg=selector,
    )


def tab_to(page: Page, selector: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches `selector`: reachable by keyboard, or fail."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("selector => document.activeElement.matches(selector)", selector):
            return
    raise AssertionError(f"{selector} not reached with {limit} presses of Tab")


def focus_is_visible(page: Page) -> bool:
    """Whether the focused element draws a focus outline (the page's :focus-visible style)."""
    return page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; }"
    )


def upload(client: httpx.Client, photo: bytes, name: str, **form: str) -> dict:
    """POST one photo as an inspection through the API; the inspection's JSON."""
    response = client.post("/v1/inspections", files=[("files", (name, photo, "image/jpeg"))], data=form)
    assert response.status_code == 201, response.text
    return response.json()


def rectify(client: httpx.Client, finding_id: int, followup: bytes) -> dict:
    """Confirm, order rectification and report it rectified with `followup`; the finding's JSON."""
    for to in ("confirmed", "rectification_ordered"):
        moved = client.post(f"/v1/findings/{finding_id}/transitions", json={"to": to})
        assert moved.status_code == 200, moved.text
    done = client.post(
        f"/v1/findings/{finding_id}/rectification",
        data={"note": "cleared"},
        files={"file": ("after.jpg", followup, "image/jpeg")},
    )
    assert done.status_code == 200, done.text
    return done.json()
