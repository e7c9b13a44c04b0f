"""What the endpoints do, apart from HTTP: score uploads, store them, move findings through review.

Two phases per upload, on purpose: `analyse` (decode + detect; CPU-heavy; runs on the bounded
detector pool, touches neither disk nor database) and `persist_*` (every row in one transaction,
each image file written atomically once its row holds the sha256; files no committed row uses are
removed if the transaction fails, see orphans.py). So a failure at any point leaves nothing
half-written.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inference_api import deadlines, orphans, recurrences, store, webhooks
from inference_api.auth import Principal
from inference_api.db import transaction
from inference_api.deps import AppState
from inference_api.errors import ApiError
from inference_api.models import Finding, FindingEvent, Image, Inspection, InspectionFile, utcnow
from inference_api.schemas import FileError, Status
from inference_api.settings import Settings
from inference_api.storage import ImageStore

if TYPE_CHECKING:
    from model.images import LeastSize, LoadedImage
    from model.problems import Problem
    from model.runtime import Detector
    from model.tiling import TileMode

log = logging.getLogger("envwatch.service")

MAX_FINDINGS_PER_IMAGE = 100
"""Highest-scoring problems kept per image, so a low `conf` cannot flood the ledger."""
DETECT_BATCH = 4
"""Images per detector call: amortises inference while bounding the tensor memory of one call."""

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.candidate: frozenset({Status.confirmed, Status.dismissed}),
    Status.confirmed: frozenset({Status.rectification_ordered}),
    Status.rectification_ordered: frozenset({Status.rectified}),
    # A failed re-check sends the finding back for another rectification.
    Status.rectified: frozenset({Status.closed, Status.rectification_ordered}),
    Status.dismissed: frozenset(),
    Status.closed: frozenset(),
}


@dataclass
class Upload:
    """One uploaded file, read with a size cap; `error` is set when it was rejected before decoding."""

    name: str
    data: bytes = b""
    error: FileError | None = None


@dataclass
class Analysed:
    name: str
    data: bytes = b""
    error: FileError | None = None
    sha256: str = ""
    width: int = 0
    height: int = 0
    gps: dict[str, Any] | None = None
    captured_at: datetime | None = None
    detections: int = 0
    problems: list[Problem] = field(default_factory=list)
    model_version: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class DevicePosition:
    """Where the uploading device (a phone's browser) was when the photo was taken, as it reported it.

    Photos from a phone's camera through a browser usually lose their EXIF GPS; this places them on
    the map anyway, marked as the device's, with the radius it claimed. A photo's own GPS wins.
    """

    lat: float
    lon: float
    accuracy_m: float | None = None


def device_position(lat: float | None, lon: float | None, accuracy_m: float | None) -> DevicePosition | None:
    """The upload's optional device position; 422 when it is only half given."""
    if lat is None and lon is None:
        if accuracy_m is not None:
            raise ApiError(422, "invalid_request", "device_accuracy_m needs device_lat and device_lon")
        return None
    if lat is None or lon is None:
        raise ApiError(422, "invalid_request", "device_lat and device_lon go together: give both or neither")
    return DevicePosition(lat, lon, accuracy_m)


@dataclass(frozen=True)
class InspectionMeta:
    inspector: str | None = None
    region: str | None = None
    township: str | None = None
    village: str | None = None
    note: str | None = None
    client_id: str | None = None
    device: DevicePosition | None = None
    """Position for every file of the upload whose EXIF has no GPS."""

    def new_inspection(self, created_by: str, created_at: datetime) -> Inspection:
        """The ledger row these details describe; jobs and uploads both start one this way."""
        return Inspection(
            client_id=self.client_id,
            inspector=self.inspector,
            region=self.region,
            township=self.township,
            village=self.village,
            note=self.note,
            created_by=created_by,
            created_at=created_at,
        )


def clean_filename(name: str | None) -> str:
    """A client's file name as the ledger keeps it: control characters (NUL, which PostgreSQL text refuses,
    line breaks) become U+FFFD, and it is cut to 300 characters."""
    kept = "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Cs") else c for c in (name or "(unnamed)"))
    return kept[:300]


def read_upload(name: str | None, stream: BinaryIO, max_bytes: int) -> Upload:
    """Read at most `max_bytes` + 1 bytes, so an oversized file is recognised without being held whole."""
    filename = clean_filename(name)
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        return Upload(
            filename,
            error=FileError(
                file=filename, code="too_large", message=f"the file is larger than the limit of {max_bytes} bytes"
            ),
        )
    if not data:
        return Upload(filename, error=FileError(file=filename, code="empty", message="the file is empty (zero bytes)"))
    return Upload(filename, data)


def _aware(value: datetime | None, zone: str) -> datetime | None:
    """EXIF times carry no zone; cameras record local time, so attach the configured one."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(zone))


def analyse(
    uploads: list[Upload], detector: Detector, settings: Settings, conf: float | None, tile: TileMode = "auto"
) -> list[Analysed]:
    """Decode and score `uploads`; per-file problems become per-file errors, never a failed batch.

    Decoding and detecting go `DETECT_BATCH` files at a time, so a request holds the pixels of
    one batch, not of all its files: 32 small PNGs of 59 MP each would otherwise need 6 GB.

    `tile` is model/tiling.py's mode: drone frames need it to see small problems, while an
    inspector's close-up phone photo would only pay its time and its extra false alarms, so
    `auto` tiles only what the file says was taken from the air.
    """
    from model.tiling import decode_size, detect_images

    least_size = decode_size(detector.input_size, tile)
    results: list[Analysed] = []
    for start in range(0, len(uploads), DETECT_BATCH):
        chunk = [_decode(upload, detector, settings, least_size) for upload in uploads[start : start + DETECT_BATCH]]
        results.extend(item for item, _ in chunk)
        decoded = [(item, image) for item, image in chunk if image is not None]
        pixels, aerial = [image.pixels for _, image in decoded], [image.aerial for _, image in decoded]
        sizes = [(image.width, image.height) for _, image in decoded]
        outputs = detect_images(detector, pixels, conf, DETECT_BATCH, tile, aerial, sizes)
        for (item, _), detections in zip(decoded, outputs, strict=True):
            item.detections = len(detections)
            problems = sorted(detector.problems(detections), key=lambda p: -float(p.score))
            item.problems = problems[:MAX_FINDINGS_PER_IMAGE]
    return results


def _decode(
    upload: Upload, detector: Detector, settings: Settings, least_size: LeastSize
) -> tuple[Analysed, LoadedImage | None]:
    """The upload's record and its pixels (as few as the detector needs, model/tiling.py's `decode_size`);
    no pixels when it cannot be used, and the record says why. The record holds the file's own size."""
    from model.images import ImageError, load_image

    if upload.error is not None:
        return Analysed(upload.name, error=upload.error), None
    try:
        loaded = load_image(upload.data, settings.max_pixels, settings.max_upload_bytes, least_size)
    except ImageError as exc:
        return Analysed(upload.name, error=FileError(file=upload.name, code="invalid_image", message=str(exc))), None
    except Exception as exc:  # a decoder bug must not fail the other files
        log.warning("image failed to load", extra={"file": upload.name, "error": repr(exc)})
        message = f"the image could not be read: {exc}"
        return Analysed(upload.name, error=FileError(file=upload.name, code="invalid_image", message=message)), None
    item = Analysed(
        upload.name,
        upload.data,
        sha256=loaded.sha256,
        width=int(loaded.width),
        height=int(loaded.height),
        gps=loaded.gps,
        captured_at=_aware(loaded.captured_at, settings.exif_timezone),
        model_version=str(detector.version),
        warnings=list(loaded.warnings),
    )
    return item, loaded


def stored_image(session: Session, images: ImageStore, item: Analysed) -> Image:
    """The image row of `item` (inserted, or the one already there), with its file on disk.

    The file is written after the row's insert holds the sha256, never before: from then on no
    clean-up can delete it (orphans.py), and a file a clean-up removed just before is written again.
    """
    image = store.add_image(session, _image_row(images, item))
    images.put(item.sha256, item.data)
    return image


def store_images(session: Session, images: ImageStore, analysed: list[Analysed]) -> None:
    """Insert the image rows of one upload first, in sha256 order.

    An insert holds its sha256 until the transaction ends. Two uploads holding the same new photos
    in opposite order would each insert one and then wait for the other's: a deadlock, which
    PostgreSQL resolves by failing one upload. In one global order the later upload waits at the
    first photo they share, holding none the earlier one still needs.
    """
    for item in sorted({i.sha256: i for i in analysed if i.ok}.values(), key=lambda i: i.sha256):
        stored_image(session, images, item)


def discard_unreferenced(state: AppState, shas: list[str]) -> None:
    """After a failed transaction: remove those of these image files no committed row references (orphans.py)."""
    orphans.discard_unreferenced(state, shas)


def stored_shas(analysed: list[Analysed]) -> list[str]:
    """The sha256 of each usable file: what a failed transaction may have left on disk."""
    return [item.sha256 for item in analysed if item.ok]


def _image_row(images: ImageStore, item: Analysed) -> Image:
    gps = item.gps or {}
    return Image(
        sha256=item.sha256,
        path=images.relative_path(item.sha256),
        bytes=len(item.data),
        width=item.width,
        height=item.height,
        lat=gps.get("lat"),
        lon=gps.get("lon"),
        alt=gps.get("alt"),
        captured_at=item.captured_at,
        created_at=utcnow(),
    )


def _problem_dict(problem: Problem) -> dict[str, Any]:
    x1, y1, x2, y2 = (float(v) for v in problem.box)
    return {
        "type": str(problem.type),
        "label": str(problem.label),
        "score": round(float(problem.score), 4),
        "box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
        "extent": problem.extent,
    }


def _finding_place(gps: dict[str, Any] | None, device: DevicePosition | None) -> dict[str, Any]:
    """A finding's position columns: the photo's GPS where it has one, else the device's, else none."""
    if gps:
        return {"lat": gps.get("lat"), "lon": gps.get("lon"), "alt": gps.get("alt"), "position_source": "photo"}
    if device is not None:
        return {
            "lat": device.lat,
            "lon": device.lon,
            "position_source": "device",
            "position_accuracy_m": device.accuracy_m,
        }
    return {}


def add_file_rows(
    session: Session,
    state: AppState,
    inspection_id: int,
    position: int,
    item: Analysed,
    actor: str,
    now: datetime,
    device: DevicePosition | None = None,
) -> list[Finding]:
    """Rows for one analysed file of an inspection: its image (once per sha256), file result, findings.

    `device` places the findings of a photo without EXIF GPS (the image row keeps only the photo's own).
    """
    if not item.ok:
        assert item.error is not None
        session.add(
            InspectionFile(
                inspection_id=inspection_id,
                position=position,
                filename=item.name,
                error_code=item.error.code,
                error_message=item.error.message,
            )
        )
        return []
    image = stored_image(session, state.images, item)
    session.add(
        InspectionFile(
            inspection_id=inspection_id,
            position=position,
            filename=item.name,
            image_id=image.id,
            model_version=item.model_version,
            detections=item.detections,
            warnings=item.warnings or None,
        )
    )
    place = _finding_place(item.gps, device)
    raised = []
    for problem in item.problems:
        x1, y1, x2, y2 = (float(v) for v in problem.box)
        finding = Finding(
            inspection_id=inspection_id,
            image_id=image.id,
            type=str(problem.type),
            label=str(problem.label),
            score=round(float(problem.score), 4),  # as shown, so min_score filters agree with what users see
            x1=x1,
            y1=y1,
            x2=x2,
            y2=y2,
            extent=problem.extent,
            **place,
            captured_at=item.captured_at,
            observed_at=item.captured_at or now,
            model_version=item.model_version,
            status=Status.candidate.value,
            created_at=now,
            updated_at=now,
        )
        finding.events.append(
            FindingEvent(
                from_status=None,
                to_status=Status.candidate.value,
                actor=actor,
                at=now,
                note=f"raised by detector {item.model_version}",
                model_version=item.model_version,
            )
        )
        session.add(finding)
        raised.append(finding)
    inspection = session.get(Inspection, inspection_id)
    assert inspection is not None
    recurrences.link(session, state.settings, inspection, raised)
    return raised


def announce_inspection(
    session: Session, state: AppState, inspection: Inspection, files: int, rejected: int, raised: list[Finding]
) -> None:
    """Queue the `inspection.created` webhook in the inspection's own transaction (the outbox)."""
    webhooks.enqueue(
        session,
        state.settings,
        "inspection.created",
        {
            "inspection_id": inspection.id,
            "region": inspection.region,
            "township": inspection.township,
            "village": inspection.village,
            "created_by": inspection.created_by,
            "files": files,
            "rejected": rejected,
            "findings": [
                {
                    "id": f.id,
                    "type": f.type,
                    "score": round(f.score, 4),
                    "image_id": f.image_id,
                    "recurrence_of": f.recurrence_of_id,
                }
                for f in raised
            ],
        },
    )


def persist_inspection(
    state: AppState, principal: Principal, meta: InspectionMeta, analysed: list[Analysed]
) -> tuple[int, bool]:
    """Store images and rows for one upload in one transaction; returns (inspection id, created).

    With a `client_id` another request committed first, returns that inspection's id and False
    (the idempotent replay), having written nothing.
    """
    raised: list[Finding] = []
    try:
        with transaction(state.sessions) as session:
            now = utcnow()
            inspection = meta.new_inspection(principal.name, now)
            session.add(inspection)
            session.flush()  # first: under SQLite a savepoint opening a transaction commits when released
            store_images(session, state.images, analysed)
            for position, item in enumerate(analysed):
                raised += add_file_rows(session, state, inspection.id, position, item, principal.name, now, meta.device)
            session.flush()
            inspection_id = inspection.id
            rejected = sum(not item.ok for item in analysed)
            announce_inspection(session, state, inspection, len(analysed), rejected, raised)
    except IntegrityError:
        discard_unreferenced(state, stored_shas(analysed))
        if meta.client_id is not None:
            with state.sessions() as session:
                existing = store.inspection_by_client_id(session, meta.client_id)
            if existing is not None:
                return existing.id, False
        raise
    except BaseException:
        discard_unreferenced(state, stored_shas(analysed))
        raise
    for finding in raised:  # counted only once committed
        state.metrics.detections.labels(finding.type).inc()
    return inspection_id, True


def transition(
    state: AppState,
    principal: Principal,
    finding_id: int,
    to: Status,
    note: str | None,
    followup: Analysed | None = None,
    deadline: date | None = None,
    deadline_days: int | None = None,
) -> None:
    """Move a finding to `to`, recording who, when and why; 404 unknown, 409 not allowed from here.

    An order of rectification sets the deadline (`deadline`, or `deadline_days` from today, or the
    type's default; 422 before today); a rectification records whether it came after it.
    """
    if (deadline is not None or deadline_days is not None) and to != Status.rectification_ordered:
        raise ApiError(422, "invalid_deadline", "a deadline is set only when ordering rectification")
    if deadline is not None and deadline_days is not None:
        raise ApiError(422, "invalid_deadline", "give either a deadline or days to rectify, not both")
    try:
        with transaction(state.sessions) as session:
            finding = store.get_finding(session, finding_id)
            if finding is None:
                raise ApiError(404, "not_found", f"no finding {finding_id}")
            current = Status(finding.status)
            if to not in TRANSITIONS[current]:
                allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (final state)"
                raise ApiError(
                    409,
                    "invalid_transition",
                    f"a finding cannot go from {current.value} to {to.value}; allowed from {current.value}: {allowed}",
                )
            now = utcnow()
            changes = deadlines.changes(state.settings, finding, to, now, deadline, deadline_days)
            if not store.compare_and_set_status(session, finding_id, current.value, to.value, **changes):
                raise ApiError(409, "concurrent_change", "the finding was changed by someone else; reload and retry")
            event = FindingEvent(
                finding_id=finding_id,
                from_status=current.value,
                to_status=to.value,
                actor=principal.name,
                note=note,
                at=now,
                deadline=changes.get("deadline"),
            )
            if followup is not None:
                image = stored_image(session, state.images, followup)
                event.image_id = image.id
                event.followup = [_problem_dict(p) for p in followup.problems]
                event.model_version = followup.model_version
            session.add(event)
            webhooks.enqueue(
                session,
                state.settings,
                "finding.transitioned",
                {
                    "finding_id": finding_id,
                    "type": finding.type,
                    "from": current.value,
                    "to": to.value,
                    "actor": principal.name,
                    "note": note,
                    "followup_image_id": event.image_id,
                    "deadline": event.deadline.isoformat() if event.deadline else None,
                    "late": changes.get("rectified_late"),
                },
            )
    except BaseException:
        discard_unreferenced(state, stored_shas([followup] if followup is not None else []))
        raise


JPEG_MAX_SIDE = 65_500
"""The longest side a JPEG can hold; a longer stored image (a drone strip) is drawn scaled down to it."""


class Drawn(NamedTuple):
    """One problem to draw on a photo: a box, (`extent` "photo") the whole photo, or ("approx") an approximate box."""

    type: str
    score: float
    box: tuple[float, float, float, float]
    extent: str = "box"


def annotate(data: bytes, boxes: list[Drawn], settings: Settings) -> bytes:
    """The image (EXIF orientation applied, as the boxes are) with `boxes` drawn, as JPEG bytes.

    A whole-photo problem is drawn as a frame just inside the photo's edge, its tag saying
    "whole photo", so nobody takes it for a box around an object; an approximate box (a type
    learned from photo labels, model/learned.py) has its tag say "approximate".
    """
    import cv2

    from model.images import load_image

    pixels = load_image(data, settings.max_pixels, max(settings.max_upload_bytes, len(data))).pixels
    scale = min(1.0, JPEG_MAX_SIDE / max(pixels.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        boxes = [d._replace(box=tuple(v * scale for v in d.box)) for d in boxes]
    else:
        pixels = pixels.copy()
    colours = {"burning": (0, 0, 255), "overflowing_garbage": (0, 165, 255), "exposed_garbage": (0, 255, 255)}
    thickness = max(2, round(max(pixels.shape[:2]) / 400))
    height, width = pixels.shape[:2]
    for label, score, (x1, y1, x2, y2), extent in boxes:
        colour = colours.get(label, (255, 255, 0))
        whole = extent == "photo"
        if whole:  # inset by half the line, so the whole frame shows; the tag sits inside, at the top
            inset = thickness // 2 + 1
            p1, p2 = (inset, inset), (width - 1 - inset, height - 1 - inset)
        else:
            p1, p2 = (round(x1), round(y1)), (round(x2), round(y2))
        cv2.rectangle(pixels, p1, p2, colour, thickness)
        text = f"{label} {score:.2f}" + (" (whole photo)" if whole else " (approximate)" if extent == "approx" else "")
        scale = thickness / 3
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thickness // 2))
        top = p1[1] + thickness if whole else max(p1[1] - th - base, 0)
        cv2.rectangle(pixels, (p1[0], top), (p1[0] + tw, top + th + base), colour, -1)
        cv2.putText(
            pixels,
            text,
            (p1[0], top + th),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (0, 0, 0),
            max(1, thickness // 2),
            cv2.LINE_AA,
        )
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return encoded.tobytes()
