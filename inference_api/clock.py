"""The service's one clock: every time the service stamps (raised, ordered, rectified, overdue) comes from `now()`.

One clock rather than `datetime.now` scattered over modules, so that a test can play out weeks
of a campaign (raised on Monday, due on Thursday, rectified late the week after) in seconds
and check a bulletin against times it chose, through the same code that runs in production.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_source: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return _source()


@contextmanager
def using(source: Callable[[], datetime]) -> Iterator[None]:
    """Read the time from `source` inside the block (a test's controlled clock); the real clock after."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous
