"""`/v1/inspections`: upload photos of one inspection visit and get the detector's findings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from inference_api import presenters, services, store
from inference_api.auth import Principal, Reader, Writer
from inference_api.deps import AppState, DetectorDep, IdPath, Offset, SessionDep, StateDep, require_storage
from inference_api.errors import AUTH, ApiError, responses
from inference_api.pool import Overloaded
from inference_api.schemas import TILE_HELP, InspectionOut, InspectionPage, Text
from model.tiling import TileMode

if TYPE_CHECKING:
    from model.runtime import Detector

router = APIRouter(prefix="/v1/inspections", tags=["inspections"])


def _overloaded(state: AppState, exc: Overloaded) -> ApiError:
    state.metrics.rejected.inc()
    return ApiError(
        503,
        "overloaded",
        f"the detector is busy ({exc}); retry later",
        headers={"Retry-After": str(state.settings.retry_after_s)},
    )


def _ingest(
    state: AppState,
    principal: Principal,
    detector: Detector,
    files: list[UploadFile],
    meta: services.InspectionMeta,
    conf: float | None,
    tile: TileMode,
) -> tuple[int, bool]:
    """The whole upload as one pool job, so file bytes are held only while a worker handles them."""
    settings = state.settings
    uploads = [services.read_upload(f.filename, f.file, settings.max_upload_bytes) for f in files]
    analysed = services.analyse(uploads, detector, settings, conf, tile)
    for item in analysed:
        state.metrics.images.labels("ok" if item.ok else "rejected").inc()
    if not any(item.ok for item in analysed):
        errors = [item.error for item in analysed if item.error is not None]
        raise ApiError(
            422,
            "no_valid_images",
            "no uploaded file could be used: " + "; ".join(f"{e.file}: {e.message}" for e in errors),
            files=errors,
        )
    return services.persist_inspection(state, principal, meta, analysed)


@router.post(
    "",
    status_code=201,
    response_model=InspectionOut,
    summary="Upload the photos of one inspection and score them",
    responses={
        200: {"model": InspectionOut, "description": "Replay: an inspection with this client_id exists."},
        **responses(*AUTH, 413, 422, 503, 507),
    },
)
def create_inspection(
    state: StateDep,
    principal: Writer,
    detector: DetectorDep,
    response: Response,
    files: Annotated[list[UploadFile], File(min_length=1, description="One or more photos (JPEG, PNG, ...).")],
    inspector: Annotated[Text | None, Form(max_length=200)] = None,
    region: Annotated[Text | None, Form(max_length=200)] = None,
    township: Annotated[Text | None, Form(max_length=200)] = None,
    village: Annotated[Text | None, Form(max_length=200)] = None,
    note: Annotated[Text | None, Form(max_length=4000)] = None,
    client_id: Annotated[
        Text | None,
        Form(max_length=200, description="Idempotency key: resending it returns the first inspection, doing nothing."),
    ] = None,
    conf: Annotated[
        float | None,
        Form(ge=0.0001, le=1.0, description="Detector confidence override; omitted: the model's shipped thresholds."),
    ] = None,
    tile: Annotated[TileMode, Form(description=TILE_HELP)] = "auto",
    device_lat: Annotated[
        float | None, Form(ge=-90, le=90, description="The uploading device's latitude, for photos without GPS.")
    ] = None,
    device_lon: Annotated[float | None, Form(ge=-180, le=180, description="Goes with device_lat.")] = None,
    device_accuracy_m: Annotated[
        float | None, Form(ge=0, le=100_000, description="The radius (metres) the device reported for its position.")
    ] = None,
) -> InspectionOut:
    if client_id:
        with state.sessions() as session:
            existing = store.inspection_by_client_id(session, client_id)
        if existing is not None:
            response.status_code = 200
            return presenters.inspection_out(existing)
    if len(files) > state.settings.max_files:
        raise ApiError(413, "too_many_files", f"{len(files)} files; at most {state.settings.max_files} per inspection")
    require_storage(state)
    device = services.device_position(device_lat, device_lon, device_accuracy_m)
    meta = services.InspectionMeta(inspector, region, township, village, note, client_id or None, device)
    try:
        inspection_id, created = state.pool.run(_ingest, state, principal, detector, files, meta, conf, tile)
    except Overloaded as exc:
        raise _overloaded(state, exc) from exc
    with state.sessions() as session:
        inspection = store.get_inspection(session, inspection_id)
    assert inspection is not None
    if not created:
        response.status_code = 200  # a concurrent request with the same client_id won; this is its replay
    return presenters.inspection_out(inspection)


@router.get("", response_model=InspectionPage, responses=responses(*AUTH, 422))
def list_inspections(
    session: SessionDep,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> InspectionPage:
    total, rows = store.list_inspections(session, limit, offset)
    return InspectionPage(total=total, limit=limit, offset=offset, items=[presenters.inspection_out(r) for r in rows])


@router.get("/{inspection_id}", response_model=InspectionOut, responses=responses(*AUTH, 404, 422))
def get_inspection(inspection_id: IdPath, session: SessionDep, _: Reader) -> InspectionOut:
    inspection = store.get_inspection(session, inspection_id)
    if inspection is None:
        raise ApiError(404, "not_found", f"no inspection {inspection_id}")
    return presenters.inspection_out(inspection)
