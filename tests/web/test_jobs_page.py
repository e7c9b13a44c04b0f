"""A batch job started from the page: a zip of real photos, a progress bar that reaches the end,
and the job's results (one inspection) a click away."""

from __future__ import annotations

import zipfile
from pathlib import Path

from web_helpers import GARBAGE_IMAGES, Server, screenshot, sign_in

PHOTOS = sorted(GARBAGE_IMAGES.glob("*.jpg"))[:3]


def test_zip_job_shows_progress_to_done_and_links_its_results(
    open_page, server: Server, inspector_key: str, tmp_path: Path
) -> None:
    archive = tmp_path / "drone-flight-0501.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for photo in PHOTOS:
            zf.write(photo, f"DJI_0501/{photo.name}")
    page = open_page(server)
    sign_in(page, inspector_key)
    page.goto("/#/jobs")
    page.set_input_files("#f-archive", str(archive))
    page.fill("#f-region", "平江县")
    assert page.input_value("#f-tile") == "auto"  # drone zips are tiled unless the inspector says otherwise
    page.select_option("#f-tile", "on")
    page.click("form.job-form button[type=submit]")
    card = page.locator("li.job").first
    card.wait_for()
    job_id = card.get_attribute("data-job-id")
    page.wait_for_selector(f"li.job[data-job-id='{job_id}'][data-status='done']", timeout=120_000)

    with server.client(inspector_key) as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "done" and job["total"] == len(PHOTOS) == job["processed"]
    assert job["tile"] == "on"
    bar = card.locator("progress")
    assert bar.get_attribute("max") == str(job["total"]) and bar.get_attribute("value") == str(job["processed"])
    assert card.locator(".job-progress").inner_text().startswith(f"已处理 {job['processed']} / {job['total']}")
    assert card.locator("button").count() == 0, "a finished job cannot be cancelled"
    screenshot(page, "desktop-job")

    card.locator("a", has_text="查看结果").click()
    page.wait_for_selector(f".inspection[data-inspection-id='{job['inspection_id']}']")
    assert page.locator(".file-result").count() == len(PHOTOS)
