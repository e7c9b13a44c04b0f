"""Batch jobs: score every photo of a server folder or an uploaded zip, in the background.

A job is one inspection. Creating it lists the files as `JobItem` rows; a single runner thread
then scores them a batch at a time (the next batch detected while this one is recorded), and
commits each item's results together with its pending → done move (a compare-and-set that also
requires the job to be active), so after a crash or restart the runner resumes at the first
pending item and nothing is recorded twice. Cancelling stops the runner before the next item.

Zips are hostile input: entries with absolute paths, `..`, or links are refused, and so are
archives whose entry count, total expanded size or compression ratio (per entry, or of all entries
together) exceed the limits (zip bombs); extraction also counts the bytes actually produced rather
than trusting headers. Entries Python cannot read (encrypted, or compressed by an unknown method)
are refused before anything is written.
"""

from __future__ import annotations

import logging
import lzma
import os
import shutil
import stat
import threading
import time
import uuid
import zipfile
import zlib
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from inference_api import services
from inference_api.auth import Principal, Role
from inference_api.db import transaction
from inference_api.deps import AppState
from inference_api.errors import ApiError
from inference_api.models import ApiKey, Job, JobItem, utcnow
from model.images import IMAGE_SUFFIXES, path_text
from model.tiling import TileMode

log = logging.getLogger("envwatch.jobs")

ACTIVE = ("queued", "running")
READABLE_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
"""Compression methods Python's zipfile can expand; others (AES, Deflate64, ...) raise mid-read."""
LEFTOVER_AGE_S = 3600
"""Age after which a jobs folder no job reads is deleted; younger ones may be an upload still extracting."""


def _unsafe(message: str) -> ApiError:
    return ApiError(422, "unsafe_archive", message)


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_archive", message)


def safe_members(archive: zipfile.ZipFile, max_entries: int, max_total: int, max_ratio: float) -> list[zipfile.ZipInfo]:
    """The archive's image files, after refusing traversal, links and zip bombs (422 `unsafe_archive`).

    The ratio is checked per entry and for the whole archive: many entries of just under 1 MB,
    each exempt as too small to matter, once expanded 600 kB into 480 MB.
    """
    infos = archive.infolist()
    if len(infos) > max_entries:
        raise _unsafe(f"the zip has {len(infos)} entries, more than {max_entries}")
    total = packed = 0
    members = []
    for info in infos:
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
            raise _unsafe(f"the zip entry {info.filename!r} points outside the archive")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _unsafe(f"the zip entry {info.filename!r} is a link")
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise _invalid(f"the zip entry {info.filename!r} is encrypted; send the photos unencrypted")
        if info.compress_type not in READABLE_METHODS:
            raise _invalid(
                f"the zip entry {info.filename!r} uses compression method {info.compress_type}, not supported"
            )
        total += info.file_size
        packed += info.compress_size
        if total > max_total:
            raise _unsafe(f"the zip expands to more than {max_total} bytes")
        if info.file_size > 1_000_000 and info.file_size / max(info.compress_size, 1) > max_ratio:
            raise _unsafe(f"the zip entry {info.filename!r} is compressed more than {max_ratio:.0f}:1 (zip bomb?)")
        if PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES and not PurePosixPath(name).name.startswith("."):
            members.append(info)
    if total > 1_000_000 and total / max(packed, 1) > max_ratio:
        raise _unsafe(f"the zip's entries together are compressed more than {max_ratio:.0f}:1 (zip bomb?)")
    return members


def extract(
    stream: BinaryIO, target: Path, max_entries: int, max_total: int, max_ratio: float
) -> list[tuple[str, Path]]:
    """Safely extract the zip's images into `target`; (name in the zip, extracted path) per image.

    Files get generated names (never the archive's), are written to `<target>.part` and renamed
    into place at the end, so a refused or broken zip leaves nothing behind.
    """
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, EOFError, UnicodeDecodeError, ValueError) as exc:
        # UnicodeDecodeError: an entry name flagged as UTF-8 that is not
        raise _invalid(f"not a readable zip file: {exc}") from None
    staging = target.with_name(target.name + ".part")
    with archive:
        members = safe_members(archive, max_entries, max_total, max_ratio)
        staging.mkdir(parents=True)
        written_total = 0
        files = []
        try:
            for index, info in enumerate(members):
                name = info.filename.replace("\\", "/")
                out = staging / f"{index:06d}{PurePosixPath(name).suffix.lower()}"
                with archive.open(info) as source, out.open("wb") as sink:
                    while chunk := source.read(1 << 20):
                        written_total += len(chunk)
                        if written_total > max_total:
                            raise _unsafe(f"the zip expands to more than {max_total} bytes")
                        sink.write(chunk)
                files.append((services.clean_filename(name), target / out.name))
            staging.rename(target)
        except (
            zipfile.BadZipFile,
            EOFError,
            zlib.error,
            lzma.LZMAError,
            NotImplementedError,
            RuntimeError,
            ValueError,
        ) as exc:
            # what zipfile raises on damaged or unreadable data once past the headers
            shutil.rmtree(staging, ignore_errors=True)
            raise _invalid(f"the zip is corrupt: {exc}") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return files


def check_room(session: Session, state: AppState, principal: Principal) -> None:
    """429 `too_many_jobs` (with Retry-After) when the key already has `max_active_jobs` queued or running.

    Each queued zip job keeps its extracted photos on disk, so without a limit one key could fill it.
    """
    limit = state.settings.max_active_jobs
    active = session.scalar(
        select(func.count()).select_from(Job).where(Job.created_by == principal.name, Job.status.in_(ACTIVE))
    )
    if (active or 0) >= limit:
        raise ApiError(
            429,
            "too_many_jobs",
            f"{principal.name} has {active} batch jobs queued or running, the most allowed (ENVWATCH_MAX_ACTIVE_JOBS); "
            "retry once one has finished, or cancel one",
            headers={"Retry-After": str(state.settings.retry_after_s)},
        )


def create_job(
    state: AppState,
    principal: Principal,
    kind: str,
    source: str,
    files: list[tuple[str, Path]],
    meta: services.InspectionMeta,
    conf: float | None,
    tile: TileMode = "auto",
) -> int:
    """The job, its inspection and one pending item per file, in one transaction."""
    if not files:
        raise ApiError(422, "no_images", f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {source}")
    with transaction(state.sessions) as session:
        inspection = meta.new_inspection(principal.name, utcnow())
        session.add(inspection)
        session.flush()  # SQLite: this first write takes the database's write lock, so jobs are counted one at a time
        # PostgreSQL: the key's row lock does the same across server processes
        session.execute(select(ApiKey.id).where(ApiKey.name == principal.name).with_for_update())
        check_room(session, state, principal)
        job = Job(
            kind=kind,
            source=source,
            status="queued",
            inspection_id=inspection.id,
            conf=conf,
            tile=tile,
            total=len(files),
            processed=0,
            failed=0,
            created_by=principal.name,
            created_at=utcnow(),
        )
        session.add(job)
        session.flush()
        session.add_all(
            JobItem(job_id=job.id, position=i, name=name, path=stored_path(path), status="pending")
            for i, (name, path) in enumerate(files)
        )
        return job.id


def folder_files(folder: Path, root: Path) -> list[tuple[str, Path]]:
    """Images under `folder`, skipping hidden files and links that lead outside `root`."""
    root = root.resolve()
    return [
        (path_text(p.relative_to(folder)), p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not p.name.startswith(".")
        and p.resolve().is_relative_to(root)
    ]


def stored_path(path: Path) -> str:
    """The path as a text column can hold it, and `open` can take back (`opened_path`).

    A name that is not UTF-8 cannot be stored as text, and a display form like `\\xb5` is not
    the file's name; so such paths are kept as `hex:` and their bytes. Stored paths are absolute
    otherwise, so the prefix cannot be a real path's start.
    """
    raw = os.fsencode(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "hex:" + raw.hex()


def opened_path(stored: str) -> str | bytes:
    return bytes.fromhex(stored.removeprefix("hex:")) if stored.startswith("hex:") else stored


def jobs_dir(state: AppState) -> Path:
    """Where zips are extracted, one folder per upload, beside the image store."""
    return state.images.root.parent.resolve() / "jobs"


def create_zip_job(
    state: AppState,
    principal: Principal,
    archive: BinaryIO,
    archive_name: str,
    meta: services.InspectionMeta,
    conf: float | None,
    tile: TileMode,
) -> int:
    """Extract the zip into a new folder and make its job; the folder is removed again if no job is made.

    A key at its job limit is refused before anything is extracted (and again, under a lock, when the job is made).
    """
    settings = state.settings
    with state.sessions() as session:
        check_room(session, state, principal)
    target = jobs_dir(state) / uuid.uuid4().hex
    files = extract(
        archive, target, settings.max_zip_entries, settings.max_zip_uncompressed_bytes, settings.max_zip_ratio
    )
    try:
        return create_job(state, principal, "zip", archive_name, files, meta, conf, tile)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def cancel(state: AppState, principal: Principal, job_id: int) -> None:
    """Stop the job before its next file; only an admin or the key that started it may."""
    with transaction(state.sessions) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise ApiError(404, "not_found", f"no job {job_id}")
        if principal.role != Role.admin and job.created_by != principal.name:
            raise ApiError(
                403, "forbidden", f"job {job_id} was started by {job.created_by}; only they or an admin may cancel it"
            )
        moved = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(ACTIVE))
            .values(status="cancelled", finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise ApiError(409, "job_finished", f"job {job_id} is already {job.status}")


class JobRunner:
    """One background thread working through pending items of active jobs, oldest job first."""

    def __init__(self, state: AppState, poll_s: float = 0.5) -> None:
        self.state, self.poll_s = state, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="envwatch-jobs", daemon=True)
        self._current: int | None = None

    def start(self) -> None:
        self._thread.start()

    def sweep(self, job_ids: list[int]) -> None:
        """Delete the extracted files of these zip jobs once they have finished.

        Only the runner deletes, and only jobs it is not working on, so no file vanishes mid-read.
        """
        folder_of_jobs = jobs_dir(self.state)
        with self.state.sessions() as session:
            query = select(Job.id).where(Job.kind == "zip", Job.status.not_in(ACTIVE), Job.id.in_(job_ids))
            for job_id in session.scalars(query).all():
                first = session.scalar(select(JobItem.path).where(JobItem.job_id == job_id).limit(1))
                folder = Path(first).parent.resolve() if first else None
                if folder and folder.parent == folder_of_jobs and folder.exists():
                    shutil.rmtree(folder, ignore_errors=True)

    def remove_leftovers(self, min_age_s: float = LEFTOVER_AGE_S) -> None:
        """Delete the jobs folders no active job reads: those of finished jobs, and those a crash left.

        A server killed mid-extraction leaves `<uuid>.part`; one killed between extraction and the
        job's commit leaves a folder no job names. Such folders younger than `min_age_s` are spared:
        on a data dir shared by several servers, they may be another server's upload in progress.
        """
        folder_of_jobs = jobs_dir(self.state)
        if not folder_of_jobs.is_dir():
            return
        with self.state.sessions() as session:
            rows = session.execute(
                select(JobItem.path, Job.status)
                .join(Job, Job.id == JobItem.job_id)
                .where(Job.kind == "zip", JobItem.position == 0)
            ).all()
        active = {Path(path).parent.resolve() for path, status in rows if status in ACTIVE}
        finished = {Path(path).parent.resolve() for path, status in rows if status not in ACTIVE}
        now = time.time()
        for folder in folder_of_jobs.iterdir():
            if not folder.is_dir() or folder.resolve() in active:
                continue
            if folder.resolve() in finished or now - folder.stat().st_mtime > min_age_s:
                shutil.rmtree(folder, ignore_errors=True)
                log.info("removed a jobs folder no active job reads", extra={"folder": folder.name})

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        try:
            self.remove_leftovers()
        except Exception:
            log.exception("removing leftover jobs folders failed")
        while not self._stop.is_set():
            try:
                worked = self.step()
            except Exception:
                log.exception("job step failed")
                worked = False
            if not worked:
                self._stop.wait(self.poll_s)

    def step(self) -> bool:
        """Score the next pending item of the oldest active job; False when there is nothing to do."""
        state = self.state
        if state.detector is None:
            return False
        with state.sessions() as session:
            job = session.scalar(select(Job).where(Job.status.in_(ACTIVE)).order_by(Job.id).limit(1))
        if self._current is not None and (job is None or job.id != self._current):
            self.sweep([self._current])  # the job worked on last has ended (done or cancelled)
        self._current = job.id if job is not None else None
        if job is None:
            return False
        items = self._pending(job)
        if not items:
            with transaction(state.sessions) as session:
                session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.status.in_(ACTIVE))
                    .values(status="done", finished_at=utcnow())
                )
            log.info("job done", extra={"job": job.id})
            return True
        if job.status == "queued":
            with transaction(state.sessions) as session:
                session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.status == "queued")
                    .values(status="running", started_at=utcnow())
                )
        self._score(job, items)
        return True

    def _read(self, item: JobItem) -> services.Upload:
        try:
            with open(opened_path(item.path), "rb") as handle:
                return services.read_upload(item.name, handle, self.state.settings.max_upload_bytes)
        except OSError as exc:
            return services.Upload(
                item.name, error=services.FileError(file=item.name, code="unreadable", message=str(exc))
            )

    def _score(self, job: Job, items: Sequence[JobItem]) -> None:
        """Score the job's pending items from `items` on, `DETECT_BATCH` at a time, each batch in one detector
        call, recording each item in order. While one batch is recorded (database, image store), the next is
        decoded and detected on the pool's worker, so the networks do not wait for the disk."""
        running = self._submit(job, items)
        while running is not None:
            found = running.result()
            following = [] if self._stop.is_set() else self._pending(job, after=items[-1].position)
            running = self._submit(job, following) if following else None
            for item, analysed in zip(items, found, strict=True):
                if not self._record(job, item, analysed):
                    return  # cancelled: what runs ahead is dropped (nothing of it is stored yet)
            items = following

    def _submit(self, job: Job, items: Sequence[JobItem]) -> Future[list[services.Analysed]]:
        state = self.state
        uploads = [self._read(item) for item in items]
        return state.pool.submit_waiting(services.analyse, uploads, state.detector, state.settings, job.conf, job.tile)

    def _pending(self, job: Job, after: int | None = None) -> list[JobItem]:
        """The job's next `DETECT_BATCH` pending items in order (those after position `after`, when given)."""
        query = select(JobItem).where(JobItem.job_id == job.id, JobItem.status == "pending")
        if after is not None:
            query = query.where(JobItem.position > after)
        with self.state.sessions() as session:
            return list(session.scalars(query.order_by(JobItem.position).limit(services.DETECT_BATCH)))

    def _record(self, job: Job, item: JobItem, analysed: services.Analysed) -> bool:
        """Commit one item's results with its pending -> done move; False when it may not be recorded: the job
        was cancelled meanwhile (so cancelling still stops before the next file), or another runner was first."""
        state = self.state
        active = select(Job.id).where(Job.id == job.id, Job.status.in_(ACTIVE)).exists()
        try:
            with transaction(state.sessions) as session:
                claimed = session.execute(
                    update(JobItem)
                    .where(JobItem.id == item.id, JobItem.status == "pending", active)
                    .values(
                        status="done" if analysed.ok else "error",
                        error_message=analysed.error.message if analysed.error else None,
                    )
                    .execution_options(synchronize_session=False)
                )
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    return False
                raised = services.add_file_rows(
                    session, state, job.inspection_id, item.position, analysed, job.created_by, utcnow()
                )
                session.execute(
                    update(Job)
                    .where(Job.id == job.id)
                    .values(processed=Job.processed + 1, failed=Job.failed + (0 if analysed.ok else 1))
                    .execution_options(synchronize_session=False)
                )
        except BaseException:
            services.discard_unreferenced(state, services.stored_shas([analysed]))
            raise
        for finding in raised:
            state.metrics.detections.labels(finding.type).inc()
        return True
