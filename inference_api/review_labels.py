"""Labels from reviews: draw, fix and delete boxes; gather what reviews teach; Label Studio import.

What a photo teaches is derived when asked, never copied: a confirmed finding is a positive box
(its live correction, if any, replaces its box and type), a dismissed one a hard negative, and a
manual or imported label a positive. So a later review (or a fixed box) changes the next export
without anyone keeping two records in step. Training semantics: training/reviews.py.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from inference_api import review_store, store
from inference_api.auth import Principal
from inference_api.db import transaction
from inference_api.deps import AppState
from inference_api.errors import ApiError
from inference_api.models import Finding, Image, Label, utcnow
from inference_api.schemas import ImportSkip, LabelBox, LabelCreate, LabelImport, LabelSource, LabelUpdate
from inference_api.storage import ImageStore
from model.taxonomy import trainable_labels
from training.labelstudio import ImportedBox, LabelStudioError, from_tasks
from training.reviews import ReviewedBox, ReviewedImage

ROUNDING_PX = 0.5
"""Boxes closer than this (each coordinate, in pixels) are the same box: what a round trip through percent may move."""
MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG", ".png"), (b"BM", ".bmp"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"))


def checked_box(box: LabelBox | tuple[float, float, float, float], image: Image) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (box.x1, box.y1, box.x2, box.y2) if isinstance(box, LabelBox) else box
    if not (x2 - x1 >= 1 and y2 - y1 >= 1 and x2 <= image.width and y2 <= image.height):
        raise ApiError(
            422,
            "invalid_box",
            f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) must be at least 1 px wide and high, with x1 < x2 <= "
            f"{image.width} and y1 < y2 <= {image.height} (the photo's upright size)",
        )
    return x1, y1, x2, y2


def checked_label(type_: str, label: str | None) -> str:
    allowed = trainable_labels(type_)
    if label is None:
        return allowed[0]
    if label not in allowed:
        raise ApiError(422, "invalid_label", f"a {type_} box trains as {' or '.join(allowed)}, not {label!r}")
    return label


def _set_box(row: Label, box: tuple[float, float, float, float]) -> None:
    row.x1, row.y1, row.x2, row.y2 = box


def create(state: AppState, principal: Principal, body: LabelCreate) -> int:
    """A manual label (image_id) or a correction (finding_id); returns its id."""
    if (body.image_id is None) == (body.finding_id is None):
        raise ApiError(422, "invalid_request", "give exactly one of image_id (draw a box) or finding_id (fix one)")
    try:
        with transaction(state.sessions) as session:
            row = _correction(session, body) if body.finding_id is not None else _manual(session, body)
            row.note, row.created_by, row.created_at = body.note, principal.name, utcnow()
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:  # another request corrected the same finding first
        raise _already_corrected(state, body.finding_id) from None


def _manual(session: Session, body: LabelCreate) -> Label:
    image = store.get_image(session, body.image_id or 0)
    if image is None:
        raise ApiError(404, "not_found", f"no image {body.image_id}")
    if body.type is None or body.box is None:
        raise ApiError(422, "invalid_request", "a label drawn on a photo needs type and box")
    row = Label(image_id=image.id, type=body.type.value, source=LabelSource.manual.value)
    row.label = checked_label(row.type, body.label)
    _set_box(row, checked_box(body.box, image))
    return row


def _correction(session: Session, body: LabelCreate) -> Label:
    finding = store.get_finding(session, body.finding_id or 0)
    if finding is None:
        raise ApiError(404, "not_found", f"no finding {body.finding_id}")
    if body.type is None and body.box is None:
        raise ApiError(422, "invalid_request", "a correction changes box or type; to accept a finding, confirm it")
    existing = review_store.live_correction(session, finding.id)
    if existing is not None:
        raise ApiError(409, "already_corrected", f"finding {finding.id} has correction {existing.id}: change that")
    type_ = body.type.value if body.type is not None else finding.type
    label = body.label if body.label is not None or type_ != finding.type else finding.label
    row = Label(image_id=finding.image_id, finding_id=finding.id, type=type_, source=LabelSource.correction.value)
    row.label, row.proposed_by = checked_label(type_, label), finding.model_version
    _set_box(row, checked_box(body.box or (finding.x1, finding.y1, finding.x2, finding.y2), finding.image))
    return row


def _already_corrected(state: AppState, finding_id: int | None) -> ApiError:
    with state.sessions() as session:
        existing = review_store.live_correction(session, finding_id or 0)
    return ApiError(409, "already_corrected", f"finding {finding_id} has correction {existing and existing.id}")


def live_label(session: Session, label_id: int) -> Label:
    row = review_store.get_label(session, label_id)
    if row is None:
        raise ApiError(404, "not_found", f"no label {label_id}")
    if row.deleted_at is not None:
        raise ApiError(409, "label_deleted", f"label {label_id} was deleted by {row.deleted_by} at {row.deleted_at}")
    return row


def _concurrent_change(what: str) -> ApiError:
    return ApiError(409, "concurrent_change", f"{what} was changed by someone else meanwhile; reload and retry")


def update(state: AppState, principal: Principal, label_id: int, body: LabelUpdate) -> None:
    """Fix a label's box, type, label or note, recording who and when; 409 when another edit came first.

    The checks below read the row as it was; `Label.version` makes the UPDATE fail when another edit
    committed since, so what is stored is always a pair some check allowed.
    """
    if not body.model_fields_set:
        raise ApiError(422, "invalid_request", "nothing to change: give box, type, label or note")
    try:
        _update(state, principal, label_id, body)
    except StaleDataError:
        raise _concurrent_change(f"label {label_id}") from None


def _update(state: AppState, principal: Principal, label_id: int, body: LabelUpdate) -> None:
    with transaction(state.sessions) as session:
        row = live_label(session, label_id)
        if body.type is not None and body.type.value != row.type:
            row.type = body.type.value
            row.label = checked_label(row.type, body.label)
        elif body.label is not None:
            row.label = checked_label(row.type, body.label)
        if body.box is not None:
            _set_box(row, checked_box(body.box, row.image))
        if "note" in body.model_fields_set:
            row.note = body.note
        row.updated_by, row.updated_at = principal.name, utcnow()


def delete(state: AppState, principal: Principal, label_id: int) -> None:
    """Mark the label deleted: exports leave it out, the row (and who deleted it) stays."""
    try:
        with transaction(state.sessions) as session:
            row = live_label(session, label_id)
            row.deleted_by, row.deleted_at = principal.name, utcnow()
    except StaleDataError:
        raise _concurrent_change(f"label {label_id}") from None


# ---------------------------------------------------------------- what reviews teach


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _decision(finding: Finding) -> tuple[str, str]:
    """Who moved the finding out of candidate, and when."""
    for event in finding.events:
        if event.from_status == "candidate":
            return event.actor, _iso(event.at)
    return "unknown", _iso(finding.updated_at)


def _label_box(row: Label) -> ReviewedBox:
    return ReviewedBox(
        label=row.label,
        type=row.type,
        box=(row.x1, row.y1, row.x2, row.y2),
        kind=row.source,
        by=row.updated_by or row.created_by,
        at=_iso(row.updated_at or row.created_at),
        model_version=row.proposed_by,
        ref=f"label:{row.id}",
    )


def suffix_of(path: Path) -> str:
    """The file name suffix training tools need, from the stored bytes (uploads keep no file name).

    HEIC is exported as JPEG (`as_training_file`), so it is `.jpg` here like any unknown start.
    """
    with open(path, "rb") as handle:
        head = handle.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    return next((suffix for magic, suffix in MAGIC if head.startswith(magic)), ".jpg")


def reviewed_images(session: Session, files: ImageStore) -> list[ReviewedImage]:
    """Every photo with a positive box or a hard negative, with its boxes."""
    positives: dict[int, list[ReviewedBox]] = defaultdict(list)
    negatives: dict[int, list[ReviewedBox]] = defaultdict(list)
    labels = review_store.live_labels(session)
    corrected = {row.finding_id for row in labels if row.finding_id is not None}
    for row in labels:
        positives[row.image_id].append(_label_box(row))
    for finding in review_store.reviewed_findings(session):
        by, at = _decision(finding)
        box = ReviewedBox(
            label=finding.label,
            type=finding.type,
            box=(finding.x1, finding.y1, finding.x2, finding.y2),
            kind="dismissed" if finding.status == "dismissed" else "confirmed",
            by=by,
            at=at,
            model_version=finding.model_version,
            ref=f"finding:{finding.id}",
        )
        if finding.status == "dismissed":
            negatives[finding.image_id].append(box)
        elif finding.id not in corrected:
            positives[finding.image_id].append(box)
    images = review_store.images_by_id(session, set(positives) | set(negatives))
    return [
        ReviewedImage(
            sha256=image.sha256,
            suffix=suffix_of(files.path(image.sha256)),
            width=image.width,
            height=image.height,
            boxes=tuple(positives[image.id]),
            hard_negatives=tuple(negatives[image.id]),
        )
        for image in sorted(images.values(), key=lambda i: i.id)
    ]


# ---------------------------------------------------------------- Label Studio


def import_label_studio(state: AppState, principal: Principal, tasks: list[Any]) -> LabelImport:
    """Store the boxes of a Label Studio export in one transaction; see training/labelstudio.py."""
    try:
        return _import_tasks(state, principal, tasks)
    except StaleDataError:
        raise _concurrent_change("a label this import changes") from None


def _import_tasks(state: AppState, principal: Principal, tasks: list[Any]) -> LabelImport:
    with transaction(state.sessions) as session:
        try:
            boxes, skipped = from_tasks(tasks, lambda sha: _size(session, sha))
        except LabelStudioError as exc:
            raise ApiError(422, "invalid_label_studio", str(exc)) from None
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        skips = [ImportSkip(task=s.task, reason=s.reason) for s in skipped]
        for box in boxes:
            try:
                counts[_import_box(session, principal, box)] += 1
            except ApiError as exc:
                skips.append(ImportSkip(task=box.external_id, reason=exc.message))
    return LabelImport(tasks=len(tasks), skipped=skips, **counts)


def _size(session: Session, sha256: str) -> tuple[int, int] | None:
    image = store.image_by_sha(session, sha256)
    return (image.width, image.height) if image else None


def _same(row: Label | Finding, box: ImportedBox) -> bool:
    coords = (row.x1, row.y1, row.x2, row.y2)
    return row.label == box.label and all(abs(a - b) <= ROUNDING_PX for a, b in zip(coords, box.box, strict=True))


def _import_box(session: Session, principal: Principal, box: ImportedBox) -> str:
    """Store one imported box; returns created, updated or unchanged."""
    image = store.image_by_sha(session, box.sha256)
    assert image is not None  # from_tasks skipped boxes of unknown photos
    clipped = checked_box(
        (max(box.box[0], 0.0), max(box.box[1], 0.0), min(box.box[2], image.width), min(box.box[3], image.height)),
        image,
    )
    now, by = utcnow(), f"{principal.name} (Label Studio {box.by})"
    kind, _, number = (box.ref or "").partition(":")
    target = None
    if kind == "label":
        target = review_store.get_label(session, int(number))
    elif kind == "finding":
        finding = store.get_finding(session, int(number))
        if finding is not None and finding.image_id == image.id:
            target = review_store.live_correction(session, finding.id)
            if target is None:
                if _same(finding, box):
                    return "unchanged"
                row = Label(image_id=image.id, finding_id=finding.id, source=LabelSource.correction.value)
                row.proposed_by = finding.model_version
                return _fill(session, row, box, clipped, by, now)
    if target is not None and target.deleted_at is None and target.image_id == image.id:
        if _same(target, box):
            return "unchanged"
        target.type, target.label = box.type, box.label
        _set_box(target, clipped)
        target.updated_by, target.updated_at = by, now
        return "updated"
    if review_store.label_by_external_id(session, box.external_id) is not None:
        return "unchanged"
    row = Label(image_id=image.id, source=LabelSource.label_studio.value, external_id=box.external_id)
    return _fill(session, row, box, clipped, by, now)


def _fill(session: Session, row: Label, box: ImportedBox, clipped: tuple, by: str, now: datetime) -> str:
    row.type, row.label, row.created_by, row.created_at = box.type, box.label, by, now
    _set_box(row, clipped)
    session.add(row)
    session.flush()
    return "created"
