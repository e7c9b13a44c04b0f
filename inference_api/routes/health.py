"""Liveness, readiness and Prometheus metrics (unauthenticated, for orchestrators and scrapers)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from inference_api import db
from inference_api.deps import StateDep
from inference_api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive and serving HTTP; says nothing about model or database."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "Not ready"}})
def readyz(state: StateDep) -> Response:
    """Ready when the model is loaded, the database answers and the image store can take photos; else 503 with why."""
    model_loaded = state.detector is not None
    database = db.ping(state.engine)
    storage = state.images.problem(state.settings.min_free_bytes)
    problems = []
    if not model_loaded:
        problems.append(f"model not loaded: {state.detector_error or 'loading'}")
    if not database:
        problems.append("database unreachable")
    if storage is not None:
        problems.append(storage)
    body = Health(
        status="ok" if not problems else "unavailable",
        model_loaded=model_loaded,
        database=database,
        storage=storage is None,
        free_bytes=state.images.free_bytes(),
        model_version=getattr(state.detector, "version", None),
        detail="; ".join(problems) or None,
    )
    return JSONResponse(body.model_dump(), status_code=200 if not problems else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(state: StateDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
