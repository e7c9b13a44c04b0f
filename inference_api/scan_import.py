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
still the one scanned (its sha256 and size) and that every record holds what a scan writes
(known problem types, scores in 0-1, finite boxes inside the photo, real coordinates): a
results file is input from outside, and one bad value stored would break every later read of
the ledger. Re-importing the same results file is a no-op: the default
idempotency key is the file's sha256. Database and image folder are the service's settings
(`ENVWATCH_DATABASE_URL`, `ENVWATCH_DATA_DIR`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import signal
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import get_args
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
from model.images import ImageError, path_from_text, upright_size
from model.problems import Extent, Problem
from model.taxonomy import PROBLEMS_BY_KEY

REQUIRED = frozenset({"problems", "width", "height", "model", "sha256"})
"""Fields of a JSONL record (besides `image`) that an import needs; an error record needs only `error`."""
MAX_SIDE = 1_000_000
"""No photo or mosaic envwatch reads is wider or taller (its pixel limit is far below this squared)."""
BOX_SLACK_PX = 1.0
"""How far a box may reach past the photo's edge: rounding in the scan's output, not a box elsewhere."""


class ScanImportError(ValueError):
    """The results file cannot be imported; nothing was stored."""


def read_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each line of an `envwatch scan` JSONL file, checked for the fields we use."""
    with path.open(encoding="utf-8-sig") as handle:  # a BOM from an editor on Windows is no error
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


def _number(value: object, what: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{what} must be a number from {low} to {high}, not {value!r}")
    return float(value)  # NaN fails the range check above; infinities fail finite bounds


def _coordinates(place: object, what: str) -> dict:
    if not isinstance(place, dict):
        raise ValueError(f"{what} must be an object, not {place!r}")
    _number(place.get("lat"), f"{what} lat", -90, 90)
    _number(place.get("lon"), f"{what} lon", -180, 180)
    if place.get("alt") is not None:
        _number(place["alt"], f"{what} alt", -1e5, 1e5)
    return place


def _problem(raw: object, width: int, height: int) -> Problem:
    """One problem of a record, checked: a known type, a score in 0-1, a box inside the photo."""
    if not isinstance(raw, dict):
        raise ValueError(f"a problem must be an object, not {raw!r}")
    if raw.get("type") not in PROBLEMS_BY_KEY:
        raise ValueError(f"unknown problem type {raw.get('type')!r}")
    if not isinstance(raw.get("label"), str) or not raw["label"]:
        raise ValueError(f"a problem's label must be text, not {raw.get('label')!r}")
    box = raw.get("box")
    if not isinstance(box, list) or len(box) != 4:
        raise ValueError(f"a box must be [x1, y1, x2, y2], not {box!r}")
    x1, x2 = (_number(v, "box x", -BOX_SLACK_PX, width + BOX_SLACK_PX) for v in (box[0], box[2]))
    y1, y2 = (_number(v, "box y", -BOX_SLACK_PX, height + BOX_SLACK_PX) for v in (box[1], box[3]))
    if x1 > x2 or y1 > y2:
        raise ValueError(f"a box must have x1 <= x2 and y1 <= y2, not {box!r}")
    if raw.get("position") is not None:
        _coordinates(raw["position"], "position")
    extent = raw.get("extent", "box")  # scans before v4 wrote none: every problem was a box
    if extent not in get_args(Extent):
        raise ValueError(f"a problem's extent must be one of {', '.join(get_args(Extent))}, not {extent!r}")
    return Problem(raw["type"], _number(raw.get("score"), "score", 0, 1), (x1, y1, x2, y2), raw["label"], extent)


def _checked(record: dict) -> tuple[int, int, list[Problem]]:
    """The record's size and problems, after checking every field the ledger will keep (ValueError if not)."""
    width = int(_number(record["width"], "width", 1, MAX_SIDE))
    height = int(_number(record["height"], "height", 1, MAX_SIDE))
    if not isinstance(record["problems"], list):
        raise ValueError(f"problems must be a list, not {record['problems']!r}")
    problems = [_problem(p, width, height) for p in record["problems"]]
    if not isinstance(record["model"], str) or not record["model"]:
        raise ValueError(f"model must be the model's version, not {record['model']!r}")
    warnings = record.get("warnings", [])
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        raise ValueError(f"warnings must be a list of text, not {warnings!r}")
    if record.get("gps") is not None:
        _coordinates(record["gps"], "gps")
    if not isinstance(record["sha256"], str):
        raise ValueError(f"sha256 must be text, not {record['sha256']!r}")
    return width, height, problems


def _photo_path(name: str, root: Path | None) -> Path:
    """The photo a record names; a name scan wrote with `\\xNN` escapes (not UTF-8) is the file with those bytes."""
    path = Path(name) if root is None or Path(name).is_absolute() else root / name
    if path.exists() or "\\x" not in name:
        return path
    return path_from_text(str(path))


def _analysed(record: dict, root: Path | None, settings: Settings) -> services.Analysed:
    """The record as the service's `Analysed`, with the photo's bytes; per-file problems become file errors."""
    name = record["image"]
    if not isinstance(name, str):
        raise ValueError(f"image must be a path, not {name!r}")
    if "error" in record:
        message = record["error"] if isinstance(record["error"], str) else json.dumps(record["error"])
        return services.Analysed(name, error=FileError(file=name, code="invalid_image", message=message))
    width, height, problems = _checked(record)
    path = _photo_path(name, root)
    if not path.is_file():  # a named pipe would block the read forever
        message = f"{path} is not a file" if path.exists() else f"no file {path}"
        return services.Analysed(name, error=FileError(file=name, code="unreadable", message=message))
    try:
        data = path.read_bytes()
    except OSError as exc:
        return services.Analysed(name, error=FileError(file=name, code="unreadable", message=str(exc)))
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 != record["sha256"]:
        message = f"{path} has changed since it was scanned (sha256 {sha256[:12]}…, scanned {record['sha256'][:12]}…)"
        return services.Analysed(name, error=FileError(file=name, code="changed", message=message))
    try:
        size = upright_size(data)
    except ImageError as exc:
        return services.Analysed(name, error=FileError(file=name, code="invalid_image", message=str(exc)))
    if size != (width, height):
        message = f"{path} is {size[0]}x{size[1]}, the record says {width}x{height}"
        return services.Analysed(name, error=FileError(file=name, code="changed", message=message))
    captured_at = datetime.fromisoformat(record["captured_at"]) if record.get("captured_at") else None
    if captured_at is not None and captured_at.tzinfo is None:  # EXIF local time, as uploads read it
        captured_at = captured_at.replace(tzinfo=ZoneInfo(settings.exif_timezone))
    return services.Analysed(
        name,
        data,
        sha256=sha256,
        width=width,
        height=height,
        gps=record.get("gps"),
        captured_at=captured_at,
        detections=len(record.get("detections", [])),
        problems=problems[: services.MAX_FINDINGS_PER_IMAGE],
        model_version=record["model"],
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
            files = rejected = photos = unreadable = 0
            seen: dict[object, int] = {}
            for position, (number, record) in enumerate(read_records(results)):
                if (earlier := seen.setdefault(record["image"], number)) != number:
                    raise ScanImportError(f"{results}:{number}: {record['image']} was already on line {earlier}")
                try:
                    item = _analysed(record, images_root, state.settings)
                except (KeyError, TypeError, ValueError) as exc:
                    raise ScanImportError(f"{results}:{number}: not a valid scan record: {exc}") from None
                if item.ok and state.images.put(item.sha256, item.data):
                    created.append(item.sha256)
                findings = services.add_file_rows(session, state, inspection.id, position, item, actor, now)
                _place(findings, record)
                raised += findings
                files, rejected = files + 1, rejected + (not item.ok)
                photos += "error" not in record
                unreadable += item.error is not None and item.error.code == "unreadable"
            if not files:
                raise ScanImportError(f"{results} holds no scan records")
            if photos and unreadable == photos:
                # A wrong --images-root (or folder) would otherwise be imported as all-error, and the
                # file's idempotency key would then refuse the corrected run as "already imported".
                where = images_root or Path.cwd()
                raise ScanImportError(f"none of the {photos} photos was found from {where}; check --images-root")
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


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    """SIGTERM (a job scheduler's stop) ends the import like Ctrl-C: rolled back, stored images removed."""
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
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
    except UnicodeDecodeError as exc:
        print(
            f"envwatch import-scan: {args.results} is not UTF-8 text ({exc.reason}); nothing was imported",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("envwatch import-scan: stopped; nothing was imported", file=sys.stderr)
        return 130
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
