"""Prometheus metrics and structured JSON logs.

Metrics live in a registry per app (not the global one) so several apps in one process (tests,
workers) never collide. Request metrics are labelled by the route *template*
(`/v1/findings/{finding_id}`), not the raw path, to keep label cardinality bounded.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inference_api.pool import DetectorPool

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str) -> None:
    """JSON logs on stderr for envwatch, and uvicorn's own lines reformatted as JSON too.

    uvicorn's access log is switched off: the request middleware logs every request once, with
    the route template and duration, which is what log queries need.
    """
    logger = logging.getLogger("envwatch")
    logger.setLevel(level.upper())
    if not any(getattr(h, "_envwatch", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._envwatch = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
    for uvicorn_handler in logging.getLogger("uvicorn").handlers:
        uvicorn_handler.setFormatter(JsonFormatter())
    logging.getLogger("uvicorn.access").disabled = True


class Metrics:
    def __init__(self, pool: DetectorPool) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "envwatch_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "envwatch_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.detections = Counter(
            "envwatch_findings_total",
            "Findings raised by the detector, by problem type",
            ["type"],
            registry=self.registry,
        )
        self.images = Counter("envwatch_images_total", "Uploaded files by outcome", ["outcome"], registry=self.registry)
        self.rejected = Counter(
            "envwatch_overloaded_total", "Requests refused with 503 because the pool was full", registry=self.registry
        )
        queue = Gauge("envwatch_detection_queue_depth", "Detector jobs waiting for a worker", registry=self.registry)
        queue.set_function(lambda: pool.queued)
        running = Gauge("envwatch_detection_running", "Detector jobs running", registry=self.registry)
        running.set_function(lambda: pool.running)


def install_middleware(app: FastAPI, metrics: Metrics) -> None:
    log = logging.getLogger("envwatch.http")

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(request.scope.get("route"), "path", "unmatched")
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(request.method, route).observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "route": route,
                    "path": request.url.path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )


UVICORN_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "inference_api.observability.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}
"""uvicorn's logging as JSON (for `serve()`); its access log is replaced by the request middleware's."""
