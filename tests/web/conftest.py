"""Fixtures for the web page tests: the service's own server fixtures, and a real headless Chromium.

The servers are tests/service's (a real uvicorn per module, real ONNX model, fresh SQLite or
PostgreSQL database), loaded from its conftest rather than written again. The browser is the
system Chromium driven by Playwright (Playwright cannot download its own browser here; CI
installs Debian's with .ci/chromium.sh). Without a Chromium binary the browser tests skip and
say why; the page's HTTP tests still run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from web_helpers import DESKTOP, SERVICE_TESTS, Server


def _service_fixtures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("service_fixtures", SERVICE_TESTS / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_service = _service_fixtures()
service_model = _service.service_model
database_url = _service.database_url
make_server = _service.make_server
server = _service.server
inspector_key = _service.inspector_key
integration_key = _service.integration_key

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """`ENVWATCH_CHROMIUM`, else Debian's /usr/bin/chromium or whatever `chromium` is on PATH."""
    for candidate in (os.environ.get("ENVWATCH_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium binary (apt-get install chromium, as .ci/chromium.sh does; or set ENVWATCH_CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """`open_page(server, viewport=DESKTOP, **context_options)`: a fresh browser tab (own storage) on the server's page.

    On teardown it checks what the page must never do: throw an uncaught script error, or
    request anything from another origin (the page works offline: no CDN, fonts or tiles).
    """
    contexts = []
    problems: list[str] = []

    def open_(server: Server, viewport: dict[str, int] = DESKTOP, **options: object) -> Page:
        """`options` go to the browser context: geolocation, permissions, has_touch, is_mobile..."""
        base = server.url
        context = browser.new_context(
            viewport=viewport, locale="zh-CN", accept_downloads=True, base_url=base, **options
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
        page.on(
            "request",
            lambda request: (
                None
                if request.url.startswith((base, "blob:", "data:"))
                else problems.append(f"request to another origin: {request.url}")
            ),
        )
        page.goto("/")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not problems, problems
