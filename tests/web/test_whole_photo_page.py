"""The page shows a whole-photo problem as such: a frame along the photo's edge and "whole photo", no box."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_helpers import GARBAGE_IMAGES, Server, screenshot, sign_in, upload, wait_for_images


@pytest.fixture(scope="module")
def service_model(whole_photo_onnx: Path) -> Path:
    """The model of tests/conftest.py that raises burning on the whole of every photo."""
    return whole_photo_onnx


def test_finding_page_marks_a_whole_photo_problem(open_page, server: Server, inspector_key: str) -> None:
    photo = sorted(GARBAGE_IMAGES.glob("*.jpg"))[0]
    with server.client(inspector_key) as client:
        body = upload(client, photo.read_bytes(), photo.name)
    (finding,) = [f for f in body["findings"] if f["type"] == "burning"]
    assert finding["extent"] == "photo"
    width, height = body["files"][0]["image"]["width"], body["files"][0]["image"]["height"]

    page = open_page(server)
    sign_in(page, inspector_key)
    page.goto(f"/#/findings/{finding['id']}")
    page.wait_for_selector("figure.photo svg g.box.whole")
    frame = page.locator("figure.photo svg g.box.whole rect").first
    x, y = float(frame.get_attribute("x")), float(frame.get_attribute("y"))
    w, h = float(frame.get_attribute("width")), float(frame.get_attribute("height"))
    assert x < 10 and y < 10 and w > width - 20 and h > height - 20, "the frame runs along the photo's edge"
    assert frame.get_attribute("stroke-dasharray"), "dashed, unlike a detector's box"
    tag = page.locator("figure.photo svg g.box.whole text").first.text_content()
    details = page.locator(".finding-layout").inner_text()
    assert ("whole photo" in tag or "整张照片" in tag) and ("whole photo" in details or "整张照片" in details)
    wait_for_images(page, ".photos")
    screenshot(page, "finding-whole-photo")
