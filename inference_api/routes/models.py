"""`/v1/models`: the registry's model versions, which one serves, and reloading after a promotion."""

from __future__ import annotations

from fastapi import APIRouter, Request

from inference_api.auth import Admin, Reader
from inference_api.errors import AUTH, responses
from inference_api.model_watch import ModelWatcher
from inference_api.schemas import ModelsOut, ModelVersionOut
from model.registry import Registry

router = APIRouter(prefix="/v1/models", tags=["model"])


def _models(watcher: ModelWatcher) -> ModelsOut:
    registry = Registry(watcher.state.settings.model_registry)
    detector = watcher.state.detector
    return ModelsOut(
        serving=str(detector.version) if detector is not None else None,
        pinned=watcher.pinned,
        promoted=registry.promoted,
        error=watcher.error or watcher.state.detector_error,
        versions=[
            ModelVersionOut(
                version=v.version, added_at=v.added_at, promoted=v.version == registry.promoted, summary=v.summary
            )
            for v in registry.versions.values()
        ],
    )


@router.get("", response_model=ModelsOut, responses=responses(*AUTH))
def list_models(request: Request, _: Reader) -> ModelsOut:
    """Registered versions (`envwatch models list` shows the same) and the one serving."""
    return _models(request.app.state.model_watcher)


@router.post("/reload", response_model=ModelsOut, responses=responses(*AUTH))
def reload_model(request: Request, _: Admin) -> ModelsOut:
    """Load the promoted version now instead of at the next registry check; requests in flight finish on the old one.

    A model that fails to load leaves the old one serving; `error` says why.
    """
    watcher: ModelWatcher = request.app.state.model_watcher
    watcher.check(force=True)
    return _models(watcher)
