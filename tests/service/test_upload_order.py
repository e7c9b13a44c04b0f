"""Two uploads holding the same new photos in opposite order both succeed (services.store_images).

The interleaving that deadlocked is forced, not hoped for: upload 1 holds photo a's insert, upload
2 starts with its photos listed [b, a], and only once upload 2 waits on a lock does upload 1 go on
to insert b. Were upload 2 to insert b first (the order it was given), upload 1 would wait on it
while it waits on a, and PostgreSQL would fail one of them after `deadlock_timeout`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from inference_api import db, services
from inference_api.storage import ImageStore


def analysed(data: bytes) -> services.Analysed:
    sha256 = hashlib.sha256(data).hexdigest()
    return services.Analysed(name=f"{sha256[:8]}.jpg", data=data, sha256=sha256, width=4, height=3)


def wait_until_blocked(engine: sa.Engine, application: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :app AND wait_event_type = 'Lock'")
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.scalar(query, {"app": application}):
                return
        time.sleep(0.05)
    raise AssertionError(f"the second upload never waited on a lock within {seconds:g} s")


def test_opposite_orders_of_the_same_new_photos_do_not_deadlock(database_url: str, tmp_path: Path) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite takes one writer at a time: two uploads never hold rows at once")
    a, b = sorted((analysed(b"photo one" * 50), analysed(b"photo two" * 60)), key=lambda item: item.sha256)
    images = ImageStore(tmp_path / "images")
    first_engine = db.make_engine(database_url)
    separator = "&" if "?" in database_url else "?"
    second_engine = db.make_engine(f"{database_url}{separator}application_name=second_upload")
    db.upgrade(first_engine)
    failures: list[BaseException] = []

    def second_upload() -> None:
        try:
            with db.transaction(db.make_sessionmaker(second_engine)) as session:
                services.store_images(session, images, [b, a])
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    try:
        with db.transaction(db.make_sessionmaker(first_engine)) as first:
            services.stored_image(first, images, a)
            thread = threading.Thread(target=second_upload)
            thread.start()
            wait_until_blocked(first_engine, "second_upload")
            services.stored_image(first, images, b)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the second upload is still waiting"
        assert not failures, f"the second upload failed: {failures[0]!r}"
        with first_engine.connect() as connection:
            stored = connection.execute(sa.text("SELECT sha256 FROM images ORDER BY sha256")).scalars().all()
        assert stored == [a.sha256, b.sha256]
        assert images.read(a.sha256) == a.data and images.read(b.sha256) == b.data
    finally:
        first_engine.dispose()
        second_engine.dispose()
