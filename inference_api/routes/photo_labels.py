"""`/v1/photo-labels`: "this photo shows X" / "does not show X", and which photo to label next."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from inference_api import photo_labels, presenters
from inference_api.auth import Reader, Writer
from inference_api.deps import DB_INT_MAX, DetectorDep, IdPath, Offset, SessionDep, StateDep
from inference_api.errors import AUTH, responses
from inference_api.schemas import PhotoLabelCreate, PhotoLabelOut, PhotoLabelPage, ProblemTypeKey, UncertainPage

router = APIRouter(prefix="/v1/photo-labels", tags=["labels"])


@router.post("", status_code=201, response_model=PhotoLabelOut, responses=responses(*AUTH, 404, 422))
def create_photo_label(body: PhotoLabelCreate, state: StateDep, principal: Writer) -> PhotoLabelOut:
    """Say whether a stored photo shows a problem type (any taxonomy type, no box); who, when and the model
    version the photo was scored by are recorded. New types are learned from these (`POST /v1/models/learn`)."""
    return photo_labels.create(state, principal, body)


@router.get("", response_model=PhotoLabelPage, responses=responses(*AUTH, 422))
def list_photo_labels(
    session: SessionDep,
    _: Reader,
    image_id: Annotated[int | None, Query(ge=1, le=DB_INT_MAX)] = None,
    type: Annotated[ProblemTypeKey | None, Query(description="Problem type.")] = None,  # noqa: A002
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> PhotoLabelPage:
    """Live photo labels (deleted ones left out), oldest first."""
    total, rows = photo_labels.listed(session, image_id, type.value if type else None, limit, offset)
    return PhotoLabelPage(total=total, limit=limit, offset=offset, items=[presenters.photo_label_out(r) for r in rows])


@router.get("/uncertain", response_model=UncertainPage, responses=responses(*AUTH, 422, 503))
def uncertain_photos(
    state: StateDep,
    detector: DetectorDep,
    _: Reader,
    type: Annotated[ProblemTypeKey, Query(description="Problem type.")],  # noqa: A002
    limit: Annotated[int, Query(ge=1, le=100)] = 12,
) -> UncertainPage:
    """Stored photos not yet labelled for `type` whose score is most uncertain: label these next (active learning).

    Scored by a head fitted now on the answers so far (photo labels, boxes, reviews) on the serving model's
    backbone; 422 `too_few_labels` until at least 2 photos show the type and 2 do not, `no_backbone` for a
    model without a photo classifier.
    """
    return photo_labels.uncertain(state, detector.path, type.value, limit)


@router.delete("/{label_id}", status_code=204, responses=responses(*AUTH, 404, 409, 422))
def delete_photo_label(label_id: IdPath, state: StateDep, principal: Writer) -> Response:
    """Mark the photo label deleted (kept, with who and when; learning leaves it out)."""
    photo_labels.delete(state, principal, label_id)
    return Response(status_code=204)
