"""ORM rows to API schemas, in one place so every endpoint shows a finding the same way."""

from __future__ import annotations

from inference_api.models import Finding, FindingEvent, Image, Inspection, InspectionFile, Label, PhotoLabel
from inference_api.schemas import (
    Box,
    FileError,
    FileResult,
    FindingDetail,
    FindingEventOut,
    FindingOut,
    FollowupProblem,
    Gps,
    ImageOut,
    InspectionOut,
    LabelOut,
    LabelSource,
    PhotoLabelOut,
    Position,
    PositionSource,
    Status,
)


def gps(lat: float | None, lon: float | None, alt: float | None) -> Gps | None:
    return Gps(lat=lat, lon=lon, alt=alt) if lat is not None and lon is not None else None


def position(finding: Finding) -> Position | None:
    if finding.lat is None or finding.lon is None:
        return None
    # No source stored yet a position: an imported orthomosaic's ground position (no EXIF GPS): the photo's.
    source = PositionSource(finding.position_source or PositionSource.photo)
    accuracy = finding.position_accuracy_m
    return Position(lat=finding.lat, lon=finding.lon, alt=finding.alt, source=source, accuracy_m=accuracy)


def image_out(image: Image) -> ImageOut:
    return ImageOut(
        id=image.id,
        sha256=image.sha256,
        width=image.width,
        height=image.height,
        bytes=image.bytes,
        gps=gps(image.lat, image.lon, image.alt),
        captured_at=image.captured_at,
    )


def finding_out(finding: Finding) -> FindingOut:
    inspection = finding.inspection
    return FindingOut(
        id=finding.id,
        inspection_id=finding.inspection_id,
        image_id=finding.image_id,
        type=finding.type,
        label=finding.label,
        score=round(finding.score, 4),
        box=Box(x1=finding.x1, y1=finding.y1, x2=finding.x2, y2=finding.y2),
        extent=finding.extent,
        gps=position(finding),
        captured_at=finding.captured_at,
        observed_at=finding.observed_at,
        model_version=finding.model_version,
        status=Status(finding.status),
        region=inspection.region,
        township=inspection.township,
        village=inspection.village,
        created_at=finding.created_at,
        updated_at=finding.updated_at,
        deadline=finding.deadline,
        overdue=finding.status == Status.rectification_ordered and finding.overdue_at is not None,
        overdue_at=finding.overdue_at,
        rectified_late=finding.rectified_late,
        recurrence_of=finding.recurrence_of_id,
    )


def event_out(event: FindingEvent) -> FindingEventOut:
    return FindingEventOut(
        id=event.id,
        from_status=Status(event.from_status) if event.from_status else None,
        to_status=Status(event.to_status),
        actor=event.actor,
        note=event.note,
        at=event.at,
        image_id=event.image_id,
        followup_problems=[FollowupProblem.model_validate(p) for p in event.followup]
        if event.followup is not None
        else None,
        model_version=event.model_version,
        deadline=event.deadline,
    )


def finding_detail(finding: Finding) -> FindingDetail:
    return FindingDetail(**finding_out(finding).model_dump(), history=[event_out(e) for e in finding.events])


def file_result(row: InspectionFile, findings: list[Finding]) -> FileResult:
    if row.image is None:
        return FileResult(
            file=row.filename,
            ok=False,
            error=FileError(file=row.filename, code=row.error_code or "invalid", message=row.error_message or ""),
        )
    return FileResult(
        file=row.filename,
        ok=True,
        image=image_out(row.image),
        model_version=row.model_version,
        detections=row.detections,
        findings=[f.id for f in findings if f.image_id == row.image_id],
        warnings=list(row.warnings or []),
    )


def inspection_out(inspection: Inspection) -> InspectionOut:
    findings = list(inspection.findings)
    for f in findings:
        f.inspection = inspection
    return InspectionOut(
        id=inspection.id,
        client_id=inspection.client_id,
        inspector=inspection.inspector,
        region=inspection.region,
        township=inspection.township,
        village=inspection.village,
        note=inspection.note,
        created_by=inspection.created_by,
        created_at=inspection.created_at,
        files=[file_result(row, findings) for row in inspection.files],
        findings=[finding_out(f) for f in findings],
    )


def photo_label_out(row: PhotoLabel) -> PhotoLabelOut:
    return PhotoLabelOut(
        id=row.id,
        image_id=row.image_id,
        type=row.type,
        shows=row.shows,
        shown_model=row.shown_model,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
        deleted_by=row.deleted_by,
        deleted_at=row.deleted_at,
    )


def label_out(row: Label) -> LabelOut:
    return LabelOut(
        id=row.id,
        image_id=row.image_id,
        finding_id=row.finding_id,
        type=row.type,
        label=row.label,
        box=Box(x1=row.x1, y1=row.y1, x2=row.x2, y2=row.y2),
        source=LabelSource(row.source),
        proposed_by=row.proposed_by,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        deleted_by=row.deleted_by,
        deleted_at=row.deleted_at,
    )
