"""`/v1/labels`: boxes inspectors draw or fix, what reviews teach per type, exports and imports."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from inference_api import presenters, review_labels, review_store
from inference_api.auth import Reader, Writer
from inference_api.deps import DB_INT_MAX, IdPath, Offset, SessionDep, StateDep
from inference_api.errors import AUTH, ApiError, responses
from inference_api.schemas import (
    LabelCreate,
    LabelImport,
    LabelOut,
    LabelPage,
    LabelSource,
    LabelSummary,
    LabelTypeCount,
    LabelUpdate,
    ProblemTypeKey,
)
from model.taxonomy import PROBLEM_TYPES
from training.labelstudio import to_tasks
from training.reviews import export_files

router = APIRouter(prefix="/v1/labels", tags=["labels"])

IdQuery = Annotated[int | None, Query(ge=1, le=DB_INT_MAX)]


@router.get("", response_model=LabelPage, responses=responses(*AUTH, 422))
def list_labels(
    session: SessionDep,
    _: Reader,
    image_id: IdQuery = None,
    finding_id: IdQuery = None,
    type: Annotated[ProblemTypeKey | None, Query(description="Problem type.")] = None,  # noqa: A002
    source: LabelSource | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> LabelPage:
    """Live labels (deleted ones are left out), oldest first; e.g. `?image_id=` for the boxes on one photo."""
    kind = source.value if source else None
    where = review_store.LabelFilter(image_id, finding_id, type.value if type else None, kind)
    total, rows = review_store.list_labels(session, where, limit, offset)
    return LabelPage(total=total, limit=limit, offset=offset, items=[presenters.label_out(r) for r in rows])


@router.post("", status_code=201, response_model=LabelOut, responses=responses(*AUTH, 404, 409, 422))
def create_label(body: LabelCreate, state: StateDep, principal: Writer) -> LabelOut:
    """Draw a box of any problem type on a stored photo (`image_id`), or fix a finding's box or type (`finding_id`).

    A correction keeps the model version that proposed the finding; a finding has at most one live
    correction (409 `already_corrected`: PATCH that one).
    """
    return _out(state, review_labels.create(state, principal, body))


@router.get("/summary", response_model=LabelSummary, responses=responses(*AUTH))
def summary(session: SessionDep, state: StateDep, _: Reader) -> LabelSummary:
    """Per problem type, the positives and hard negatives reviews have produced: how close a type is to training."""
    images = review_labels.reviewed_images(session, state.images)
    counts: dict[str, dict[str, Any]] = defaultdict(lambda: {"positives": 0, "hard_negatives": 0, "images": set()})
    for image in images:
        for kind, boxes in (("positives", image.boxes), ("hard_negatives", image.hard_negatives)):
            for box in boxes:
                counts[box.type][kind] += 1
                counts[box.type]["images"].add(image.sha256)
    return LabelSummary(
        reviewed_images=len(images),
        types=[
            LabelTypeCount(
                type=p.key,
                name_zh=p.name_zh,
                name_en=p.name_en,
                positives=counts[p.key]["positives"],
                hard_negatives=counts[p.key]["hard_negatives"],
                images=len(counts[p.key]["images"]),
            )
            for p in PROBLEM_TYPES
        ],
    )


@router.get(
    "/export/yolo",
    responses={
        200: {"content": {"application/zip": {}}, "description": "YOLO dataset with provenance (docs/reviews.md)"},
        **responses(*AUTH),
    },
)
def export_yolo(session: SessionDep, state: StateDep, _: Reader) -> FileResponse:
    """Every reviewed photo with its boxes as a YOLO dataset (fixed split by sha256), data.yaml and provenance."""
    images = review_labels.reviewed_images(session, state.images)
    fd, path = tempfile.mkstemp(prefix="envwatch-reviews-", suffix=".zip")
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in export_files(images, state.images.read):
                archive.writestr(name, data)
    except BaseException:
        os.unlink(path)
        raise
    return FileResponse(
        path, media_type="application/zip", filename="envwatch-reviews.zip", background=BackgroundTask(os.unlink, path)
    )


@router.get(
    "/export/label-studio",
    responses={
        200: {"content": {"application/json": {}}, "description": "Label Studio tasks"},
        **responses(*AUTH, 422),
    },
)
def export_label_studio(
    session: SessionDep,
    state: StateDep,
    _: Reader,
    image_prefix: Annotated[
        str,
        Query(
            max_length=500,
            description="Put before `images/<split>/<file>` of the YOLO export to make each task's image URL, "
            "e.g. `/data/local-files/?d=envwatch-reviews/` for Label Studio's local file storage.",
        ),
    ] = "",
) -> JSONResponse:
    """Reviewed photos as Label Studio tasks: positives as one annotation, dismissed findings as predictions."""
    images = review_labels.reviewed_images(session, state.images)
    return JSONResponse(to_tasks(images, lambda i: f"{image_prefix}images/{i.split}/{i.file}"))


@router.post("/import/label-studio", response_model=LabelImport, responses=responses(*AUTH, 409, 413, 422))
def import_label_studio(
    state: StateDep,
    principal: Writer,
    tasks: Annotated[list[Any], Body(description="A Label Studio JSON export (a list of tasks).")],
) -> LabelImport:
    """Store the boxes of a Label Studio export: edits of exported boxes update them, new boxes become labels.

    Importing the same file again changes nothing; boxes that cannot be used are listed in `skipped`.
    """
    return review_labels.import_label_studio(state, principal, tasks)


@router.get("/{label_id}", response_model=LabelOut, responses=responses(*AUTH, 404, 422))
def get_label(label_id: IdPath, session: SessionDep, _: Reader) -> LabelOut:
    row = review_store.get_label(session, label_id)
    if row is None:
        raise ApiError(404, "not_found", f"no label {label_id}")
    return presenters.label_out(row)


@router.patch("/{label_id}", response_model=LabelOut, responses=responses(*AUTH, 404, 409, 422))
def update_label(label_id: IdPath, body: LabelUpdate, state: StateDep, principal: Writer) -> LabelOut:
    """Fix a label's box, type, detector label or note; who and when are recorded."""
    review_labels.update(state, principal, label_id, body)
    return _out(state, label_id)


@router.delete("/{label_id}", status_code=204, responses=responses(*AUTH, 404, 409, 422))
def delete_label(label_id: IdPath, state: StateDep, principal: Writer) -> Response:
    """Mark the label deleted (kept, with who and when; left out of exports)."""
    review_labels.delete(state, principal, label_id)
    return Response(status_code=204)


def _out(state: StateDep, label_id: int) -> LabelOut:
    with state.sessions() as session:
        row = review_store.get_label(session, label_id)
        assert row is not None
        return presenters.label_out(row)
