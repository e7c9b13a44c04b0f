"""`/v1/images/{id}`: stored photos, their metadata, and the photo with findings drawn on it."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from inference_api import presenters, services, store
from inference_api.auth import Reader
from inference_api.deps import AppState, IdPath, SessionDep, StateDep
from inference_api.errors import AUTH, ApiError, responses
from inference_api.models import Image
from inference_api.pool import Overloaded
from inference_api.routes.inspections import _overloaded
from inference_api.schemas import ImageOut

PRIVATE_FOREVER = {"Cache-Control": "private, max-age=31536000, immutable", "Vary": "Authorization, X-API-Key"}
"""A photo's bytes never change (the URL names them by id, the ETag by hash), but only a key may read
them: `Vary` keeps a browser's cache from answering a request made without the key (a shared tablet
after sign-out) with a response it stored for one."""

router = APIRouter(prefix="/v1/images", tags=["images"])


def _image(session: Session, image_id: int) -> Image:
    image = store.get_image(session, image_id)
    if image is None:
        raise ApiError(404, "not_found", f"no image {image_id}")
    return image


@router.get("/{image_id}", response_model=ImageOut, responses=responses(*AUTH, 404, 422))
def get_image(image_id: IdPath, session: SessionDep, _: Reader) -> ImageOut:
    return presenters.image_out(_image(session, image_id))


@router.get(
    "/{image_id}/original",
    responses={
        200: {
            "content": {"image/jpeg": {}, "image/png": {}, "application/octet-stream": {}},
            "description": "The bytes as uploaded (image/jpeg or image/png when they are one, else octet-stream)",
        },
        **responses(*AUTH, 404, 422),
    },
)
def get_original(image_id: IdPath, session: SessionDep, state: StateDep, _: Reader) -> Response:
    """Streamed from disk: a photo is never held whole in memory to be sent."""
    image = _image(session, image_id)
    path = state.images.path(image.sha256)
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise _missing(image) from None
    kind = "image/jpeg" if head[:3] == b"\xff\xd8\xff" else "image/png" if head[:8] == b"\x89PNG\r\n\x1a\n" else None
    return FileResponse(
        path,
        media_type=kind or "application/octet-stream",
        headers={"ETag": f'"{image.sha256}"', **PRIVATE_FOREVER},
    )


@router.get(
    "/{image_id}/annotated.jpg",
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The photo with finding boxes drawn"},
        **responses(*AUTH, 404, 422, 503),
    },
)
def get_annotated(image_id: IdPath, session: SessionDep, state: StateDep, _: Reader) -> Response:
    """Boxes of the findings raised on this photo, or, for a follow-up photo, of the problems still seen on it."""
    image = _image(session, image_id)
    boxes: list[services.Drawn] = [
        services.Drawn(f.type, f.score, (f.x1, f.y1, f.x2, f.y2), f.extent)
        for f in store.findings_on_image(session, image_id)
    ]
    for event in store.events_with_image(session, image_id):
        for p in event.followup or []:
            b = p["box"]
            boxes.append(
                services.Drawn(p["type"], p["score"], (b["x1"], b["y1"], b["x2"], b["y2"]), p.get("extent", "box"))
            )
    try:  # the photo is read on the worker: a full pool refuses before any of it is in memory
        jpeg = state.pool.run(_draw, state, image, boxes)
    except Overloaded as exc:
        raise _overloaded(state, exc) from exc
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


def _draw(state: AppState, image: Image, boxes: list[services.Drawn]) -> bytes:
    try:
        data = state.images.read(image.sha256)
    except FileNotFoundError:
        raise _missing(image) from None
    return services.annotate(data, boxes, state.settings)


def _missing(image: Image) -> ApiError:
    """A row whose file is gone (deleted by hand, a restore without the data dir): say so, not `internal`."""
    return ApiError(500, "image_file_missing", f"the stored file of image {image.id} ({image.sha256}) is missing")
