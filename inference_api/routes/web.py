"""The inspectors' web page: `/` and its static files under `/web/`, all shipped in the package.

Inspectors are not API users, so the service serves a page of its own. It works offline (no CDN,
fonts or map tiles from elsewhere) and its Content-Security-Policy allows nothing but this origin:
every script is a file here, nothing inline, so injected markup could not run even if some ever
reached the page. The page talks to the same `/v1` API with the key the inspector signs in with,
so it can show only what that key may read.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parents[1] / "web"

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


@router.api_route("/web/{path:path}", methods=["GET", "HEAD"])
async def asset(path: str, request: Request) -> Response:
    """A file of the page (404 outside the web folder; StaticFiles refuses `..` and links out)."""
    response = await _static.get_response(path, request.scope)
    response.headers.update(HEADERS)
    return response
