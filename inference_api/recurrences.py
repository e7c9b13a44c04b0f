"""Recurrences (反弹): a problem that comes back where one of its type was closed not long ago.

A new finding recurs when a finding of the same type was closed (销号) at most
`ENVWATCH_RECURRENCE_DAYS` before it was observed, and either both carry GPS no further apart
than `ENVWATCH_RECURRENCE_DISTANCE_M`, or both were inspected in the same village (county,
township and village names all equal). It is linked to the latest such closed finding. Checked
when findings are raised (uploads, batch jobs, imported scans all go through
`services.add_file_rows`), so the mark is part of the ledger from the first moment.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from inference_api import store
from inference_api.models import Finding, Inspection
from inference_api.settings import Settings
from model.georef import distance_m


def _same_place(new: Finding, place: Inspection, old: Finding, settings: Settings) -> bool:
    if None not in (new.lat, new.lon, old.lat, old.lon):
        near = distance_m({"lat": new.lat, "lon": new.lon}, {"lat": old.lat, "lon": old.lon})
        if near <= settings.recurrence_distance_m:
            return True
    before = old.inspection
    return place.village is not None and (place.region, place.township, place.village) == (
        before.region,
        before.township,
        before.village,
    )


def link(session: Session, settings: Settings, place: Inspection, raised: list[Finding]) -> None:
    """Set `recurrence_of_id` on each of `raised` (found at `place`) that recurs."""
    if not raised:
        return
    window = timedelta(days=settings.recurrence_days)
    since, until = min(f.observed_at for f in raised) - window, max(f.observed_at for f in raised)
    closed = store.recently_closed(session, {f.type for f in raised}, since, until)
    for finding in raised:
        for old, closed_at in closed:
            in_window = finding.observed_at - window <= closed_at <= finding.observed_at
            if old.type == finding.type and in_window and _same_place(finding, place, old, settings):
                finding.recurrence_of_id = old.id
                break
