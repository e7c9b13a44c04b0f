"""The weekly bulletin (周通报) and township ranking: one computation for the CLI, the API and the page.

A bulletin covers a period (an ISO week, `2026-W48`, or a month, `2026-11`) in the offices' time
zone (`ENVWATCH_TIMEZONE`) and a county (`Inspection.region`), or one township of it. It replays
each finding's history up to `as_of`, the period's end (or now, for a period still running):

- **New problems**: findings observed in the period (EXIF capture time, else upload) that a
  reviewer has confirmed (status neither candidate nor dismissed when the bulletin is made);
  candidates still awaiting review are counted apart, never as problems.
- **Rectified on time / late**: findings moved into rectified in the period and not sent back
  by `as_of`; late when that day is after the deadline in force (no deadline: on time).
- **Still overdue**: findings whose rectification is ordered at `as_of` with a deadline before
  that day, whenever they were raised.
- **Recurrences** (反弹, inference_api/recurrences.py): new problems linked to a closed one.
- **Ranking** of the county's townships (every township an inspection named by the period's end, or
  a finding observed by then named, so a clean one ranks too), by

      score = w_on_time_rate × on_time_rate − w_problems_per_village × problems / villages
              − w_overdue × overdue − w_recurrences × recurrences

  with on_time_rate = on_time / (on_time + late + overdue) (1 with none of those), villages the
  distinct villages the township's inspections named (at least 1), and the weights
  `ENVWATCH_RANKING_WEIGHTS` (defaults in inference_api/settings.py). Higher is better; equal
  scores share a rank (1, 2, 2, 4); the change is the previous period's rank minus this one's.
  Findings without a township count in the totals but are not ranked.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from inference_api import store
from inference_api.models import utcnow
from inference_api.schemas import (
    Box,
    Bulletin,
    BulletinItem,
    BulletinPhoto,
    BulletinRank,
    BulletinTownship,
    Status,
)
from inference_api.settings import Settings
from model.taxonomy import PROBLEM_TYPES

WEEK = re.compile(r"(\d{4})-W(\d{2})")
MONTH = re.compile(r"(\d{4})-(\d{2})")
REVIEWED_OUT = {Status.candidate.value, Status.dismissed.value}
"""Statuses that are not (yet) problems: what a reviewer has not confirmed."""


@dataclass(frozen=True)
class Period:
    key: str
    first: date
    last: date
    """Inclusive."""

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """[start, end) as aware instants: midnight of the first day to midnight after the last."""
        return datetime.combine(self.first, time(), zone), datetime.combine(self.last + timedelta(days=1), time(), zone)

    def previous(self) -> Period:
        if WEEK.fullmatch(self.key):
            return week_of(self.first - timedelta(days=7))
        return parse_period(f"{(self.first - timedelta(days=1)):%Y-%m}")


def week_of(day: date) -> Period:
    """The ISO week `day` falls in."""
    year, week, weekday = day.isocalendar()
    first = day - timedelta(days=weekday - 1)
    return Period(f"{year}-W{week:02d}", first, first + timedelta(days=6))


def parse_period(text: str) -> Period:
    """`2026-W48` (ISO week) or `2026-11` (month); ValueError with what is expected."""
    if found := WEEK.fullmatch(text):
        try:
            first = date.fromisocalendar(int(found[1]), int(found[2]), 1)
        except ValueError:
            raise ValueError(f"{text!r}: no such ISO week") from None
        return week_of(first)
    if found := MONTH.fullmatch(text):
        year, month = int(found[1]), int(found[2])
        if not 1 <= month <= 12 or year < 1:
            raise ValueError(f"{text!r}: no such month")
        after = date(year + month // 12, month % 12 + 1, 1)
        return Period(text, date(year, month, 1), after - timedelta(days=1))
    raise ValueError(f"{text!r} is not a period: an ISO week such as 2026-W48, or a month such as 2026-11")


def current_period(settings: Settings) -> Period:
    return week_of(utcnow().astimezone(ZoneInfo(settings.timezone)).date())


# ---------------------------------------------------------------- one finding's history, replayed


@dataclass(frozen=True)
class Move:
    to: str
    at: datetime
    deadline: date | None


@dataclass
class Record:
    """A finding as a bulletin needs it: its place, its current status and its review moves in order."""

    id: int
    type: str
    score: float
    image_id: int
    box: tuple[float, float, float, float]
    extent: str
    observed_at: datetime
    status: str
    recurrence_of: int | None
    township: str | None
    village: str | None
    moves: list[Move]


def _records(session: Session, region: str, before: datetime) -> list[Record]:
    moves: dict[int, list[Move]] = defaultdict(list)
    for finding_id, to, at, deadline in store.region_events(session, region, before):
        moves[finding_id].append(Move(to, at, deadline))
    return [
        Record(
            id=row.id,
            type=row.type,
            score=row.score,
            image_id=row.image_id,
            box=(row.x1, row.y1, row.x2, row.y2),
            extent=row.extent,
            observed_at=row.observed_at,
            status=row.status,
            recurrence_of=row.recurrence_of_id,
            township=row.township,
            village=row.village,
            moves=moves[row.id],
        )
        for row in store.region_findings(session, region, before)
    ]


def _deadline_of(moves: list[Move]) -> date | None:
    """The deadline of the last order among `moves`."""
    orders = [m for m in moves if m.to == Status.rectification_ordered.value]
    return orders[-1].deadline if orders else None


@dataclass(frozen=True)
class _Outcome:
    """What one finding contributes to a bulletin's counts."""

    finding: Record
    new: bool
    awaiting: bool
    rectified_at: datetime | None
    late: bool
    overdue: bool
    deadline: date | None

    @property
    def township(self) -> str | None:
        return self.finding.township


def _outcome(finding: Record, start: datetime, end: datetime, as_of: datetime, zone: ZoneInfo) -> _Outcome:
    observed_in = start <= finding.observed_at < end
    history = [m for m in finding.moves if m.at < as_of]
    status = history[-1].to if history else None
    rectified_at, late, deadline = None, False, _deadline_of(history)
    stands = status in (Status.rectified.value, Status.closed.value)
    last = next((i for i in range(len(history) - 1, -1, -1) if history[i].to == Status.rectified.value), None)
    if stands and last is not None and history[last].at >= start:
        rectified_at, deadline = history[last].at, _deadline_of(history[:last])
        late = deadline is not None and rectified_at.astimezone(zone).date() > deadline
    ordered = status == Status.rectification_ordered.value
    return _Outcome(
        finding=finding,
        new=observed_in and finding.status not in REVIEWED_OUT,
        awaiting=observed_in and finding.status == Status.candidate.value,
        rectified_at=rectified_at,
        late=late,
        overdue=ordered and deadline is not None and deadline < as_of.astimezone(zone).date(),
        deadline=deadline,
    )


# ---------------------------------------------------------------- the ranking


def _competition_ranks(scores: dict[str, float]) -> dict[str, int]:
    """1, 2, 2, 4: a township's rank is one more than the number of townships scoring higher."""
    return {name: 1 + sum(other > score for other in scores.values()) for name, score in scores.items()}


def _ranking(
    outcomes: list[_Outcome],
    places: list[tuple[str | None, str | None, datetime]],
    end: datetime,
    weights: dict[str, float],
) -> list[BulletinRank]:
    named = [(township, village) for township, village, first in places if first < end]
    # A photo taken before the end but uploaded after it still names its place for this period.
    named += [(o.township, o.finding.village) for o in outcomes if o.finding.observed_at < end]
    villages: dict[str, set[str]] = {}
    for township, village in named:
        if township is not None:
            villages.setdefault(township, set()).update([village] if village else [])
    by_township: dict[str | None, list[_Outcome]] = defaultdict(list)
    for o in outcomes:
        by_township[o.township].append(o)
    rows: dict[str, BulletinRank] = {}
    for township, names in villages.items():
        mine = by_township[township]
        problems = sum(o.new for o in mine)
        on_time = sum(o.rectified_at is not None and not o.late for o in mine)
        late = sum(o.late for o in mine)
        overdue = sum(o.overdue for o in mine)
        recurrences = sum(o.new and o.finding.recurrence_of is not None for o in mine)
        counted = on_time + late + overdue
        rate = on_time / counted if counted else 1.0
        per_village = problems / max(1, len(names))
        score = (
            weights["on_time_rate"] * rate
            - weights["problems_per_village"] * per_village
            - weights["overdue"] * overdue
            - weights["recurrences"] * recurrences
        )
        rows[township] = BulletinRank(
            township=township,
            rank=0,
            previous_rank=None,
            change=None,
            score=round(score, 2),
            problems=problems,
            villages=max(1, len(names)),
            problems_per_village=round(per_village, 4),
            on_time=on_time,
            late=late,
            overdue=overdue,
            on_time_rate=round(rate, 4),
            recurrences=recurrences,
        )
    ranks = _competition_ranks({name: row.score for name, row in rows.items()})
    for name, row in rows.items():
        row.rank = ranks[name]
    return sorted(rows.values(), key=lambda r: (r.rank, r.township))


def _replay(
    findings: list[Record], period: Period, now: datetime, zone: ZoneInfo
) -> tuple[list[_Outcome], datetime, datetime, datetime]:
    start, end = period.bounds(zone)
    as_of = min(end, now)
    return [_outcome(f, start, end, as_of, zone) for f in findings], start, end, as_of


# ---------------------------------------------------------------- the bulletin


def _item(outcome: _Outcome, at: datetime | None) -> BulletinItem:
    f = outcome.finding
    return BulletinItem(
        finding_id=f.id,
        type=f.type,
        township=f.township,
        village=f.village,
        deadline=outcome.deadline,
        at=at,
        recurrence_of=f.recurrence_of,
    )


def _photos(new: list[_Outcome], count: int) -> list[BulletinPhoto]:
    """The `count` most confident new problems, one per photo."""
    chosen: dict[int, Record] = {}
    for f in sorted((o.finding for o in new), key=lambda f: (-f.score, f.id)):
        if len(chosen) == count:
            break
        chosen.setdefault(f.image_id, f)
    return [
        BulletinPhoto(
            finding_id=f.id,
            image_id=f.image_id,
            type=f.type,
            score=round(f.score, 4),
            box=Box(x1=f.box[0], y1=f.box[1], x2=f.box[2], y2=f.box[3]),
            extent=f.extent,
            township=f.township,
            village=f.village,
            observed_at=f.observed_at,
        )
        for f in chosen.values()
    ]


def _by_type(outcomes: list[_Outcome]) -> dict[str, int]:
    counts = Counter(o.finding.type for o in outcomes)
    return {p.key: counts[p.key] for p in PROBLEM_TYPES if counts[p.key]}


def make(session: Session, settings: Settings, period: Period, region: str, township: str | None = None) -> Bulletin:
    """The bulletin of `region` (or its `township`) for `period`, as of now."""
    zone = ZoneInfo(settings.timezone)
    now = utcnow()
    findings = _records(session, region, period.bounds(zone)[1])
    places = store.region_places(session, region)
    outcomes, start, end, as_of = _replay(findings, period, now, zone)
    before = period.previous()
    previous, _, before_end, _ = _replay(findings, before, now, zone)
    weights = settings.ranking_weights
    ranking = _ranking(outcomes, places, end, weights)
    earlier = {r.township: r.rank for r in _ranking(previous, places, before_end, weights)}
    for row in ranking:
        row.previous_rank = earlier.get(row.township)
        row.change = None if row.previous_rank is None else row.previous_rank - row.rank
    here = [o for o in outcomes if township is None or o.township == township]
    new = [o for o in here if o.new]
    townships: dict[str | None, list[_Outcome]] = {}
    for o in new:
        townships.setdefault(o.township, []).append(o)
    rectified = [o for o in here if o.rectified_at is not None]
    overdue = [o for o in here if o.overdue]
    recurring = [o for o in new if o.finding.recurrence_of is not None]
    return Bulletin(
        period=period.key,
        first_day=period.first,
        last_day=period.last,
        timezone=settings.timezone,
        region=region,
        township=township,
        made_at=now,
        as_of=as_of,
        empty=not (new or rectified or overdue or any(o.awaiting for o in here)),
        new_total=len(new),
        new_by_type=_by_type(new),
        new_by_township=[
            BulletinTownship(township=name, total=len(items), by_type=_by_type(items))
            for name, items in sorted(townships.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
        ],
        awaiting_review=sum(o.awaiting for o in here),
        photos=_photos(new, settings.bulletin_photos),
        rectified_on_time=sum(not o.late for o in rectified),
        rectified_late=sum(o.late for o in rectified),
        still_overdue=len(overdue),
        late=[_item(o, o.rectified_at) for o in rectified if o.late],
        overdue=[_item(o, None) for o in overdue],
        recurrences=[_item(o, o.finding.observed_at) for o in recurring],
        weights=weights,
        ranking=ranking,
    )
