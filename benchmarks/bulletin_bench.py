"""What a bulletin costs: `bulletin.make` over a county's whole ledger, and the finding whose history it replays.

Not a test: it prints numbers. A bulletin loads every finding of the county observed before the
period's end, with its history, and replays it in Python (inference_api/bulletin.py), twice (this
period and the previous one, for the rank changes). This seeds one county of 12 townships and 60
villages with `--findings` findings spread over 12 weeks, most confirmed, ordered with a deadline
and rectified (some late), a few left overdue, and times `make` for the last week, median of
`--repeat` runs on fresh sessions. The printable page adds the drawing of at most
`ENVWATCH_BULLETIN_PHOTOS` photos, which is the detector pool's work and not measured here.

    python benchmarks/bulletin_bench.py --findings 20000
    python benchmarks/bulletin_bench.py --findings 20000 --database-url postgresql+psycopg://u:pw@host/db
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from inference_api import bulletin
from inference_api.db import make_engine, make_sessionmaker, upgrade
from inference_api.models import Finding, FindingEvent, Image, Inspection
from inference_api.settings import Settings
from model.taxonomy import PROBLEM_TYPES

REGION = "基准县"
WEEKS = 12


def seed(session: Session, findings: int, end: bulletin.Period, rng: random.Random) -> None:
    """`findings` findings in inspections of 10, over the `WEEKS` weeks up to `end`, with their review history."""
    image = Image(sha256="0" * 64, path="00/00/0", bytes=1, width=1920, height=1080)
    session.add(image)
    session.flush()
    start, _ = bulletin.week_of(end.first - timedelta(weeks=WEEKS - 1)).bounds(ZoneInfo("Asia/Shanghai"))
    types = [p.key for p in PROBLEM_TYPES[:3]]
    for first in range(0, findings, 10):
        raised = start + timedelta(minutes=rng.randrange(WEEKS * 7 * 24 * 60))
        township = rng.randrange(12)
        inspection = Inspection(
            created_by="bench",
            created_at=raised,
            region=REGION,
            township=f"镇{township}",
            village=f"镇{township}村{rng.randrange(5)}",
        )
        session.add(inspection)
        session.flush()
        for _ in range(min(10, findings - first)):
            session.add(_finding(inspection.id, image.id, rng.choice(types), raised, rng))
    session.commit()


def _finding(inspection_id: int, image_id: int, type_: str, raised: datetime, rng: random.Random) -> Finding:
    finding = Finding(
        inspection_id=inspection_id,
        image_id=image_id,
        type=type_,
        label=type_,
        score=rng.random(),
        x1=10,
        y1=10,
        x2=200,
        y2=200,
        observed_at=raised,
        model_version="bench",
        status="candidate",
        created_at=raised,
        updated_at=raised,
    )
    path = ["candidate"]
    if rng.random() < 0.8:
        path += ["confirmed", "rectification_ordered"]
        if rng.random() < 0.85:
            path.append("rectified")
            if rng.random() < 0.7:
                path.append("closed")
    elif rng.random() < 0.5:
        path.append("dismissed")
    at, deadline = raised, None
    for before, to in zip([None, *path], path, strict=False):
        at = at + timedelta(hours=rng.randrange(1, 120))
        if to == "rectification_ordered":
            deadline = (at + timedelta(days=3)).date()
        finding.events.append(
            FindingEvent(
                from_status=before,
                to_status=to,
                actor="bench",
                at=at,
                deadline=deadline if to == "rectification_ordered" else None,
            )
        )
    finding.status, finding.deadline = path[-1], deadline
    return finding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", help="an empty database to fill (default: a temporary SQLite file)")
    args = parser.parse_args()
    period = bulletin.parse_period("2026-W48")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(database_url=url, data_dir=Path(tmp) / "images")
        engine = make_engine(url)
        upgrade(engine)
        factory = make_sessionmaker(engine)
        with factory() as session:
            seed(session, args.findings, period, random.Random(0))
        times = []
        for _ in range(args.repeat):
            with factory() as session:
                started = time.perf_counter()
                result = bulletin.make(session, settings, period, REGION)
                times.append((time.perf_counter() - started) * 1000)
        print(
            f"{args.findings} findings over {WEEKS} weeks on {engine.dialect.name}: bulletin of {period.key} in "
            f"{statistics.median(times):.0f} ms (median of {args.repeat}; min {min(times):.0f}, max {max(times):.0f}); "
            f"{result.new_total} new, {result.rectified_on_time} on time, {result.rectified_late} late, "
            f"{result.still_overdue} overdue, {len(result.ranking)} townships ranked"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
