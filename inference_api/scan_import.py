"""`envwatch import-scan RESULTS.jsonl`: store an `envwatch scan` as one inspection of the service.

A drone survey is scanned offline (often on a Ray cluster) and then reviewed in the service like
any upload: this turns the JSONL into one inspection with one file row per image and a
`candidate` finding per problem, through the same `services.add_file_rows` an upload or batch
job uses, so findings, history, webhooks and metrics look the same whichever way they came.

Two things differ from an upload, on purpose. A finding with a ground position (scan.py,
model/georef.py) is stored at that position rather than at the photo's GPS: for a drone photo
the camera can be a hundred metres from the problem. And images are read, stored and released
one at a time inside the one transaction, because a survey is thousands of 10 MB photos that
must not all be held in memory; if anything fails the transaction rolls back and the image files
it created are removed, so a failed import leaves nothing.

The scan's results are taken as they are (no detector runs), after checking that each photo is
still the one scanned (its sha256). Re-importing the same results file is a no-op: the default
idempotency key is the file's sha256. Database and image folder are the service's settings
(`ENVWATCH_DATABASE_URL`, `ENVWATCH_DATA_DIR`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from inference_api import db, services, store
from inference_api.deps import AppState
from inference_api.models import Finding, utcnow
from inference_api.observability import Metrics
from inference_api.pool import DetectorPool
from inference_api.schemas import FileError
from inference_api.settings import Settings, get_settings
from inference_api.storage import ImageStore
from model.problems import Problem

REQUIRED = frozenset({"problems", "width", "height", "model", "sha256"})
"""Fields of a JSONL record (besides `image`) that an import needs; an error record needs only `error`."""


class ScanImportError(ValueError):
    """The results file cannot be imported; nothing was stored."""


def read_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each line of an `envwatch scan` JSONL file, checked for the fields we use."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                message = f"{path}:{number}: not JSON ({exc}); import the JSONL that envwatch scan writes"
                raise ScanImportError(message) from None
            if not isinstance(record, dict) or "image" not in record:
                raise ScanImportError(f"{path}:{number}: not an envwatch scan record (no 'image')")
            if "error" not in record and not record.keys() >= REQUIRED:
                raise ScanImportError(f"{path}:{number}: a scan record needs {', '.join(sorted(REQUIRED))}")
            yield number, record


def _analysed(record: dict, root: Path | None, settings: Settings) -> services.Analysed:
    """The record as the service's `Analysed`, with the photo's bytes; per-file problems become file errors."""
    name = record["image"]
    if "error" in record:
        return services.Analysed(name, error=FileError(file=name, code="invalid_image", message=record["error"]))
    path = Path(name) if root is None or Path(name).is_absolute() else root / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        return services.Analysed(name, error=FileError(file=name, code="unreadable", message=str(exc)))
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 != record["sha256"]:
        message = f"{path} has changed since it was scanned (sha256 {sha256[:12]}…, scanned {record['sha256'][:12]}…)"
        return services.Analysed(name, error=FileError(file=name, code="changed", message=message))
    captured_at = datetime.fromisoformat(record["captured_at"]) if record.get("captured_at") else None
    if captured_at is not None and captured_at.tzinfo is None:  # EXIF local time, as uploads read it
        captured_at = captured_at.replace(tzinfo=ZoneInfo(settings.exif_timezone))
    problems = [Problem(p["type"], float(p["score"]), tuple(p["box"]), p["label"]) for p in record["problems"]]
    return services.Analysed(
        name,
        data,
        sha256=sha256,
        width=int(record["width"]),
        height=int(record["height"]),
        gps=record.get("gps"),
        captured_at=captured_at,
        detections=len(record.get("detections", [])),
        problems=problems[: services.MAX_FINDINGS_PER_IMAGE],
        model_version=str(record["model"]),
        warnings=list(record.get("warnings", [])),
    )


def _place(findings: list[Finding], record: dict) -> None:
    """Move findings with a ground position there (not at the camera); others keep the photo's GPS."""
    for finding, problem in zip(findings, record.get("problems", []), strict=False):
        position = problem.get("position")
        if position:
            finding.lat, finding.lon, finding.alt = position["lat"], position["lon"], None


def _state(settings: Settings) -> AppState:
    engine = db.make_engine(settings.database_url)
    pool = DetectorPool(1, 0)
    return AppState(settings, engine, db.make_sessionmaker(engine), ImageStore(settings.data_dir), pool, Metrics(pool))


def import_scan(
    state: AppState, results: Path, meta: services.InspectionMeta, actor: str, images_root: Path | None = None
) -> tuple[int, bool]:
    """Store `results` as one inspection; (its id, True) or, for results imported before, (that id, False)."""
    if meta.client_id is not None:
        with state.sessions() as session:
            existing = store.inspection_by_client_id(session, meta.client_id)
        if existing is not None:
            return existing.id, False
    created: list[str] = []
    try:
        with db.transaction(state.sessions) as session:
            now = utcnow()
            inspection = meta.new_inspection(actor, now)
            session.add(inspection)
            session.flush()
            raised: list[Finding] = []
            files = rejected = 0
            for position, (number, record) in enumerate(read_records(results)):
                try:
                    item = _analysed(record, images_root, state.settings)
                except (KeyError, TypeError, ValueError) as exc:
                    raise ScanImportError(f"{results}:{number}: not a valid scan record ({exc!r})") from None
                if item.ok and state.images.put(item.sha256, item.data):
                    created.append(item.sha256)
                findings = services.add_file_rows(session, state, inspection.id, position, item, actor, now)
                _place(findings, record)
                raised += findings
                files, rejected = files + 1, rejected + (not item.ok)
            if not files:
                raise ScanImportError(f"{results} holds no scan records")
            session.flush()
            inspection_id = inspection.id
            services.announce_inspection(session, state, inspection, files, rejected, raised)
    except IntegrityError:
        services.discard_unreferenced(state, created)
        with state.sessions() as session:
            existing = store.inspection_by_client_id(session, meta.client_id) if meta.client_id else None
        if existing is None:
            raise
        return existing.id, False
    except BaseException:
        services.discard_unreferenced(state, created)
        raise
    return inspection_id, True


def main(args: argparse.Namespace) -> int:
    if not args.results.is_file():
        print(f"envwatch import-scan: no file {args.results}", file=sys.stderr)
        return 2
    client_id = args.client_id or "scan-import:" + hashlib.sha256(args.results.read_bytes()).hexdigest()
    meta = services.InspectionMeta(args.inspector, args.region, args.township, args.village, args.note, client_id)
    state = _state(get_settings())
    try:
        db.upgrade(state.engine)
        inspection_id, created = import_scan(state, args.results, meta, args.actor, args.images_root)
        with state.sessions() as session:
            inspection = store.get_inspection(session, inspection_id)
            assert inspection is not None
            files, findings = len(inspection.files), len(inspection.findings)
            errors = sum(f.error_code is not None for f in inspection.files)
    except ScanImportError as exc:
        print(f"envwatch import-scan: {exc}", file=sys.stderr)
        return 2
    finally:
        state.pool.shutdown()
        state.engine.dispose()
    done = "imported as" if created else "already imported as"
    print(
        f"envwatch import-scan: {done} inspection {inspection_id}: {files} files, {findings} findings, {errors} errors",
        file=sys.stderr,
    )
    print(json.dumps({"inspection_id": inspection_id, "created": created, "files": files, "findings": findings}))
    return 0
