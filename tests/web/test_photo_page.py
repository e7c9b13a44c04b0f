"""A stored photo's page (#/photos/{id}) shows the model's findings on it from every inspection that sent it."""

from __future__ import annotations

from web_helpers import FLAGGED_PHOTO, Server, screenshot, sign_in, upload, wait_for_images


def test_photo_page_lists_and_draws_the_findings_of_every_inspection_of_that_photo(
    open_page, server: Server, inspector_key: str
) -> None:
    photo = FLAGGED_PHOTO.read_bytes()
    with server.client(inspector_key) as client:
        first, again = upload(client, photo, "a.jpg"), upload(client, photo, "again.jpg")
        image_id = first["files"][0]["image"]["id"]
        assert again["files"][0]["image"]["id"] == image_id, "the same bytes are stored once"
        response = client.get("/v1/findings", params={"image_id": image_id, "limit": 1000})
    assert response.status_code == 200, response.text
    expected = {f["id"] for f in response.json()["items"]}
    raised = {f["id"] for f in first["findings"]} | {f["id"] for f in again["findings"]}
    assert expected >= raised and len(raised) >= 2, "each inspection raised its own findings on the photo"

    page = open_page(server)
    sign_in(page, inspector_key)
    page.goto(f"/#/photos/{image_id}")
    page.wait_for_selector(f"figure.photo[data-image-id='{image_id}']")
    shown = {int(v) for v in page.locator("li.problem").evaluate_all("items => items.map(i => i.dataset.findingId)")}
    assert shown == expected
    assert page.get_attribute("figure.photo", "data-boxes") == str(len(expected))
    wait_for_images(page, ".photos")
    screenshot(page, "photo-page")
    page.locator(f"li.problem[data-finding-id='{min(expected)}'] a").click()
    page.wait_for_selector("#finding-status")
    assert page.url.endswith(f"#/findings/{min(expected)}")
