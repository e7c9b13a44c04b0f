"""The inspectors' web page: `/` and its static files under `/web/`, all shipped in the package.

Inspectors are not API users, so the service serves a page of its own. It works offline (no CDN,
fonts or map tiles from elsewhere) and its Content-Security-Policy allows nothing but this origin:
every script is a file here, nothing inline, so injected markup could not run even if some ever
reached the page. The page talks to the same `/v1` API with the key the inspector signs in with,
so it can show only what that key may read.

It installs as an app (a web app manifest) and opens with no signal: a service worker, served
from the root so that it may control the whole page, keeps every file of the page in a cache.
The file list it caches comes from here (`/web/shell.json`), built from the folder itself.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
SERVICE_WORKER = "sw.js"
mimetypes.add_type("application/manifest+json", ".webmanifest")

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
"""Sent with the page and its files; `no-cache` revalidates (ETag) so an upgraded server's page is used at once."""

router = APIRouter(include_in_schema=False)
_static = StaticFiles(directory=WEB_DIR)


@router.api_route("/", methods=["GET", "HEAD"])
def page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.api_route("/sw.js", methods=["GET", "HEAD"])
def service_worker() -> FileResponse:
    """The service worker, at the root: a worker's scope is at most its own folder, and it must cover `/`."""
    return FileResponse(WEB_DIR / SERVICE_WORKER, media_type="text/javascript; charset=utf-8", headers=HEADERS)


@router.api_route("/web/shell.json", methods=["GET", "HEAD"])
def shell() -> JSONResponse:
    """What the service worker caches: the page and every file under /web/ (the worker itself is the browser's)."""
    files = sorted(
        f"/web/{path.relative_to(WEB_DIR).as_posix()}"
        for path in WEB_DIR.rglob("*")
        if path.is_file() and path.name != SERVICE_WORKER
    )
    return JSONResponse(["/", *files], headers=HEADERS)


@router.api_route("/web/{path:path}", methods=["GET", "HEAD"])
async def asset(path: str, request: Request) -> Response:
    """A file of the page (404 outside the web folder; StaticFiles refuses `..` and links out)."""
    response = await _static.get_response(path, request.scope)
    response.headers.update(HEADERS)
    return response
