"""SQLAlchemy ORM tables of the inspection service.

Mirrors the inspectors' ledger: an `Inspection` (one visit) uploads `InspectionFile`s, each
pointing at a content-addressed `Image` (stored once however often it is uploaded) or carrying
the reason it was rejected; the detector raises `Finding`s, each with a review `status` and a
`FindingEvent` per transition so the history is never overwritten. Only plain column types are
used (no database enums) so SQLite and PostgreSQL share one migration.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from inference_api import clock


def utcnow() -> datetime:
    """The service clock's time (inference_api/clock.py), so every stamp follows one clock."""
    return clock.now()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset, so we re-attach it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(200))
    bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    alt: Mapped[float | None] = mapped_column(Float, nullable=True)
    captured_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Inspection(Base):
    __tablename__ = "inspections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    inspector: Mapped[str | None] = mapped_column(String(200), nullable=True)
    region: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    township: Mapped[str | None] = mapped_column(String(200), nullable=True)
    village: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    files: Mapped[list[InspectionFile]] = relationship(
        back_populates="inspection", order_by="InspectionFile.position", cascade="all, delete-orphan"
    )
    findings: Mapped[list[Finding]] = relationship(
        back_populates="inspection", order_by="Finding.id", cascade="all, delete-orphan"
    )


class InspectionFile(Base):
    """One uploaded file of an inspection: either a stored image with its detector run, or an error."""

    __tablename__ = "inspection_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(300))
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    detections: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(50), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    warnings: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    """What was ignored while reading the file (e.g. broken EXIF GPS); the image itself was usable."""

    inspection: Mapped[Inspection] = relationship(back_populates="files")
    image: Mapped[Image | None] = relationship()


class Finding(Base):
    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_status_type", "status", "type"),
        Index("ix_findings_observed_at", "observed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    type: Mapped[str] = mapped_column(String(50))
    label: Mapped[str] = mapped_column(String(50))
    score: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    extent: Mapped[str] = mapped_column(String(10), default="box", server_default="box")
    """`box`: the detector located it; `photo`: the photo classifier saw it, and the box is the whole photo."""
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    alt: Mapped[float | None] = mapped_column(Float, nullable=True)
    position_source: Mapped[str | None] = mapped_column(String(10), nullable=True)
    """Where lat/lon came from: `photo` (its EXIF GPS, or a drone scan's ground position) or `device`
    (the uploading browser's geolocation, used only when the photo has no GPS); None without a position."""
    position_accuracy_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    """The device's reported accuracy radius (metres) for a `device` position; EXIF states none."""
    captured_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """Capture time from EXIF when known, else the upload time: what date filters use."""
    model_version: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(30), default="candidate")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deadline: Mapped[date | None] = mapped_column(Date, nullable=True)
    """整改时限: the last day (in the offices' time zone) of the latest rectification order."""
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    """When the deadline of the current order was found passed (and `finding.overdue` queued); once per order."""
    rectified_late: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    """Whether the latest rectification came after its deadline; None until rectified under a deadline."""
    recurrence_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("findings.id", ondelete="SET NULL"), nullable=True, index=True
    )
    """反弹: the closed finding of the same type and place this one came back after."""

    inspection: Mapped[Inspection] = relationship(back_populates="findings")
    image: Mapped[Image] = relationship()
    events: Mapped[list[FindingEvent]] = relationship(
        back_populates="finding", order_by="FindingEvent.id", cascade="all, delete-orphan"
    )


class FindingEvent(Base):
    """One review transition; append-only, so the ledger's history can be audited."""

    __tablename__ = "finding_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(30), nullable=True)
    to_status: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id"), nullable=True)
    followup: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    """Problems the detector raised on the follow-up photo (empty list: none found)."""
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    deadline: Mapped[date | None] = mapped_column(Date, nullable=True)
    """The deadline a move into rectification_ordered set; kept per order, so a bulletin can replay them."""

    finding: Mapped[Finding] = relationship(back_populates="events")


class Label(Base):
    """A box an inspector drew or fixed: training data beside the review statuses of findings.

    `source` says how it came: `manual` (drawn on a stored photo, any taxonomy type), `correction`
    (the fixed box or type of finding `finding_id`; at most one live per finding), `label_studio`
    (imported). Edits keep who and when; a deletion is a mark (`deleted_at`), never a lost row.
    """

    __tablename__ = "labels"
    __table_args__ = (
        Index(
            "uq_labels_live_correction",
            "finding_id",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    finding_id: Mapped[int | None] = mapped_column(ForeignKey("findings.id", ondelete="CASCADE"), nullable=True)
    type: Mapped[str] = mapped_column(String(50))
    label: Mapped[str] = mapped_column(String(50))
    """The detector label the box trains (see model.taxonomy.default_label_for)."""
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(20))
    proposed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    """Model version whose finding this box corrects; None for boxes drawn from scratch."""
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    """Identity in the tool it was imported from, so importing the same file twice adds nothing."""
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    """Bumped by every change; an UPDATE matches only the version it read (optimistic locking), so two edits
    at once cannot each pass their type/label check and combine into a pair neither would allow."""

    image: Mapped[Image] = relationship()
    finding: Mapped[Finding | None] = relationship()

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy's declarative hook)


class PhotoLabel(Base):
    """An inspector's word that a stored photo shows (`shows`) or does not show a problem type, with no box.

    What new types are learned from (training/learn.py), beside box labels and reviewed findings.
    `shown_model` is the model version whose results the photo carried when labelled (its latest
    scoring), as `Label.proposed_by` records for corrections. Deleting marks the row.
    """

    __tablename__ = "photo_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    type: Mapped[str] = mapped_column(String(50), index=True)
    shows: Mapped[bool] = mapped_column(Boolean)
    shown_model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Job(Base):
    """A batch scoring job over a server folder or an uploaded zip; its results form one inspection."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), index=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"))
    conf: Mapped[float | None] = mapped_column(Float, nullable=True)
    tile: Mapped[str] = mapped_column(String(8), default="off", server_default="off")
    """model/tiling.py's mode, kept so that a job resumed after a restart tiles as it began."""
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class JobItem(Base):
    """One file of a job; `status` moves pending → done exactly once, in the transaction storing its results."""

    __tablename__ = "job_items"
    __table_args__ = (Index("ix_job_items_job_status", "job_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookDelivery(Base):
    """Transactional outbox: written with the change it announces, delivered (and retried) afterwards.

    Writing the event in the same transaction as the inspection or transition means an event is
    never announced for a change that rolled back, and never lost if the process dies before sending.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_pending", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(36), unique=True)
    event: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


__all__ = [
    "ApiKey",
    "Base",
    "Finding",
    "FindingEvent",
    "Image",
    "Inspection",
    "InspectionFile",
    "Job",
    "JobItem",
    "Label",
    "PhotoLabel",
    "WebhookDelivery",
    "utcnow",
]
