"""Bulletin periods (ISO weeks and months) and the settings offices tune the bulletin with."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from inference_api.bulletin import parse_period, week_of
from inference_api.settings import RANKING_WEIGHTS, Settings


def test_iso_weeks_and_months_and_the_period_before() -> None:
    week = parse_period("2026-W48")
    assert (week.first, week.last) == (date(2026, 11, 23), date(2026, 11, 29))
    assert parse_period("2027-W01").previous().key == "2026-W53"  # 2026 has 53 ISO weeks
    assert week_of(date(2027, 1, 1)).key == "2026-W53"  # New Year's Day 2027 is in 2026's last week
    month = parse_period("2026-02")
    assert (month.first, month.last) == (date(2026, 2, 1), date(2026, 2, 28))
    assert parse_period("2026-01").previous().key == "2025-12"
    assert parse_period("2026-12").last == date(2026, 12, 31)


@pytest.mark.parametrize("text", ["2025-W53", "2026-W00", "2026-00", "2026-13", "26-W48", "2026W48", ""])
def test_periods_that_do_not_exist_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_period(text)


def test_ranking_weights_merge_with_defaults_and_unknown_factors_are_refused() -> None:
    assert Settings(ranking_weights={"overdue": 9}).ranking_weights == {**RANKING_WEIGHTS, "overdue": 9}
    with pytest.raises(ValidationError, match="unknown ranking factors"):
        Settings(ranking_weights={"cleanliness": 1})


def test_time_zone_and_deadline_days_are_checked() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings(timezone="Asia/Beijing")
    with pytest.raises(ValidationError, match="unknown problem types"):
        Settings(deadline_days={"litter": 3})
    with pytest.raises(ValidationError, match="0 to 365"):
        Settings(deadline_days={"burning": 400})
