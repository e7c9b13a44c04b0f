"""Labelling on the page (issue 6), in headless Chromium against a running server, checked through the API.

An inspector draws a box of a type the model cannot detect with the mouse, sees it after a
reload, moves, resizes and retypes it, deletes it; makes one with the keyboard alone; fixes a
finding's type and box; a read-only key sees labels but no controls (and the server refuses its
writes); the labels screen filters and exports. Boxes stored by the API are compared with what
was dragged on screen, within two screen pixels of the shown photo (the photo is scaled down to
fit, so one screen pixel is `scale` photo pixels) plus one for rounding to whole pixels.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import yaml
from PIL import Image
from playwright.sync_api import Locator, Page
from web_helpers import (
    FLAGGED_PHOTO,
    FOLLOWUP_PHOTO,
    GARBAGE_IMAGES,
    Server,
    focus_is_visible,
    geotagged,
    screenshot,
    sign_in,
    tab_to,
    upload,
    wait_for_images,
)

COORDS = ("x1", "y1", "x2", "y2")


def _inspection(server: Server, key: str, photo: bytes, name: str) -> dict:
    with server.client(key) as client:
        return upload(client, photo, name, region="平江县", village="三墩村")


def _enlarged(photo: Path, factor: int = 3) -> bytes:
    """`photo` cut to 4:3 and enlarged: shown scaled down (a screen pixel is `factor` photo pixels), not square."""
    image = Image.open(photo).convert("RGB")
    cut = image.crop((0, image.height // 8, image.width, image.height - image.height // 8))
    buffer = io.BytesIO()
    cut.resize((cut.width * factor, cut.height * factor), Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _labels(server: Server, key: str, **params: int | str) -> list[dict]:
    with server.client(key) as client:
        response = client.get("/v1/labels", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=10)
    page.mouse.up()


def _loaded_panel(page: Page, scope: str, image_id: int) -> Locator:
    """The labels section of photo `image_id` under `scope`, once its photo and labels have loaded."""
    wait_for_images(page, scope)
    page.wait_for_selector(f"{scope} .labels-panel[data-image-id='{image_id}'][data-count]")
    return page.locator(f"{scope} .labels-panel[data-image-id='{image_id}']")


def _screen_box(shown: dict, box: dict, scale: float) -> dict:
    """Where a photo-pixel `box` sits on screen, for a photo shown at `shown` (its bounding box)."""
    return {
        "x": shown["x"] + box["x1"] / scale,
        "y": shown["y"] + box["y1"] / scale,
        "width": (box["x2"] - box["x1"]) / scale,
        "height": (box["y2"] - box["y1"]) / scale,
    }


def _near(got: dict, want: dict, tolerance: float) -> bool:
    return all(abs(got[k] - want[k]) <= tolerance for k in want)


def test_draw_a_box_of_a_type_the_model_cannot_detect_then_move_resize_retype_and_delete_it(
    open_page, server: Server, inspector_key: str
) -> None:
    inspection = _inspection(server, inspector_key, _enlarged(FLAGGED_PHOTO), "村口.jpg")
    image = inspection["files"][0]["image"]
    with server.client(inspector_key) as client:
        taxonomy = client.get("/v1/model").json()["problem_types"]
    page = open_page(server)
    sign_in(page, inspector_key)
    page.goto(f"/#/inspections/{inspection['id']}")
    panel = _loaded_panel(page, ".file-result", image["id"])
    assert panel.locator("li.label-item").count() == 0

    # Label mode on, then a drag from 20%,30% to 60%,70% of the shown photo.
    panel.locator("button.label-mode").click()
    assert panel.locator("button.label-mode").get_attribute("aria-pressed") == "true"
    shown = page.locator(".file-result img").bounding_box()
    assert shown
    scale = image["width"] / shown["width"]
    assert scale > 2 and abs(shown["height"] * scale - image["height"]) < scale, "shown scaled down, aspect kept"
    tolerance = 2 * scale + 1
    start = (shown["x"] + shown["width"] * 0.2, shown["y"] + shown["height"] * 0.3)
    end = (shown["x"] + shown["width"] * 0.6, shown["y"] + shown["height"] * 0.7)
    _drag(page, start, end)
    editor = panel.locator("form.label-editor")
    editor.wait_for()
    assert page.evaluate("document.activeElement.name") == "type", "after drawing, the type is next"

    # Every type of the taxonomy can be chosen, in Chinese and English, the undetectable ones too.
    options = {o.get_attribute("value"): o.inner_text() for o in editor.locator("select[name=type] option").all()}
    assert {p["key"] for p in taxonomy} <= set(options)
    assert options["illegal_structure"] == "乱搭乱建 / Illegal makeshift structure"
    undetectable = editor.locator("optgroup").nth(1)
    assert undetectable.get_attribute("label") == "模型尚不能检测"
    assert undetectable.locator("option").count() == sum(not p["detectable"] for p in taxonomy) >= 6
    editor.locator("select[name=type]").select_option("illegal_structure")
    editor.locator("textarea[name=note]").fill("村口新搭的棚子")
    screenshot(page, "desktop-label-draw")
    editor.locator("button[data-action=save]").click()
    panel.locator("li.label-item").wait_for()

    [label] = _labels(server, inspector_key, image_id=image["id"])
    assert (label["type"], label["source"], label["note"]) == ("illegal_structure", "manual", "村口新搭的棚子")
    assert label["created_by"] == "inspector-wang" and label["finding_id"] is None
    dragged = {
        "x1": (start[0] - shown["x"]) * scale,
        "y1": (start[1] - shown["y"]) * scale,
        "x2": (end[0] - shown["x"]) * scale,
        "y2": (end[1] - shown["y"]) * scale,
    }
    assert _near(label["box"], dragged, tolerance), (label["box"], dragged, tolerance)

    # After a reload it is listed and drawn where the API says, dashed, apart from the model's boxes.
    page.reload()
    panel = _loaded_panel(page, ".file-result", image["id"])
    item = panel.locator(f"li.label-item[data-label-id='{label['id']}']")
    assert "乱搭乱建" in item.inner_text() and "村口新搭的棚子" in item.inner_text()
    drawn = page.locator(f".file-result svg.labels g.label-box[data-label-id='{label['id']}']")
    assert "t-illegal_structure" in drawn.get_attribute("class")
    assert drawn.locator("rect.edge").get_attribute("stroke-dasharray")
    assert page.locator(".file-result svg.boxes g.box").count() == len(inspection["findings"])
    shown = page.locator(".file-result img").bounding_box()  # again: a reload or a focus may scroll the page
    edge = drawn.locator("rect.edge").bounding_box()
    assert shown and edge and _near(edge, _screen_box(shown, label["box"], scale), 3)
    screenshot(page, "desktop-label-saved")

    # Edit: drag the box 40,25 screen px, drag its bottom-right corner 30,20 further, retype it.
    item.locator("button[data-action=edit]").click()
    box = page.locator(".file-result .editbox")
    at = box.bounding_box()
    shown = page.locator(".file-result img").bounding_box()
    assert shown
    assert at and _near(at, _screen_box(shown, label["box"], scale), 3)
    centre = (at["x"] + at["width"] / 2, at["y"] + at["height"] / 2)
    _drag(page, centre, (centre[0] + 40, centre[1] + 25))
    corner = page.locator(".file-result .editbox .handle.se").bounding_box()
    assert corner
    handle = (corner["x"] + corner["width"] / 2, corner["y"] + corner["height"] / 2)
    _drag(page, handle, (handle[0] + 30, handle[1] + 20))
    editor = panel.locator("form.label-editor")
    editor.locator("select[name=type]").select_option("clutter_pile")
    screenshot(page, "desktop-label-edit")
    editor.locator("button[data-action=save]").click()
    panel.locator("li.label-item[data-type='clutter_pile']").wait_for()
    [edited] = _labels(server, inspector_key, image_id=image["id"])
    old = label["box"]
    moved = {
        "x1": old["x1"] + 40 * scale,
        "y1": old["y1"] + 25 * scale,
        "x2": old["x2"] + 70 * scale,
        "y2": old["y2"] + 45 * scale,
    }
    assert edited["id"] == label["id"] and edited["type"] == "clutter_pile"
    assert edited["updated_by"] == "inspector-wang"
    assert _near(edited["box"], moved, tolerance), (edited["box"], moved, tolerance)

    # Delete, after confirming on the page: gone from the list, the photo and the API's list; the row is kept.
    panel.locator(f"li[data-label-id='{label['id']}'] button[data-action=delete]").click()
    panel.locator("button[data-action=confirm-delete]").click()
    panel.locator("li.label-item").wait_for(state="detached")
    assert page.locator(".file-result svg.labels g.label-box").count() == 0
    assert _labels(server, inspector_key, image_id=image["id"]) == []
    with server.client(inspector_key) as client:
        assert client.get(f"/v1/labels/{label['id']}").json()["deleted_by"] == "inspector-wang"


def _js_round(value: float) -> int:
    """JavaScript's Math.round (halves go up), which the page uses, unlike Python's round."""
    return math.floor(value + 0.5)


def test_a_box_made_with_the_keyboard_alone(open_page, server: Server, inspector_key: str) -> None:
    inspection = _inspection(server, inspector_key, FOLLOWUP_PHOTO.read_bytes(), "followup.jpg")
    image = inspection["files"][0]["image"]
    width, height = image["width"], image["height"]
    page = open_page(server)
    sign_in(page, inspector_key)
    page.goto(f"/#/inspections/{inspection['id']}")
    panel = _loaded_panel(page, ".file-result", image["id"])

    tab_to(page, "button.label-new")
    assert focus_is_visible(page)
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.classList.contains('editbox')"), "the new box takes focus"
    assert focus_is_visible(page)
    # From the middle quarter: 3 steps right, 10 down (Shift), 2 wider (Ctrl), 10 shorter (Ctrl+Shift).
    for key in ["ArrowRight"] * 3 + ["Shift+ArrowDown"] + ["Control+ArrowRight"] * 2 + ["Control+Shift+ArrowUp"]:
        page.keyboard.press(key)
    step = max(1, _js_round(max(width, height) / 100))
    w, h = _js_round(width / 4), _js_round(height / 4)
    x1, y1 = _js_round((width - w) / 2) + 3 * step, _js_round((height - h) / 2) + 10 * step
    expected = {"x1": x1, "y1": y1, "x2": x1 + w + 2 * step, "y2": y1 + h - 10 * step}
    editor = panel.locator("form.label-editor")
    assert {k: int(editor.locator(f"input[name={k}]").input_value()) for k in COORDS} == expected

    # Enter goes on to the type; arrow keys choose the fourth type (the first the model cannot detect).
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.name") == "type"
    for _ in range(4):
        page.keyboard.press("ArrowDown")
    assert editor.locator("select[name=type]").input_value() == "illegal_structure"
    # x1 can also be typed: the box follows (its width changes, its other corner stays).
    tab_to(page, "form.label-editor input[name=x1]")
    page.keyboard.press("Control+A")
    page.keyboard.type(str(step))
    page.keyboard.press("Tab")
    expected["x1"] = step
    screenshot(page, "desktop-label-keyboard")
    tab_to(page, "form.label-editor button[data-action=save]")
    assert focus_is_visible(page)
    page.keyboard.press("Enter")
    panel.locator("li.label-item").wait_for()

    [label] = _labels(server, inspector_key, image_id=image["id"])
    assert label["type"] == "illegal_structure"
    assert label["box"] == {k: float(v) for k, v in expected.items()}
    assert page.evaluate("document.activeElement.dataset.labelId") == str(label["id"]), "focus lands on the saved label"


def test_fix_a_findings_type_and_box(open_page, server: Server, inspector_key: str) -> None:
    inspection = _inspection(server, inspector_key, geotagged(FLAGGED_PHOTO), "geotagged.jpg")
    finding = inspection["findings"][0]
    image = inspection["files"][0]["image"]
    page = open_page(server)
    sign_in(page, inspector_key)
    page.goto(f"/#/findings/{finding['id']}")
    panel = _loaded_panel(page, ".finding-layout", image["id"])

    panel.locator("button.label-fix").click()
    editor = panel.locator(f"form.label-editor[data-finding-id='{finding['id']}']")
    assert editor.locator("select[name=type]").input_value() == finding["type"]
    assert int(editor.locator("input[name=x2]").input_value()) == _js_round(finding["box"]["x2"])
    editor.locator("select[name=type]").select_option("clutter_pile")
    editor.locator("button[data-action=save]").click()
    panel.locator("li.label-item[data-source='correction']").wait_for()

    [correction] = _labels(server, inspector_key, finding_id=finding["id"])
    assert (correction["type"], correction["source"]) == ("clutter_pile", "correction")
    assert correction["box"] == finding["box"], "the box was not touched, so the finding's exact box is kept"
    assert correction["proposed_by"] == finding["model_version"]
    assert "乱堆乱放" in panel.locator("li.label-item").inner_text()

    # Fix it again: the same correction is edited (no second one); its box is re-drawn by dragging.
    panel.locator("button.label-fix").click()
    shown = page.locator(".finding-layout figure img").first.bounding_box()
    assert shown
    scale = image["width"] / shown["width"]
    start = (shown["x"] + shown["width"] * 0.1, shown["y"] + shown["height"] * 0.1)
    end = (shown["x"] + shown["width"] * 0.5, shown["y"] + shown["height"] * 0.45)
    _drag(page, start, end)
    screenshot(page, "desktop-finding-correction")
    panel.locator("form.label-editor button[data-action=save]").click()
    panel.locator("form.label-editor").wait_for(state="detached")
    [redrawn] = _labels(server, inspector_key, finding_id=finding["id"])
    assert redrawn["id"] == correction["id"] and redrawn["type"] == "clutter_pile"
    want = {"x1": shown["width"] * 0.1 * scale, "y1": shown["height"] * 0.1 * scale,
            "x2": shown["width"] * 0.5 * scale, "y2": shown["height"] * 0.45 * scale}  # fmt: skip
    assert _near(redrawn["box"], want, 2 * scale + 1), (redrawn["box"], want)


def test_a_read_only_key_sees_labels_but_no_labelling_controls(
    open_page, server: Server, inspector_key: str, integration_key: str
) -> None:
    inspection = _inspection(server, inspector_key, geotagged(FLAGGED_PHOTO, lat=28.9), "readonly.jpg")
    assert inspection["findings"], "the flagged photo gives the finding page to check"
    image = inspection["files"][0]["image"]
    box = {"x1": 10, "y1": 12, "x2": 200, "y2": 150}
    with server.client(inspector_key) as client:
        made = client.post("/v1/labels", json={"image_id": image["id"], "type": "illegal_ad", "box": box})
        assert made.status_code == 201, made.text
    label = made.json()
    page = open_page(server)
    sign_in(page, integration_key)
    page.goto(f"/#/inspections/{inspection['id']}")
    panel = _loaded_panel(page, ".file-result", image["id"])
    assert panel.locator(f"li.label-item[data-label-id='{label['id']}']").count() == 1
    assert page.locator(f".file-result svg.labels g.label-box[data-label-id='{label['id']}']").count() == 1
    controls = "button.label-mode, button.label-new, button.label-fix, button[data-action], .editbox, form.label-editor"
    assert page.locator(controls).count() == 0
    screenshot(page, "desktop-readonly-labels")

    page.goto(f"/#/findings/{inspection['findings'][0]['id']}")
    _loaded_panel(page, ".finding-layout", image["id"])
    assert page.locator(controls).count() == 0
    page.goto("/#/labels")
    page.wait_for_selector("#labels-count")
    assert page.locator(f"tr[data-label-id='{label['id']}']").count() == 1
    assert page.locator("#export-yolo").count() == 1 and page.locator("form.import-form").count() == 0

    with server.client(integration_key) as client:
        refused = [
            client.post("/v1/labels", json={"image_id": image["id"], "type": "illegal_ad", "box": box}),
            client.patch(f"/v1/labels/{label['id']}", json={"type": "clutter_pile"}),
            client.delete(f"/v1/labels/{label['id']}"),
        ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert _labels(server, inspector_key, image_id=image["id"]) == [label]


def test_labels_screen_filters_by_type_and_exports(open_page, server: Server, inspector_key: str) -> None:
    inspection = _inspection(server, inspector_key, geotagged(FLAGGED_PHOTO, lat=29.1), "exports.jpg")
    image = inspection["files"][0]["image"]
    made = {}
    with server.client(inspector_key) as client:
        for type_, box in (("floating_river_waste", (5, 5, 120, 90)), ("road_occupying_stall", (30, 40, 300, 260))):
            response = client.post(
                "/v1/labels", json={"image_id": image["id"], "type": type_, "box": dict(zip(COORDS, box, strict=True))}
            )
            assert response.status_code == 201, response.text
            made[type_] = response.json()
        total = client.get("/v1/labels", params={"type": "floating_river_waste"}).json()["total"]
    page = open_page(server)
    sign_in(page, inspector_key)
    page.click("#nav a[href='#/labels']")
    page.wait_for_selector("#labels-count")
    counts = page.locator("table.label-counts tr[data-type='floating_river_waste']")
    assert int(counts.get_attribute("data-positives")) >= 1
    page.select_option("#f-type", "floating_river_waste")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/#/labels?type=floating_river_waste")
    page.wait_for_selector("#labels-count")
    rows = page.locator("table.labels-table tbody tr")
    assert page.get_attribute("#labels-count", "data-total") == str(total) and rows.count() == total
    assert {r.get_attribute("data-type") for r in rows.all()} == {"floating_river_waste"}
    screenshot(page, "desktop-labels-screen")

    with page.expect_download() as zipped:
        page.click("#export-yolo")
    archive = zipfile.ZipFile(Path(zipped.value.path()))
    names = yaml.safe_load(archive.read("data.yaml"))["names"]
    assert {"floating_river_waste", "road_occupying_stall"} <= set(names.values() if isinstance(names, dict) else names)
    refs = {b["ref"] for i in json.loads(archive.read("provenance.json"))["images"] for b in i["boxes"]}
    assert {f"label:{m['id']}" for m in made.values()} <= refs

    with page.expect_download() as exported:
        page.click("#export-label-studio")
    tasks = json.loads(Path(exported.value.path()).read_text(encoding="utf-8"))
    result_ids = {r["id"] for task in tasks for a in task.get("annotations", []) for r in a["result"]}
    assert {f"ew-label-{m['id']}" for m in made.values()} <= result_ids

    # The export goes back in unchanged: the round trip creates and changes nothing.
    page.set_input_files("#f-ls-file", files=[{"name": "tasks.json", "mimeType": "application/json",
                                               "buffer": json.dumps(tasks).encode()}])  # fmt: skip
    page.click("form.import-form button[type=submit]")
    result = page.locator("#import-result")
    result.wait_for()
    assert (result.get_attribute("data-created"), result.get_attribute("data-updated")) == ("0", "0")
    assert int(result.get_attribute("data-unchanged")) >= len(made)


def _ids(body: dict) -> list[int]:
    return [f["id"] for f in body["items"]]


def test_the_ledger_sorts_and_pages_on_the_server(open_page, server: Server, inspector_key: str) -> None:
    with server.client(inspector_key) as client:
        photos = sorted(GARBAGE_IMAGES.glob("*.jpg"))[:10]  # well over 25 findings at conf 0.001, whichever model
        parts = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        response = client.post("/v1/inspections", files=parts, data={"conf": "0.001", "region": "湘阴县"})
        assert response.status_code == 201, response.text
        filters = {"region": "湘阴县", "limit": 25}
        by_score = client.get("/v1/findings", params={**filters, "sort": "-score", "offset": 25}).json()
        ascending = client.get("/v1/findings", params={**filters, "sort": "score"}).json()
    assert by_score["total"] > 25, "enough findings for two pages, the second one asked for"
    page = open_page(server)
    sign_in(page, inspector_key)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/v1/findings?" in r.url else None)
    page.goto("/#/findings?region=湘阴县&sort=-score&page=2")
    page.wait_for_selector("table.ledger tbody tr")
    rows = page.locator("table.ledger tbody tr")
    assert [int(r.get_attribute("data-finding-id")) for r in rows.all()] == _ids(by_score)
    assert page.get_attribute("#ledger-count", "data-total") == str(by_score["total"])
    assert asked and all("limit=25" in url and "sort=-score" in url for url in asked), asked
    assert page.inner_text(".pager .page-of") == f"第 2 / {math.ceil(by_score['total'] / 25)} 页"

    page.click("th a.sort[href*='sort=score']")
    page.wait_for_selector("th[aria-sort='ascending'] a[href*='sort=-score']")
    rows = page.locator("table.ledger tbody tr")
    assert [int(r.get_attribute("data-finding-id")) for r in rows.all()] == _ids(ascending)
    scores = [float(s) for s in page.locator("table.ledger td.num").all_inner_texts()]
    assert scores == sorted(scores)
