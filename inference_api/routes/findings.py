"""`/v1/findings`: the review ledger (filter, inspect history, move through review states)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import BeforeValidator

from inference_api import presenters, services, store
from inference_api.auth import Reader, Writer
from inference_api.deps import DB_INT_MAX, AppState, DetectorDep, IdPath, Offset, SessionDep, StateDep
from inference_api.errors import AUTH, ApiError, responses
from inference_api.pool import Overloaded
from inference_api.routes.inspections import _overloaded
from inference_api.schemas import (
    FindingDetail,
    FindingPage,
    ProblemTypeKey,
    Status,
    Summary,
    SummaryRegion,
    Transition,
)

router = APIRouter(prefix="/v1/findings", tags=["findings"])


def _iso_only(value: object) -> object:
    """Refuse a bare number: pydantic would read it as a Unix time, but the API takes ISO 8601 date-times."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("expected an ISO 8601 date-time, e.g. 2024-05-01T08:00:00+08:00")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only)]


def _utc(value: datetime | None, name: str) -> datetime | None:
    """An aware UTC datetime (naive means UTC, as stored), or 422 when the offset takes it past year 1 or 9999."""
    if value is None:
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise ApiError(422, "invalid_request", f"'{name}' is out of the representable range") from None


def finding_filter(
    type: Annotated[ProblemTypeKey | None, Query(description="Problem type.")] = None,  # noqa: A002
    status: Annotated[Status | None, Query(description="Review status.")] = None,
    region: Annotated[str | None, Query(description="Inspection region, exact match.")] = None,
    date_from: Annotated[
        IsoDatetime | None, Query(alias="from", description="Observed at or after (EXIF capture time, else upload).")
    ] = None,
    date_to: Annotated[IsoDatetime | None, Query(alias="to", description="Observed at or before.")] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    inspection_id: Annotated[int | None, Query(ge=1, le=DB_INT_MAX)] = None,
) -> store.FindingFilter:
    """The filters shared by the list, summary and export endpoints."""
    date_from, date_to = _utc(date_from, "from"), _utc(date_to, "to")
    if date_from and date_to and date_from > date_to:
        raise ApiError(422, "invalid_request", "'from' is after 'to'")
    return store.FindingFilter(
        type=type.value if type else None,
        status=status.value if status else None,
        region=region,
        date_from=date_from,
        date_to=date_to,
        min_score=min_score,
        inspection_id=inspection_id,
    )


FilterDep = Annotated[store.FindingFilter, Depends(finding_filter)]


@router.get("", response_model=FindingPage, responses=responses(*AUTH, 422))
def list_findings(
    session: SessionDep,
    _: Reader,
    where: FilterDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> FindingPage:
    total, rows = store.list_findings(session, where, limit, offset)
    return FindingPage(total=total, limit=limit, offset=offset, items=[presenters.finding_out(f) for f in rows])


@router.get("/summary", response_model=Summary, responses=responses(*AUTH, 422))
def summary(session: SessionDep, _: Reader, where: FilterDep) -> Summary:
    """Counts per region, by problem type and by review status."""
    regions: dict[str | None, SummaryRegion] = {}
    for region, type_, status, n in store.summary_counts(session, where):
        entry = regions.setdefault(
            region, SummaryRegion(region=region, total=0, by_type={}, by_status={}, by_type_status={})
        )
        entry.total += n
        entry.by_type[type_] = entry.by_type.get(type_, 0) + n
        entry.by_status[status] = entry.by_status.get(status, 0) + n
        entry.by_type_status.setdefault(type_, defaultdict(int))[status] += n
    ordered = sorted(regions.values(), key=lambda r: (r.region is None, r.region or ""))
    for entry in ordered:
        entry.by_type_status = {t: dict(s) for t, s in entry.by_type_status.items()}
    return Summary(total=sum(r.total for r in ordered), regions=ordered)


@router.get("/{finding_id}", response_model=FindingDetail, responses=responses(*AUTH, 404, 422))
def get_finding(finding_id: IdPath, session: SessionDep, _: Reader) -> FindingDetail:
    finding = store.get_finding(session, finding_id, with_history=True)
    if finding is None:
        raise ApiError(404, "not_found", f"no finding {finding_id}")
    return presenters.finding_detail(finding)


@router.post("/{finding_id}/transitions", response_model=FindingDetail, responses=responses(*AUTH, 404, 409, 422))
def transition(finding_id: IdPath, body: Transition, state: StateDep, principal: Writer) -> FindingDetail:
    """Move the finding along the review workflow.

    candidate → confirmed | dismissed; confirmed → rectification_ordered → rectified → closed;
    a failed re-check sends rectified back to rectification_ordered. Anything else is 409.
    """
    services.transition(state, principal, finding_id, body.to, body.note)
    return _detail(state, finding_id)


@router.post(
    "/{finding_id}/rectification",
    response_model=FindingDetail,
    responses=responses(*AUTH, 404, 409, 413, 422, 503),
    summary="Report the finding rectified, optionally with a follow-up photo",
)
def rectify(
    finding_id: IdPath,
    state: StateDep,
    principal: Writer,
    detector: DetectorDep,
    note: Annotated[str | None, Form(max_length=4000)] = None,
    file: Annotated[UploadFile | None, File(description="Follow-up photo; scored by the detector and kept.")] = None,
) -> FindingDetail:
    """rectification_ordered → rectified, with the follow-up photo's own detector results in the history."""
    followup = None
    if file is not None:
        try:
            followup = state.pool.run(_score_followup, state, detector, file)
        except Overloaded as exc:
            raise _overloaded(state, exc) from exc
        if followup.error is not None:
            raise ApiError(
                422,
                "invalid_image",
                f"{followup.name}: {followup.error.message}",
                file=followup.name,
                files=[followup.error],
            )
    services.transition(state, principal, finding_id, Status.rectified, note, followup)
    return _detail(state, finding_id)


def _score_followup(state: AppState, detector: object, file: UploadFile) -> services.Analysed:
    upload = services.read_upload(file.filename, file.file, state.settings.max_upload_bytes)
    return services.analyse([upload], detector, state.settings, None)[0]


def _detail(state: AppState, finding_id: int) -> FindingDetail:
    with state.sessions() as session:
        finding = store.get_finding(session, finding_id, with_history=True)
    if finding is None:
        raise ApiError(404, "not_found", f"no finding {finding_id}")
    return presenters.finding_detail(finding)
