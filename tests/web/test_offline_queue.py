"""In the field: the page on a phone (390×844, touch), offline, with the phone's own position.

Chromium's offline emulation stands in for a village with no signal, its geolocation emulation
for the phone's GPS. Photos taken while offline wait in IndexedDB through a reload (the page
itself then comes from the service worker's cache), go out by themselves once the network is
back, each scored exactly once, with the phone's position where the photo has no EXIF GPS and
the photo's own where it has. What the server refuses says why and stays deletable; a key
revoked while photos wait signs the page out and loses none of them.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page
from web_helpers import DESKTOP, FLAGGED_PHOTO, PHONE, PHONE_CONTEXT, Server, geotagged, screenshot, sign_in

HERE = {"latitude": 28.6502, "longitude": 113.4507, "accuracy": 15}
"""Where the emulated phone is (a village road in 平江县)."""
PHONE_AT = {"lat": HERE["latitude"], "lon": HERE["longitude"]}
EXIF_AT = (28.9, 113.7)
MAX_UPLOAD = 300_000

OUTBOX = """async () => {
  const done = (req) => new Promise((ok, no) => {
    req.onsuccess = () => ok(req.result);
    req.onerror = () => no(req.error);
  });
  const db = await done(indexedDB.open("envwatch"));
  const all = await done(db.transaction("outbox").objectStore("outbox").getAll());
  db.close();
  return all.map((r) => ({ id: r.id, name: r.name, state: r.state, size: r.file ? r.file.size : null,
                           position: r.position, error: r.error, queued_by: r.queued_by }));
}"""


@pytest.fixture(scope="module")
def server(make_server) -> Server:
    """This module's server, with a small per-file limit so that a "too large" photo is quick to make."""
    return make_server(env={"ENVWATCH_MAX_UPLOAD_BYTES": str(MAX_UPLOAD)})


def outbox(page: Page) -> list[dict]:
    """The records in the page's IndexedDB outbox, read directly (not through the page's own code)."""
    return page.evaluate(OUTBOX)


def phone(open_page, server: Server) -> Page:
    page = open_page(server, PHONE, geolocation=HERE, permissions=["geolocation"], **PHONE_CONTEXT)
    return page


def controlled(page: Page) -> None:
    """Wait until the service worker controls the page (it has cached the app shell by then)."""
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")


def take_photo(page: Page, name: str, data: bytes) -> None:
    """A photo from the phone's camera through the page (the camera input), kept on the device."""
    page.set_input_files("#camera", files=[{"name": name, "mimeType": "image/jpeg", "buffer": data}])
    page.wait_for_selector(f".progress-row[data-file='{name}']")


def inspections(server: Server, key: str) -> dict:
    with server.client(key) as client:
        return client.get("/v1/inspections", params={"limit": 500}).json()


def test_photos_taken_offline_survive_a_reload_and_go_out_once_with_the_phones_position(
    open_page, server: Server, inspector_key: str
) -> None:
    page = phone(open_page, server)
    sign_in(page, inspector_key)
    controlled(page)
    before = inspections(server, inspector_key)["total"]
    page.fill("#f-region", "平江县")
    page.fill("#f-village", "三墩村")
    page.context.set_offline(True)
    plain = FLAGGED_PHOTO.read_bytes()
    photos = {f"村口{i}.jpg": plain for i in range(4)} | {"带GPS.jpg": geotagged(FLAGGED_PHOTO, *EXIF_AT)}
    for name, data in photos.items():
        take_photo(page, name, data)
    screenshot(page, "390x844-upload-offline")

    kept = outbox(page)
    assert sorted(r["name"] for r in kept) == sorted(photos)
    assert all(r["state"] == "waiting" and r["size"] == len(photos[r["name"]]) for r in kept)
    for record in kept:  # taken with the camera: where the phone was, with its accuracy
        position = record["position"]
        assert (position["lat"], position["lon"], position["accuracy_m"]) == pytest.approx((28.6502, 113.4507, 15))

    page.reload()  # still offline: the page comes from the service worker's cache
    page.wait_for_selector("#who")
    page.tap("#nav a[href='#/queue']")
    page.wait_for_selector("#queue[data-waiting='5']")
    assert page.locator("li.queue-item[data-state='waiting']").count() == 5
    assert page.inner_text("#queue-count") == "5"
    assert inspections(server, inspector_key)["total"] == before, "nothing reached the server while offline"
    screenshot(page, "390x844-queue-offline")

    page.context.set_offline(False)
    page.wait_for_selector("#queue[data-sent='5']", timeout=120_000)
    screenshot(page, "390x844-queue-sent")
    assert all(r["state"] == "sent" and r["size"] is None for r in outbox(page)), "a sent photo leaves the device"

    listed = inspections(server, inspector_key)
    assert listed["total"] == before + 5, "each photo scored exactly once"
    names = {r["id"]: r["name"] for r in kept}
    mine = [i for i in listed["items"] if i["client_id"] in names]
    assert sorted(i["client_id"] for i in mine) == sorted(names)
    for inspection in mine:
        name = names[inspection["client_id"]]
        assert [f["file"] for f in inspection["files"]] == [name] and inspection["region"] == "平江县"
        assert inspection["findings"], "the shipped model flags this photo"
        for finding in inspection["findings"]:
            if name == "带GPS.jpg":
                gps = finding["gps"]
                assert (gps["lat"], gps["lon"]) == pytest.approx(EXIF_AT, abs=1e-4) and gps["source"] == "photo"
            else:
                assert finding["gps"] == {**PHONE_AT, "alt": None, "source": "device", "accuracy_m": 15}

    # The map says which positions are the phone's (dashed, with the accuracy circle).
    device_findings = sum(len(i["findings"]) for i in mine if names[i["client_id"]] != "带GPS.jpg")
    page.tap("#nav a[href='#/map']")
    page.wait_for_selector("a.point")
    assert page.locator("a.point[data-source='device']").count() == device_findings
    assert page.locator("a.point[data-source='device'] circle.accuracy").count() == device_findings
    assert page.locator("a.point[data-source='photo'] circle.accuracy").count() == 0
    assert "手机定位" in page.locator("a.point[data-source='device']").first.get_attribute("aria-label")
    screenshot(page, "390x844-map-device-positions")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{overflow}px wider than the phone"


def _noise_jpeg(side: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(1).integers(0, 255, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_a_photo_the_server_refuses_says_why_and_can_be_deleted(
    open_page, server: Server, inspector_key: str, tmp_path: Path
) -> None:
    old = tmp_path / "上周.jpg"
    old.write_bytes(FLAGGED_PHOTO.read_bytes())
    yesterday = time.time() - 86_400
    os.utime(old, (yesterday, yesterday))
    large = _noise_jpeg(900)
    assert len(large) > MAX_UPLOAD
    page = phone(open_page, server)
    sign_in(page, inspector_key)
    before = inspections(server, inspector_key)["total"]
    page.context.set_offline(True)
    page.set_input_files(
        "#files",
        files=[
            {"name": "说明.jpg", "mimeType": "image/jpeg", "buffer": "这不是照片\n".encode() * 50},
            {"name": "太大.jpg", "mimeType": "image/jpeg", "buffer": large},
        ],
    )
    page.set_input_files("#files", str(old))
    page.tap("form.upload-form button[type=submit]")
    page.wait_for_selector(".progress-row[data-file='上周.jpg']")
    by_name = {r["name"]: r for r in outbox(page)}
    assert by_name["上周.jpg"]["position"] is None, "a gallery photo from yesterday was not taken where the phone is"
    assert by_name["太大.jpg"]["position"] is not None, "one made just now was"

    page.context.set_offline(False)
    page.wait_for_selector(".progress-row.failed[data-file='说明.jpg']")
    page.wait_for_selector(".progress-row.failed[data-file='太大.jpg']")
    page.wait_for_selector(".progress-row.ok[data-file='上周.jpg']")
    assert "不是可用的照片" in page.inner_text(".progress-row[data-file='说明.jpg'] .state")

    page.tap("#nav a[href='#/queue']")
    page.wait_for_selector("#queue[data-failed='2'][data-sent='1']")
    refused = page.locator("li.queue-item[data-state='failed']")
    reasons = {item.get_attribute("data-name"): item.locator(".reason").inner_text() for item in refused.all()}
    assert "不是可用的照片" in reasons["说明.jpg"]
    assert "文件太大" in reasons["太大.jpg"] and str(MAX_UPLOAD) in reasons["太大.jpg"]
    assert inspections(server, inspector_key)["total"] == before + 1, "nothing is stored for a refused photo"
    screenshot(page, "390x844-queue-refused")

    for name in ("说明.jpg", "太大.jpg"):
        item = page.locator(f"li.queue-item[data-name='{name}']")
        item.locator("button.delete").tap()
        item.locator("button.danger").tap()
        page.wait_for_selector(f"li.queue-item[data-name='{name}']", state="detached")
    assert [r["name"] for r in outbox(page)] == ["上周.jpg"]
    assert page.get_attribute("#queue", "data-failed") == "0"


def test_a_key_revoked_while_photos_wait_signs_the_page_out_and_loses_none(
    open_page, server: Server, inspector_key: str
) -> None:
    revoked = server.new_key("inspector", "inspector-li")
    page = phone(open_page, server)
    sign_in(page, revoked)
    page.context.set_offline(True)
    for i in range(3):
        take_photo(page, f"河道{i}.jpg", FLAGGED_PHOTO.read_bytes())
    with server.admin as admin:
        key_id = next(k["id"] for k in admin.get("/v1/keys").json() if k["name"] == "inspector-li")
        assert admin.delete(f"/v1/keys/{key_id}").status_code == 200
    page.context.set_offline(False)
    page.wait_for_selector("form.signin")
    assert "登录已失效" in page.inner_text("main")
    waiting = outbox(page)
    assert len(waiting) == 3 and all(r["state"] == "waiting" and r["size"] for r in waiting), waiting

    sign_in(page, inspector_key)
    page.goto("/#/queue")
    page.wait_for_selector("#queue[data-sent='3']", timeout=120_000)
    ids = {r["id"] for r in waiting}
    sent = [i for i in inspections(server, inspector_key)["items"] if i["client_id"] in ids]
    assert len(sent) == 3 and {i["created_by"] for i in sent} == {"inspector-wang"}


def test_an_answer_lost_on_the_way_back_is_resent_and_scored_once(
    open_page, server: Server, inspector_key: str
) -> None:
    page = open_page(server, DESKTOP, service_workers="block")  # the page's own requests, routed by the test
    sign_in(page, inspector_key)
    before = inspections(server, inspector_key)["total"]
    lost = []

    def lose_the_answer(route) -> None:
        lost.append(route.fetch().status)  # the server scores the photo...
        route.abort("connectionreset")  # ...and its answer never reaches the phone

    page.route("**/v1/inspections", lose_the_answer, times=1)
    take_photo(page, "信号断了.jpg", FLAGGED_PHOTO.read_bytes())
    page.wait_for_selector(".progress-row.ok[data-file='信号断了.jpg']", timeout=60_000)  # the sender's next try
    assert lost == [201]
    (record,) = outbox(page)
    assert record["state"] == "sent"
    listed = inspections(server, inspector_key)
    assert listed["total"] == before + 1, "the resent photo was replayed, not scored again"
    assert [i["client_id"] for i in listed["items"]].count(record["id"]) == 1


def test_the_page_installs_as_an_app_and_caches_its_whole_shell(open_page, server: Server) -> None:
    page = open_page(server, DESKTOP)
    controlled(page)
    cdp = page.context.new_cdp_session(page)
    assert cdp.send("Page.getAppManifest")["errors"] == []
    errors = {e["errorId"] for e in cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]}
    # Playwright's contexts are incognito ones, where Chromium installs nothing; nothing else may stand in the way.
    assert errors <= {"in-incognito"}, errors
    with server.client() as client:
        shell = client.get("/web/shell.json").json()
    cached = page.evaluate(
        "async () => (await (await caches.open('envwatch-shell-v1')).keys()).map((r) => new URL(r.url).pathname)"
    )
    assert sorted(cached) == sorted(shell)
