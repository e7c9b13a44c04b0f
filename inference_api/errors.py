"""One JSON error shape for every failure: `{"error": {"code", "message", "file"?, "files"?}}`.

Clients (the inspectors' app, integrations) branch on `code`, so FastAPI's default error bodies
(`{"detail": ...}`) are replaced everywhere, validation errors included, and every route
declares the errors it can return so the OpenAPI document is complete.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference_api.schemas import ErrorResponse, FileError

log = logging.getLogger("envwatch.api")

DESCRIPTIONS: dict[int, str] = {
    401: "Missing or unknown API key.",
    403: "The API key's role may not do this.",
    404: "No such resource.",
    409: "Conflicts with the resource's current state (e.g. an invalid review transition).",
    413: "Request body larger than the configured limit.",
    422: "Invalid request, or every uploaded file was rejected (see error.files).",
    429: "Too many batch jobs queued for this key; retry after the Retry-After header.",
    503: "Not ready (model or database) or overloaded; retry after the Retry-After header.",
    507: "The server's storage is full (`insufficient_storage`); nothing was stored. /readyz says more.",
}


class ApiError(Exception):
    """An error answered with the JSON error shape and `status`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        file: str | None = None,
        files: list[FileError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.file, self.files, self.headers = file, files, headers

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.file is not None:
            detail["file"] = self.file
        if self.files is not None:
            detail["files"] = [f.model_dump() for f in self.files]
        return {"error": detail}


STORAGE_FULL = "the server's storage is full; nothing of this request was stored (an operator must free space)"


def storage_full(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a file system or database refusing to grow: ENOSPC, a quota, SQLite's
    "database or disk is full", PostgreSQL's disk_full (SQLSTATE 53100)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(seen, OperationalError):
            orig = seen.orig
            if getattr(orig, "sqlstate", None) == "53100" or "disk is full" in str(orig):
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for `codes`, all with the shared error schema."""
    return {code: {"model": ErrorResponse, "description": DESCRIPTIONS[code]} for code in codes}


AUTH = (401, 403)


def install(app: FastAPI) -> None:
    """Route every error through the shared shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 400:
            # The framework's only 400: a body it cannot parse (JSON that is not UTF-8, a broken multipart
            # form). That is an invalid request like any other, answered as documented: 422 invalid_request.
            return JSONResponse({"error": {"code": "invalid_request", "message": message}}, status_code=422)
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
            exc.status_code, f"http_{exc.status_code}"
        )
        return JSONResponse(
            {"error": {"code": code, "message": message}},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse(
            {"error": {"code": "invalid_request", "message": "; ".join(parts) or "invalid request"}},
            status_code=422,
        )

    async def _storage(_request: Request, exc: Exception) -> JSONResponse:
        if not storage_full(exc):
            raise exc  # to the 500 handler below
        log.error("storage full", extra={"error": repr(exc)})
        return JSONResponse({"error": {"code": "insufficient_storage", "message": STORAGE_FULL}}, status_code=507)

    app.add_exception_handler(OSError, _storage)
    app.add_exception_handler(OperationalError, _storage)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse({"error": {"code": "internal", "message": "internal server error"}}, status_code=500)
