"""`/v1/models`: the registry's model versions, which one serves, reloading, promotion, rollback and learning."""

from __future__ import annotations

from fastapi import APIRouter, Request

from inference_api import photo_labels
from inference_api.auth import Admin, Reader
from inference_api.deps import StateDep
from inference_api.errors import AUTH, ApiError, responses
from inference_api.model_watch import ModelWatcher
from inference_api.schemas import LearnIn, LearnOut, ModelsOut, ModelVersionOut, PromoteIn
from model.registry import Registry, RegistryError, check_loadable

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


@router.post("/learn", status_code=201, response_model=LearnOut, responses=responses(*AUTH, 409, 422))
def learn(body: LearnIn, state: StateDep, principal: Admin) -> LearnOut:
    """Learn every type with enough photo labels on the promoted version's backbone (seconds): a new version.

    The version is registered, not promoted: read the cross-validated recall and false alarms per type,
    then promote it (`POST /v1/models/promote`). 422 `too_few_labels`, `contradictory_labels`,
    `no_backbone`, `invalid_version`; 409 `learn_running` while another learn runs, `model_pinned` on a service
    pinned to one file (`ENVWATCH_MODEL_PATH`). A refused or failed learn writes nothing.
    """
    return LearnOut(**photo_labels.learn(state, principal, body.version))


def _changed(request: Request, change: str, version: str | None, by: str) -> ModelsOut:
    """Promote `version` (or roll back) in the service's registry, checked to load first, and serve it at once."""
    watcher: ModelWatcher = request.app.state.model_watcher
    photo_labels.refuse_if_pinned(watcher.state.settings)
    registry = Registry(watcher.state.settings.model_registry)
    if version is not None and version not in registry.versions:
        raise ApiError(404, "not_found", f"no model version {version!r} (known: {', '.join(registry.versions)})")
    try:
        if version is None:
            registry.rollback(by, check=check_loadable)
        else:
            registry.promote(version, by, check=check_loadable)
    except RegistryError as exc:
        raise ApiError(409, f"{change}_refused", str(exc)) from None
    watcher.check(force=True)
    return _models(watcher)


@router.post("/promote", response_model=ModelsOut, responses=responses(*AUTH, 404, 409, 422))
def promote(body: PromoteIn, request: Request, principal: Admin) -> ModelsOut:
    """Serve a registered version (as `envwatch models promote`); the service switches at once.

    409 `promote_refused` (already promoted, or the file does not load: nothing changes), `model_pinned`.
    """
    return _changed(request, "promote", body.version, principal.name)


@router.post("/rollback", response_model=ModelsOut, responses=responses(*AUTH, 409))
def rollback(request: Request, principal: Admin) -> ModelsOut:
    """Serve again the version promoted before the current one (as `envwatch models rollback`)."""
    return _changed(request, "rollback", None, principal.name)
