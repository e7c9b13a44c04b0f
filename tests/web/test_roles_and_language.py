"""What a key may see and do decides what the page draws; the language choice is remembered."""

from __future__ import annotations

from web_helpers import FLAGGED_PHOTO, Server, sign_in, upload


def test_a_read_only_key_sees_findings_but_no_upload_or_review_controls(
    open_page, server: Server, inspector_key: str, integration_key: str
) -> None:
    with server.client(inspector_key) as client:
        finding = upload(client, FLAGGED_PHOTO.read_bytes(), "bin.jpg", region="汨罗市")["findings"][0]
    page = open_page(server)
    sign_in(page, integration_key)
    page.wait_for_selector("#ledger-count")  # a read-only key lands on the ledger
    assert page.get_attribute("#who", "data-role") == "integration"
    assert page.locator("#nav a[href='#/upload']").count() == 0
    assert page.locator(f"tr[data-finding-id='{finding['id']}']").count() == 1

    page.goto(f"/#/findings/{finding['id']}")
    page.wait_for_selector("#finding-status")
    assert page.locator("button[data-to]").count() == 0
    assert page.locator("section.review").inner_text().count("只读") == 1

    page.goto("/#/upload")
    page.wait_for_selector("[role=alert]")
    assert page.locator("#files").count() == 0
    page.goto("/#/jobs")
    page.wait_for_selector("ul.jobs")
    assert page.locator("form.job-form").count() == 0

    # And the server refuses the write anyway, whatever the page draws.
    with server.client(integration_key) as client:
        refused = client.post(f"/v1/findings/{finding['id']}/transitions", json={"to": "confirmed"})
    assert refused.status_code == 403


def test_a_wrong_key_is_refused_and_signing_out_forgets_the_key(open_page, server: Server, inspector_key: str) -> None:
    page = open_page(server)
    page.fill("#f-key", "ew_not_a_key")
    page.click("form.signin button[type=submit]")
    alert = page.locator("form.signin [role=alert]")
    alert.wait_for()
    assert "无效" in alert.inner_text()
    assert page.locator("#who").count() == 0

    sign_in(page, inspector_key)
    page.reload()
    page.wait_for_selector("#who")  # the key lasts for the tab, across reloads
    page.click("#sign-out")
    page.wait_for_selector("form.signin")
    assert page.evaluate("sessionStorage.length") == 0
    assert page.locator("main table, main .inspection").count() == 0
    page.goto("/#/findings")
    page.wait_for_selector("form.signin")  # no key: back to the sign-in form, nothing shown


def test_english_is_one_switch_away_and_is_remembered(open_page, server: Server, inspector_key: str) -> None:
    page = open_page(server)
    assert page.inner_text("h1") == "登录"
    page.click("#lang-toggle")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert page.inner_text("h1") == "Sign in"
    sign_in(page, inspector_key)
    page.goto("/#/summary")
    page.wait_for_selector("h1")
    assert page.inner_text("h1") == "Summary by region"
    page.reload()
    page.wait_for_selector("#who")
    assert page.get_attribute("html", "lang") == "en"
    assert page.inner_text("#nav").count("Findings") == 1
    page.click("#lang-toggle")
    page.wait_for_function("() => document.documentElement.lang === 'zh-CN'")
    assert page.inner_text("h1") == "分区汇总"
