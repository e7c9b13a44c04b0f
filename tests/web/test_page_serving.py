"""The page is served at `/` from the package, works offline, and leaves the API as it was."""

from __future__ import annotations

import re

from web_helpers import REPO, Server

WEB = REPO / "inference_api" / "web"
ASSETS = sorted(p for p in WEB.rglob("*") if p.is_file())
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
"""An XML namespace name, never fetched: the one absolute URL the page's code may contain."""
URL = re.compile(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"'`)]*")
"""Absolute and protocol-relative URLs (a CDN script, a web font, a map tile server)."""


def test_root_serves_the_page_with_a_strict_content_security_policy(server: Server) -> None:
    with server.client() as client:
        page = client.get("/")
        head = client.head("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert head.status_code == 200
    csp = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'self'" and csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/web/js/main.js">' in page.text
    assert '<html lang="zh-CN">' in page.text


def test_every_asset_is_served_with_its_type_and_nothing_loads_from_elsewhere(server: Server) -> None:
    assert len(ASSETS) > 10, ASSETS
    kinds = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".html": "text/html",
        ".webmanifest": "application/manifest+json",
        ".png": "image/png",
    }
    with server.client() as client:
        for asset in ASSETS:
            response = client.get(f"/web/{asset.relative_to(WEB).as_posix()}")
            assert response.status_code == 200, asset
            assert response.headers["content-type"].startswith(kinds[asset.suffix]), asset
            assert response.content == asset.read_bytes()
            if asset.suffix != ".png":
                outside = [u for u in URL.findall(response.text) if u != SVG_NAMESPACE]
                assert not outside, f"{asset.name} refers to another origin: {outside}"


def test_the_service_worker_is_served_from_the_root_and_caches_every_file_of_the_page(server: Server) -> None:
    with server.client() as client:
        worker = client.get("/sw.js")
        shell = client.get("/web/shell.json")
        assert worker.status_code == 200 and worker.headers["content-type"].startswith("text/javascript")
        assert worker.content == (WEB / "sw.js").read_bytes()
        assert worker.headers["content-security-policy"] == client.get("/").headers["content-security-policy"]
        listed = shell.json()
        assert listed[0] == "/" and sorted(listed[1:]) == listed[1:]
        expected = {f"/web/{a.relative_to(WEB).as_posix()}" for a in ASSETS if a.name != "sw.js"}
        assert set(listed[1:]) == expected
        assert all(client.get(path).status_code == 200 for path in listed)


def test_asset_paths_cannot_leave_the_web_folder(server: Server) -> None:
    with server.client() as client:
        for path in ("/web/../routes/web.py", "/web/%2e%2e/app.py", "/web/..%2fapp.py", "/web/js/missing.js"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert "from __future__" not in response.text


def test_api_and_its_documentation_are_unchanged(server: Server) -> None:
    with server.client() as client:
        assert client.get("/healthz").json() == {
            "status": "ok",
            "model_loaded": None,
            "database": None,
            "storage": None,
            "free_bytes": None,
            "model_version": None,
            "detail": None,
        }
        assert client.get("/docs").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert client.get("/v1/findings").status_code == 401
    assert "/" not in paths and not any(p.startswith("/web") for p in paths)
    assert "/v1/findings/summary.csv" in paths
