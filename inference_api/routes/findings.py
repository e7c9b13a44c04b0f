"""`/v1/findings`: the review ledger (filter, inspect history, move through review states)."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from pydantic import BeforeValidator

from inference_api import presenters, services, store, workbook
from inference_api.auth import Reader, Writer
from inference_api.deps import DB_INT_MAX, AppState, DetectorDep, IdPath, Offset, SessionDep, StateDep, require_storage
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
    Text,
    Transition,
)
from inference_api.spreadsheet import safe_cell
from model.taxonomy import PROBLEM_TYPES

if TYPE_CHECKING:
    from model.runtime import Detector

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
    region: Annotated[Text | None, Query(description="Inspection region, exact match.")] = None,
    date_from: Annotated[
        IsoDatetime | None, Query(alias="from", description="Observed at or after (EXIF capture time, else upload).")
    ] = None,
    date_to: Annotated[IsoDatetime | None, Query(alias="to", description="Observed at or before.")] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    inspection_id: Annotated[int | None, Query(ge=1, le=DB_INT_MAX)] = None,
    image_id: Annotated[
        int | None, Query(ge=1, le=DB_INT_MAX, description="Raised on this stored photo, in any inspection.")
    ] = None,
    overdue: Annotated[
        bool | None, Query(description="true: open rectification orders past their deadline; false: all others.")
    ] = None,
    recurrence: Annotated[
        bool | None, Query(description="true: recurrences (反弹) of recently closed findings; false: all others.")
    ] = None,
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
        image_id=image_id,
        overdue=overdue,
        recurrence=recurrence,
    )


FilterDep = Annotated[store.FindingFilter, Depends(finding_filter)]


FindingSort = StrEnum("FindingSort", {s: s for f in store.FINDING_SORTS for s in (f, f"-{f}")})  # type: ignore[misc]
"""`field` ascending or `-field` descending, for each field store.FINDING_SORTS can order by (OpenAPI lists them)."""
SortQuery = Annotated[
    FindingSort,  # type: ignore[valid-type]
    Query(
        description="Order: a field, or `-field` for descending. `type` follows the taxonomy's order, `status` "
        "the review workflow's, `region` is region, township, village (no place last); ties in id order."
    ),
]


@router.get("", response_model=FindingPage, responses=responses(*AUTH, 422))
def list_findings(
    session: SessionDep,
    _: Reader,
    where: FilterDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
    sort: SortQuery = FindingSort["id"],
) -> FindingPage:
    total, rows = store.list_findings(session, where, limit, offset, sort.value)
    return FindingPage(total=total, limit=limit, offset=offset, items=[presenters.finding_out(f) for f in rows])


def _median_days(pairs: list[tuple[datetime, datetime]]) -> float | None:
    """Median of rectified − raised in days (2 decimals, about a quarter of an hour); None without pairs."""
    if not pairs:
        return None
    return round(statistics.median((done - raised).total_seconds() / 86400 for raised, done in pairs), 2)


def _summary(session: SessionDep, where: store.FindingFilter) -> Summary:
    """Counts per region, by problem type and by review status, and how many were rectified how fast."""
    regions: dict[str | None, SummaryRegion] = {}
    for region, type_, status, n in store.summary_counts(session, where):
        entry = regions.setdefault(
            region, SummaryRegion(region=region, total=0, by_type={}, by_status={}, by_type_status={})
        )
        entry.total += n
        entry.by_type[type_] = entry.by_type.get(type_, 0) + n
        entry.by_status[status] = entry.by_status.get(status, 0) + n
        entry.by_type_status.setdefault(type_, defaultdict(int))[status] += n
    times: dict[str | None, list[tuple[datetime, datetime]]] = defaultdict(list)
    for region, raised, rectified in store.rectification_times(session, where):
        times[region].append((raised, rectified))
    ordered = sorted(regions.values(), key=lambda r: (r.region is None, r.region or ""))
    for entry in ordered:
        entry.by_type_status = {t: dict(s) for t, s in entry.by_type_status.items()}
        entry.rectified, entry.median_days_to_rectified = len(times[entry.region]), _median_days(times[entry.region])
    for region, overdue, late in store.summary_deadlines(session, where):
        regions[region].overdue, regions[region].rectified_late = overdue, late
    everywhere = [pair for pairs in times.values() for pair in pairs]
    return Summary(
        total=sum(r.total for r in ordered),
        regions=ordered,
        rectified=len(everywhere),
        median_days_to_rectified=_median_days(everywhere),
        overdue=sum(r.overdue for r in ordered),
        rectified_late=sum(r.rectified_late for r in ordered),
    )


@router.get("/summary", response_model=Summary, responses=responses(*AUTH, 422))
def summary(session: SessionDep, _: Reader, where: FilterDep) -> Summary:
    """Counts per region, by problem type and by review status; rectified findings and the median days it took."""
    return _summary(session, where)


@router.get(
    "/summary.csv",
    responses={200: {"content": {"text/csv": {}}, "description": "One row per region"}, **responses(*AUTH, 422)},
)
def summary_csv(session: SessionDep, _: Reader, where: FilterDep) -> Response:
    """The summary as CSV, one row per region (UTF-8 with BOM, like /v1/findings.csv, for spreadsheet programs)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    types, statuses = [p.key for p in PROBLEM_TYPES], [s.value for s in Status]
    # `rectified` as a column of its own would repeat the status column's name: the count is `rectified_total`
    writer.writerow(
        [
            "region",
            "total",
            *types,
            *statuses,
            "rectified_total",
            "median_days_to_rectified",
            "overdue",
            "rectified_late",
        ]
    )
    for r in _summary(session, where).regions:
        counts = [r.by_type.get(t, 0) for t in types] + [r.by_status.get(s, 0) for s in statuses]
        median = "" if r.median_days_to_rectified is None else r.median_days_to_rectified
        writer.writerow([safe_cell(r.region or ""), r.total, *counts, r.rectified, median, r.overdue, r.rectified_late])
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="findings-summary.csv"'},
    )


@router.get(
    "/summary.xlsx",
    responses={
        200: {"content": {workbook.XLSX_TYPE: {}}, "description": "分区汇总, one row per region"},
        **responses(*AUTH, 422),
    },
)
def summary_xlsx(request: Request, session: SessionDep, state: StateDep, _: Reader, where: FilterDep) -> Response:
    """The summary as a spreadsheet, each county linking to its ledger (with the same type and status)."""
    filters = {k: v for k, v in request.query_params.items() if k in ("type", "status")}
    body = workbook.summary(
        _summary(session, where), str(request.base_url).rstrip("/"), ZoneInfo(state.settings.timezone), filters
    )
    return Response(
        body,
        media_type=workbook.XLSX_TYPE,
        headers={"Content-Disposition": 'attachment; filename="findings-summary.xlsx"'},
    )


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
    Ordering rectification sets its deadline: `deadline` (not before today: else 422), or
    `deadline_days` from today, or the problem type's default (ENVWATCH_DEADLINE_DAYS).
    """
    services.transition(
        state, principal, finding_id, body.to, body.note, deadline=body.deadline, deadline_days=body.deadline_days
    )
    return _detail(state, finding_id)


@router.post(
    "/{finding_id}/rectification",
    response_model=FindingDetail,
    responses=responses(*AUTH, 404, 409, 413, 422, 503, 507),
    summary="Report the finding rectified, optionally with a follow-up photo",
)
def rectify(
    finding_id: IdPath,
    state: StateDep,
    principal: Writer,
    detector: DetectorDep,
    note: Annotated[Text | None, Form(max_length=4000)] = None,
    file: Annotated[UploadFile | None, File(description="Follow-up photo; scored by the detector and kept.")] = None,
) -> FindingDetail:
    """rectification_ordered → rectified, with the follow-up photo's own detector results in the history."""
    followup = None
    if file is not None:
        require_storage(state)
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


def _score_followup(state: AppState, detector: Detector, file: UploadFile) -> services.Analysed:
    upload = services.read_upload(file.filename, file.file, state.settings.max_upload_bytes)
    return services.analyse([upload], detector, state.settings, None)[0]


def _detail(state: AppState, finding_id: int) -> FindingDetail:
    with state.sessions() as session:
        finding = store.get_finding(session, finding_id, with_history=True)
    if finding is None:
        raise ApiError(404, "not_found", f"no finding {finding_id}")
    return presenters.finding_detail(finding)
