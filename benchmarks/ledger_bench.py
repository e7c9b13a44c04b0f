"""What the ledger page costs the server: one sorted page of 25 against loading every finding.

Not a test: it prints numbers. Before `GET /v1/findings?sort=`, the ledger page loaded every
matching finding (pages of 1000, up to 10 000) and sorted them in the browser; now it asks for
the 25 rows it shows, sorted by the database. Both are measured here on the same database, through
the same store query, presenter and JSON encoding the route uses (no HTTP, which adds the same
per-request cost to both): milliseconds and bytes per ledger view, for the first page and one deep
in the list, sorted by id and by score (no index: the database sorts every match each time).

    python benchmarks/ledger_bench.py --findings 20000
    python benchmarks/ledger_bench.py --findings 20000 --database-url postgresql+psycopg://u:pw@host/db
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from inference_api import presenters, store
from inference_api.db import make_engine, make_sessionmaker, upgrade
from inference_api.models import Finding, Image, Inspection, utcnow
from inference_api.schemas import FindingPage, Status
from model.taxonomy import PROBLEM_TYPES

OLD_CAP = 10_000
OLD_BATCH = 1_000
PAGE = 25
REGIONS = ["平江县", "汨罗市", "湘阴县", None]


def seed(session: Session, findings: int, rng: random.Random) -> None:
    """`findings` findings on one photo, in inspections of 20, with random scores, types, statuses and regions."""
    now = utcnow()
    image = Image(sha256="0" * 64, path="00/00/0", bytes=1, width=1920, height=1080)
    session.add(image)
    session.flush()
    types, statuses = [p.key for p in PROBLEM_TYPES[:3]], [s.value for s in Status]
    for start in range(0, findings, 20):
        inspection = Inspection(created_by="bench", created_at=now, region=rng.choice(REGIONS))
        session.add(inspection)
        session.flush()
        session.add_all(
            Finding(
                inspection_id=inspection.id,
                image_id=image.id,
                type=rng.choice(types),
                label="fire",
                score=rng.random(),
                x1=10,
                y1=10,
                x2=200,
                y2=200,
                observed_at=now - timedelta(minutes=rng.randrange(100_000)),
                model_version="bench",
                status=rng.choice(statuses),
                created_at=now,
                updated_at=now,
            )
            for _ in range(min(20, findings - start))
        )
    session.commit()


def view(session: Session, limit: int, offset: int, sort: str) -> int:
    """One `GET /v1/findings` answer as the route builds it; its JSON size in bytes."""
    total, rows = store.list_findings(session, store.FindingFilter(), limit, offset, sort)
    page = FindingPage(total=total, limit=limit, offset=offset, items=[presenters.finding_out(f) for f in rows])
    return len(page.model_dump_json())


def old_ledger(session: Session) -> int:
    """Every match in pages of 1000 up to 10 000, as the page did before (its sort ran in the browser)."""
    sent, offset = 0, 0
    total = store.list_findings(session, store.FindingFilter(), 1, 0)[0]
    while offset < min(total, OLD_CAP):
        sent += view(session, OLD_BATCH, offset, "id")
        offset += OLD_BATCH
    return sent


def timed(factory: Callable[[], Session], run: Callable[[Session], int], repeat: int) -> tuple[float, int]:
    """Median milliseconds of `run` on a fresh session (no ORM cache carried over), and its bytes."""
    times, sent = [], 0
    for _ in range(repeat):
        with factory() as session:
            started = time.perf_counter()
            sent = run(session)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", help="an empty database to fill (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        upgrade(engine)
        factory = make_sessionmaker(engine)
        with factory() as session:
            seed(session, args.findings, random.Random(0))
        deep = (args.findings // 2 // PAGE) * PAGE
        old_ms, old_bytes = timed(factory, old_ledger, args.repeat)
        print(f"{args.findings} findings on {engine.dialect.name}; a ledger view before: {old_ms:.0f} ms, "
              f"{old_bytes / 1e6:.1f} MB of JSON (up to {OLD_CAP}, then sorted in the browser)")  # fmt: skip
        print(f"{'now: one page of 25':<34}{'ms':>8}{'bytes':>9}{'time ratio':>12}")
        for sort in ("-id", "-score", "region"):
            for offset in (0, deep):
                ms, sent = timed(factory, lambda s, o=offset, so=sort: view(s, PAGE, o, so), args.repeat)
                print(f"{f'sort={sort} offset={offset}':<34}{ms:8.1f}{sent:9d}{old_ms / ms:11.0f}x")
        engine.dispose()


if __name__ == "__main__":
    main()
