"""What routes need from the running app, as FastAPI dependencies.

The app builds one `AppState` at startup (engine, image store, detector, worker pool) and
routes reach it only through these functions, which keeps routes thin and lets every test run
against a real server built the same way as production.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Path, Query, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from inference_api.errors import ApiError
from inference_api.settings import Settings
from inference_api.storage import ImageStore

if TYPE_CHECKING:
    from inference_api.observability import Metrics
    from inference_api.pool import DetectorPool
    from model.runtime import Detector


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    images: ImageStore
    pool: DetectorPool
    metrics: Metrics
    detector: Detector | None = None
    """None until the model has loaded (or while loading failed)."""
    detector_error: str | None = None


def get_state(request: Request) -> AppState:
    return request.app.state.envwatch


def get_detector(state: Annotated[AppState, Depends(get_state)]) -> Detector:
    """The loaded detector, or 503 while it is not (the model failed to load or is loading)."""
    if state.detector is None:
        raise ApiError(
            503,
            "model_not_ready",
            f"the detector is not loaded: {state.detector_error or 'still loading'}",
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )
    return state.detector


def require_storage(state: AppState) -> None:
    """507 `insufficient_storage` before any work, when the image store cannot take new photos (see /readyz)."""
    problem = state.images.problem(state.settings.min_free_bytes)
    if problem is not None:
        raise ApiError(507, "insufficient_storage", f"{problem}; nothing was stored")


def get_session(state: Annotated[AppState, Depends(get_state)]) -> Iterator[Session]:
    """A session for the request; routes that write commit explicitly (see `store`)."""
    with state.sessions() as session:
        yield session


StateDep = Annotated[AppState, Depends(get_state)]
SessionDep = Annotated[Session, Depends(get_session)]
DetectorDep = Annotated[Any, Depends(get_detector)]

DB_INT_MAX = 2**31 - 1
"""The largest id (INTEGER columns are 32-bit on PostgreSQL; SQLite overflows past 2**63) and the largest offset.
Larger values are 422 like any other out-of-range parameter, not an overflow in the database driver (a 500)."""

IdPath = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
"""A resource id in the path: ids start at 1; an unknown one in range is a 404."""
Offset = Annotated[int, Query(ge=0, le=DB_INT_MAX)]
