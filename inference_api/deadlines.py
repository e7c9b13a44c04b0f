"""Rectification deadlines (整改时限): when an order is due, whether it was met, and the overdue sweep.

A deadline is a calendar day in the offices' time zone (`ENVWATCH_TIMEZONE`), as the paperwork
writes it: "整改时限：12月3日" means by the end of 3 December there, whatever the server's zone.
An order gives the day itself or a number of days; with neither, the problem type's default
(`ENVWATCH_DEADLINE_DAYS`, else `ENVWATCH_DEADLINE_DAYS_DEFAULT`) counts from the order's day.

A finding is overdue from the first moment its order is still open on a day after the deadline.
`OverdueWatcher` finds such findings every `ENVWATCH_OVERDUE_POLL_S`, stamps `overdue_at` and
queues one `finding.overdue` webhook in the same transaction; the stamp is set only where none
is (compare-and-set), so the event is never repeated, however many server processes sweep. A new
order (after a failed re-check) clears the stamp with its new deadline.
"""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from inference_api import store, webhooks
from inference_api.db import transaction
from inference_api.errors import ApiError
from inference_api.models import Finding, utcnow
from inference_api.schemas import Status
from inference_api.settings import Settings

log = logging.getLogger("envwatch.deadlines")


def local_date(at: datetime, settings: Settings) -> date:
    """The calendar day `at` falls on in the offices' time zone."""
    return at.astimezone(ZoneInfo(settings.timezone)).date()


def order_deadline(
    settings: Settings, problem_type: str, ordered_at: datetime, deadline: date | None, days: int | None
) -> date:
    """The deadline of an order made at `ordered_at`; 422 for a day before the order's own day."""
    ordered_on = local_date(ordered_at, settings)
    if deadline is not None:
        if deadline < ordered_on:
            raise ApiError(
                422,
                "invalid_deadline",
                f"the deadline {deadline.isoformat()} is before the order's date {ordered_on.isoformat()}",
            )
        return deadline
    if days is None:
        days = settings.deadline_days.get(problem_type, settings.deadline_days_default)
    return ordered_on + timedelta(days=days)


def is_late(rectified_at: datetime, deadline: date, settings: Settings) -> bool:
    """Rectified on a day after the deadline's."""
    return local_date(rectified_at, settings) > deadline


def changes(
    settings: Settings, finding: Finding, to: Status, now: datetime, deadline: date | None, days: int | None
) -> dict[str, Any]:
    """Columns a review move sets beside the status: an order's deadline (clearing the last overdue mark),
    or whether a rectification is late."""
    if to == Status.rectification_ordered:
        due = order_deadline(settings, finding.type, now, deadline, days)
        return {"deadline": due, "overdue_at": None, "rectified_late": None}
    if to == Status.rectified and finding.deadline is not None:
        return {"rectified_late": is_late(now, finding.deadline, settings)}
    return {}


def sweep(sessions: sessionmaker[Session], settings: Settings) -> list[int]:
    """Stamp every open order whose deadline has passed and queue its `finding.overdue`; returns their ids."""
    now = utcnow()
    today = local_date(now, settings)
    marked = []
    with transaction(sessions) as session:
        for finding in store.passed_deadlines(session, today):
            if not store.mark_overdue(session, finding.id, now):
                continue  # another process stamped it first, or it was rectified meanwhile
            marked.append(finding.id)
            webhooks.enqueue(
                session,
                settings,
                "finding.overdue",
                {
                    "finding_id": finding.id,
                    "type": finding.type,
                    "deadline": finding.deadline.isoformat() if finding.deadline else None,
                    "region": finding.inspection.region,
                    "township": finding.inspection.township,
                    "village": finding.inspection.village,
                },
            )
    if marked:
        log.info("findings overdue", extra={"findings": marked})
    return marked


class OverdueWatcher:
    """Runs `sweep` at start and every `overdue_poll_s` until `stop()`."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings, self.sessions = settings, sessions
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="envwatch-overdue", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sweep(self.sessions, self.settings)
            except Exception:  # keep sweeping through database hiccups
                log.exception("overdue sweep failed")
            self._stop.wait(self.settings.overdue_poll_s)
