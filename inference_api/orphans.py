"""Image files no committed row references: removed safely, and swept up after a crash.

A stored photo is content-addressed, so two requests can need the same file at once: one that
fails (a refused rectification, a rolled-back upload) must not delete a file that another is about
to commit a row for. The unique sha256 of the `images` table is the lock that makes this safe:

- a writer inserts (or finds) the image row first and writes the file only after that insert,
  inside the transaction that commits the row (`services.stored_image`);
- a deleter inserts a placeholder row for the sha256, deletes the file while holding it, and rolls
  the placeholder back. The insert fails when a committed row exists, and waits (PostgreSQL's
  unique index, SQLite's write lock) while another transaction holds an uncommitted one.

So a file is deleted only while no transaction can be creating a reference to it, and a writer
that lost its file to a deleter just before its insert writes it again. This works across server
processes sharing one database, which an in-process lock would not.

A server killed between writing a file and committing its row leaves the file behind (and
`write_whole` may leave a `.part`); `OrphanSweeper` removes such files once they are older than a
grace period, through the same placeholder lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from inference_api.deps import AppState
from inference_api.models import Image, utcnow

log = logging.getLogger("envwatch.orphans")

SWEEP_BATCH = 500
"""File names checked against the database per query."""


def discard_unreferenced(state: AppState, shas: Iterable[str]) -> int:
    """Delete the files of `shas` that no committed image row references; returns how many were deleted.

    Each sha256 gets its own short transaction, so a deleter never holds one placeholder while
    waiting for another (no deadlock with an upload holding several). A placeholder that cannot
    be written (a full disk under SQLite) leaves the file for the sweeper.
    """
    deleted = 0
    for sha in dict.fromkeys(shas):
        try:
            with state.sessions() as session:
                session.add(_placeholder(state, sha))
                try:
                    session.flush()  # holds the sha256: no transaction can reference it until the rollback
                except IntegrityError:
                    continue  # a committed row references the file: it stays
                if state.images.discard(sha):
                    deleted += 1
                session.rollback()
        except Exception:
            log.exception("could not check an image file against the database; the sweeper will", extra={"sha": sha})
    return deleted


def _placeholder(state: AppState, sha: str) -> Image:
    path = state.images.relative_path(sha)
    return Image(sha256=sha, path=path, bytes=0, width=0, height=0, created_at=utcnow())


def _stored_files(root: Path) -> Iterator[Path]:
    """Every file under the store's two levels of folders (`ab/cd/<sha256>` and temporary `.part` files)."""
    for first in os.scandir(root):
        if not first.is_dir(follow_symlinks=False) or len(first.name) != 2:
            continue
        for second in os.scandir(first.path):
            if second.is_dir(follow_symlinks=False):
                yield from (Path(entry.path) for entry in os.scandir(second.path) if entry.is_file())


def sweep(state: AppState, min_age_s: float) -> int:
    """Remove image files older than `min_age_s` that no row references, and stale `.part` files; returns the count.

    Younger files may belong to an upload not yet committed (on this or another server); the
    placeholder lock would keep them safe anyway, but need not wait on it.
    """
    cutoff = time.time() - min_age_s
    removed, candidates = 0, []
    for path in _stored_files(state.images.root):
        try:
            if path.stat().st_mtime > cutoff:
                continue
        except FileNotFoundError:
            continue
        if path.name.endswith(".part"):  # a write_whole a crash interrupted: never referenced
            path.unlink(missing_ok=True)
            removed += 1
        else:
            candidates.append(path.name)
    for start in range(0, len(candidates), SWEEP_BATCH):
        names = candidates[start : start + SWEEP_BATCH]
        with state.sessions() as session:
            known = set(session.scalars(select(Image.sha256).where(Image.sha256.in_(names))))
        unknown = [name for name in names if name not in known and _is_sha(name)]
        removed += discard_unreferenced(state, unknown)
    if removed:
        log.info("removed image files no row references", extra={"files": removed})
    return removed


def _is_sha(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


class OrphanSweeper:
    """Sweeps the image store at startup and then every `interval_s`, until `stop()`."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="envwatch-orphans", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        settings = self.state.settings
        while not self._stop.is_set():
            try:
                sweep(self.state, settings.orphan_grace_s)
            except Exception:
                log.exception("sweeping orphan image files failed")
            self._stop.wait(settings.orphan_sweep_s)
