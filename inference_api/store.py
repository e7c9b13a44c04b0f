"""Data access: every query the service runs, so routes and services hold no SQL.

Functions take an open `Session` and leave committing to the caller, which is what lets an
upload (images, inspection, files, findings, events) commit or roll back as one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, UnaryExpression, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from inference_api.models import ApiKey, Finding, FindingEvent, Image, Inspection, InspectionFile, utcnow
from inference_api.schemas import Status
from model.taxonomy import PROBLEM_TYPES

# ---------------------------------------------------------------- API keys


def active_key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))


def create_key(session: Session, name: str, role: str, key_hash: str, prefix: str) -> ApiKey:
    row = ApiKey(name=name, role=role, key_hash=key_hash, prefix=prefix, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def upsert_named_key(session: Session, name: str, role: str, key_hash: str, prefix: str) -> ApiKey | None:
    """The active key called `name`, pointed at `key_hash` (replacing an earlier one of that name).

    None when that very key was revoked: a revocation stands, whatever the configuration still says.
    """
    existing = session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
    if existing is not None:
        if existing.revoked_at is not None:
            return None
        existing.name, existing.role = name, role
        return existing
    for old in session.scalars(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))):
        old.revoked_at = utcnow()
    return create_key(session, name, role, key_hash, prefix)


def count_active_admins(session: Session) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.role == "admin", ApiKey.revoked_at.is_(None))
        )
        or 0
    )


def list_keys(session: Session) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).order_by(ApiKey.id)).all()


def get_key(session: Session, key_id: int) -> ApiKey | None:
    return session.get(ApiKey, key_id)


# ---------------------------------------------------------------- images


def image_by_sha(session: Session, sha256: str) -> Image | None:
    return session.scalar(select(Image).where(Image.sha256 == sha256))


def get_image(session: Session, image_id: int) -> Image | None:
    return session.get(Image, image_id)


def add_image(session: Session, image: Image) -> Image:
    """Insert `image`, or return the row another request inserted for the same sha256 meanwhile."""
    existing = image_by_sha(session, image.sha256)
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            session.add(image)
            session.flush()
        return image
    except IntegrityError:
        found = image_by_sha(session, image.sha256)
        if found is None:
            raise
        return found


# ---------------------------------------------------------------- inspections


def _inspection_query() -> Select[Inspection]:
    return select(Inspection).options(
        selectinload(Inspection.files).selectinload(InspectionFile.image),
        selectinload(Inspection.findings).selectinload(Finding.image),
    )


def get_inspection(session: Session, inspection_id: int) -> Inspection | None:
    return session.scalar(_inspection_query().where(Inspection.id == inspection_id))


def inspection_by_client_id(session: Session, client_id: str) -> Inspection | None:
    return session.scalar(_inspection_query().where(Inspection.client_id == client_id))


def list_inspections(session: Session, limit: int, offset: int) -> tuple[int, Sequence[Inspection]]:
    total = session.scalar(select(func.count()).select_from(Inspection)) or 0
    rows = session.scalars(_inspection_query().order_by(Inspection.id.desc()).limit(limit).offset(offset)).all()
    return total, rows


# ---------------------------------------------------------------- findings


OVERDUE = (Finding.status == "rectification_ordered") & Finding.overdue_at.is_not(None)
"""An open rectification order whose deadline the overdue sweep (inference_api/deadlines.py) found passed."""


@dataclass(frozen=True)
class FindingFilter:
    type: str | None = None
    status: str | None = None
    region: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    min_score: float | None = None
    inspection_id: int | None = None
    image_id: int | None = None
    overdue: bool | None = None
    recurrence: bool | None = None
    geotagged: bool = False

    def apply(self, query: Select) -> Select:  # type: ignore[type-arg]
        query = query.join(Inspection, Finding.inspection_id == Inspection.id)
        if self.type is not None:
            query = query.where(Finding.type == self.type)
        if self.status is not None:
            query = query.where(Finding.status == self.status)
        if self.region is not None:
            query = query.where(Inspection.region == self.region)
        if self.date_from is not None:
            query = query.where(Finding.observed_at >= self.date_from)
        if self.date_to is not None:
            query = query.where(Finding.observed_at <= self.date_to)
        if self.min_score is not None:
            query = query.where(Finding.score >= self.min_score)
        if self.inspection_id is not None:
            query = query.where(Finding.inspection_id == self.inspection_id)
        if self.image_id is not None:
            query = query.where(Finding.image_id == self.image_id)
        if self.overdue is not None:
            query = query.where(OVERDUE if self.overdue else ~OVERDUE)
        if self.recurrence is not None:
            recurs = Finding.recurrence_of_id.is_not(None)
            query = query.where(recurs if self.recurrence else ~recurs)
        if self.geotagged:
            query = query.where(Finding.lat.is_not(None), Finding.lon.is_not(None))
        return query


def _rank(column: ColumnElement[str], keys: Sequence[str]) -> ColumnElement[int]:
    """`column`'s position in `keys` (unknown values last): types in taxonomy order, statuses in workflow order."""
    return case({key: i for i, key in enumerate(keys)}, value=column, else_=len(keys))


FINDING_SORTS: dict[str, tuple[ColumnElement, ...]] = {  # type: ignore[type-arg]
    "id": (Finding.id,),
    "score": (Finding.score,),
    "created_at": (Finding.created_at,),
    "observed_at": (Finding.observed_at,),
    "type": (_rank(Finding.type, [p.key for p in PROBLEM_TYPES]),),
    "status": (_rank(Finding.status, [s.value for s in Status]),),
    "region": (Inspection.region, Inspection.township, Inspection.village),
}
"""What `GET /v1/findings?sort=` may order by (`field` ascending, `-field` descending), as ORDER BY terms."""


def finding_order(sort: str) -> list[UnaryExpression]:  # type: ignore[type-arg]
    """ORDER BY for `sort`: ties broken by id so pages never overlap or skip; findings without a place last."""
    field, descending = sort.removeprefix("-"), sort.startswith("-")
    terms = [term.desc() if descending else term.asc() for term in FINDING_SORTS[field]]
    if field == "region":  # SQLite puts NULL first, PostgreSQL last: say which
        terms = [term.nulls_last() for term in terms]
    return terms if field == "id" else [*terms, Finding.id.asc()]


def list_findings(
    session: Session, where: FindingFilter, limit: int, offset: int, sort: str = "id"
) -> tuple[int, Sequence[Finding]]:
    total = session.scalar(where.apply(select(func.count(Finding.id)).select_from(Finding))) or 0
    query = where.apply(select(Finding)).options(selectinload(Finding.inspection))
    rows = session.scalars(query.order_by(*finding_order(sort)).limit(limit).offset(offset)).all()
    return total, rows


def summary_counts(session: Session, where: FindingFilter) -> list[tuple[str | None, str, str, int]]:
    query = where.apply(
        select(Inspection.region, Finding.type, Finding.status, func.count(Finding.id)).select_from(Finding)
    ).group_by(Inspection.region, Finding.type, Finding.status)
    return [(region, type_, status, int(n)) for region, type_, status, n in session.execute(query)]


def summary_deadlines(session: Session, where: FindingFilter) -> list[tuple[str | None, int, int]]:
    """(region, overdue now, rectified late) of the matching findings, per region."""
    late = Finding.rectified_late.is_(True) & Finding.status.in_(("rectified", "closed"))
    query = where.apply(
        select(
            Inspection.region,
            func.count(case((OVERDUE, Finding.id))),
            func.count(case((late, Finding.id))),
        ).select_from(Finding)
    ).group_by(Inspection.region)
    return [(region, int(overdue), int(n_late)) for region, overdue, n_late in session.execute(query)]


def rectification_times(session: Session, where: FindingFilter) -> list[tuple[str | None, datetime, datetime]]:
    """(region, raised, rectified) of each matching finding whose rectification stands (rectified or closed).

    `rectified` is the latest move into rectified: after a failed re-check, the one that counted.
    """
    latest = (
        select(FindingEvent.finding_id, func.max(FindingEvent.at).label("at"))
        .where(FindingEvent.to_status == "rectified")
        .group_by(FindingEvent.finding_id)
        .subquery()
    )
    query = (
        where.apply(select(Inspection.region, Finding.created_at, latest.c.at).select_from(Finding))
        .join(latest, latest.c.finding_id == Finding.id)
        .where(Finding.status.in_(("rectified", "closed")))
    )
    return [(region, raised, rectified) for region, raised, rectified in session.execute(query)]


def get_finding(session: Session, finding_id: int, with_history: bool = False) -> Finding | None:
    options = [selectinload(Finding.inspection)]
    if with_history:
        options.append(selectinload(Finding.events))
    return session.scalar(select(Finding).where(Finding.id == finding_id).options(*options))


def findings_on_image(session: Session, image_id: int) -> Sequence[Finding]:
    return session.scalars(select(Finding).where(Finding.image_id == image_id).order_by(Finding.id)).all()


def events_with_image(session: Session, image_id: int) -> Sequence[FindingEvent]:
    return session.scalars(select(FindingEvent).where(FindingEvent.image_id == image_id)).all()


def compare_and_set_status(session: Session, finding_id: int, expected: str, new: str, **values: object) -> bool:
    """Move the finding from `expected` to `new` (setting `values` too); False if someone else changed it first."""
    result = session.execute(
        update(Finding)
        .where(Finding.id == finding_id, Finding.status == expected)
        .values(status=new, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def passed_deadlines(session: Session, today: date) -> Sequence[Finding]:
    """Open orders whose deadline is before `today` and that are not stamped overdue yet."""
    return session.scalars(
        select(Finding)
        .where(
            Finding.status == "rectification_ordered",
            Finding.deadline < today,
            Finding.overdue_at.is_(None),
        )
        .options(selectinload(Finding.inspection))
        .order_by(Finding.id)
    ).all()


def mark_overdue(session: Session, finding_id: int, at: datetime) -> bool:
    """Stamp the finding overdue at `at` unless it is stamped already or no longer ordered; True if it was now."""
    result = session.execute(
        update(Finding)
        .where(Finding.id == finding_id, Finding.status == "rectification_ordered", Finding.overdue_at.is_(None))
        .values(overdue_at=at)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def recently_closed(
    session: Session, types: set[str], since: datetime, until: datetime
) -> list[tuple[Finding, datetime]]:
    """Closed findings of `types` with their closing time, closed between `since` and `until`, latest first."""
    closed = (
        select(FindingEvent.finding_id, func.max(FindingEvent.at).label("at"))
        .where(FindingEvent.to_status == "closed")
        .group_by(FindingEvent.finding_id)
        .subquery()
    )
    query = (
        select(Finding, closed.c.at)
        .join(closed, closed.c.finding_id == Finding.id)
        .where(Finding.status == "closed", Finding.type.in_(types), closed.c.at >= since, closed.c.at <= until)
        .options(selectinload(Finding.inspection))
        .order_by(closed.c.at.desc(), Finding.id.desc())
    )
    return [(finding, at) for finding, at in session.execute(query)]


# ---------------------------------------------------------------- bulletins


def region_findings(session: Session, region: str, before: datetime) -> Sequence[Row[Any]]:
    """Every finding of `region` observed before `before`, with its place: what a bulletin replays.

    Plain rows, not ORM objects: a county's whole ledger is read for each bulletin.
    """
    return session.execute(
        select(
            Finding.id,
            Finding.type,
            Finding.score,
            Finding.image_id,
            Finding.x1,
            Finding.y1,
            Finding.x2,
            Finding.y2,
            Finding.extent,
            Finding.observed_at,
            Finding.status,
            Finding.recurrence_of_id,
            Inspection.township,
            Inspection.village,
        )
        .join(Inspection, Finding.inspection_id == Inspection.id)
        .where(Inspection.region == region, Finding.observed_at < before)
        .order_by(Finding.id)
    ).all()


def region_events(session: Session, region: str, before: datetime) -> Sequence[Row[Any]]:
    """(finding_id, to_status, at, deadline) of every review move of those findings, in the order they happened."""
    return session.execute(
        select(FindingEvent.finding_id, FindingEvent.to_status, FindingEvent.at, FindingEvent.deadline)
        .join(Finding, FindingEvent.finding_id == Finding.id)
        .join(Inspection, Finding.inspection_id == Inspection.id)
        .where(Inspection.region == region, Finding.observed_at < before)
        .order_by(FindingEvent.id)
    ).all()


def region_places(session: Session, region: str) -> list[tuple[str | None, str | None, datetime]]:
    """(township, village, first inspected) of every place of `region` an inspection named."""
    query = (
        select(Inspection.township, Inspection.village, func.min(Inspection.created_at))
        .where(Inspection.region == region)
        .group_by(Inspection.township, Inspection.village)
    )
    return [(township, village, first) for township, village, first in session.execute(query)]
