"""Pydantic request and response bodies of the public API (what OpenAPI documents).

Kept apart from the ORM models so that the wire format can stay stable while tables change.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from model.taxonomy import PROBLEM_TYPES


class Role(StrEnum):
    admin = "admin"
    inspector = "inspector"
    integration = "integration"


class Status(StrEnum):
    candidate = "candidate"
    confirmed = "confirmed"
    dismissed = "dismissed"
    rectification_ordered = "rectification_ordered"
    rectified = "rectified"
    closed = "closed"


ProblemTypeKey = StrEnum("ProblemTypeKey", {p.key: p.key for p in PROBLEM_TYPES})  # type: ignore[misc]
"""Problem type keys of model.taxonomy, as an enum so OpenAPI lists them."""


# ---------------------------------------------------------------- errors


class FileError(BaseModel):
    file: str = Field(description="The uploaded file's name as the client sent it.")
    code: str = Field(description="Machine-readable reason, e.g. not_an_image, empty, too_large, too_many_pixels.")
    message: str = Field(description="Human-readable reason.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable error code.")
    message: str = Field(description="Human-readable explanation.")
    file: str | None = Field(default=None, description="The file the error is about, when there is one.")
    files: list[FileError] | None = Field(default=None, description="Per-file reasons, when every file was rejected.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


# ---------------------------------------------------------------- keys


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Role


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    prefix: str = Field(description="First characters of the key, to recognise it; the key itself is not stored.")
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret; shown once, only in this response.")


class Me(BaseModel):
    name: str
    role: Role


# ---------------------------------------------------------------- images, findings


class Gps(BaseModel):
    lat: float
    lon: float
    alt: float | None = None


class ImageOut(BaseModel):
    id: int
    sha256: str
    width: int
    height: int
    bytes: int
    gps: Gps | None
    captured_at: datetime | None


class Box(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float


class FindingOut(BaseModel):
    id: int
    inspection_id: int
    image_id: int
    type: str = Field(description="Problem type key from model.taxonomy.PROBLEM_TYPES.")
    label: str = Field(description="Detector label that raised the problem.")
    score: float
    box: Box
    gps: Gps | None
    captured_at: datetime | None
    observed_at: datetime
    model_version: str
    status: Status
    region: str | None
    township: str | None
    village: str | None
    created_at: datetime
    updated_at: datetime


class FollowupProblem(BaseModel):
    type: str
    label: str
    score: float
    box: Box


class FindingEventOut(BaseModel):
    id: int
    from_status: Status | None
    to_status: Status
    actor: str
    note: str | None
    at: datetime
    image_id: int | None = Field(default=None, description="Follow-up photo attached to this transition.")
    followup_problems: list[FollowupProblem] | None = Field(
        default=None, description="Problems the detector still raised on the follow-up photo."
    )
    model_version: str | None = None


class FindingDetail(FindingOut):
    history: list[FindingEventOut]


class FindingPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[FindingOut]


class Transition(BaseModel):
    to: Status = Field(description="Target status.")
    note: str | None = Field(default=None, max_length=4000)


class SummaryRegion(BaseModel):
    region: str | None
    total: int
    by_type: dict[str, int]
    by_status: dict[str, int]
    by_type_status: dict[str, dict[str, int]]


class Summary(BaseModel):
    total: int
    regions: list[SummaryRegion]


# ---------------------------------------------------------------- inspections


class FileResult(BaseModel):
    file: str
    ok: bool
    image: ImageOut | None = None
    model_version: str | None = None
    detections: int | None = Field(default=None, description="Boxes the detector kept (context labels included).")
    findings: list[int] = Field(default_factory=list, description="Ids of the findings raised on this image.")
    warnings: list[str] = Field(default_factory=list, description="What was ignored, e.g. unreadable EXIF GPS.")
    error: FileError | None = None


class InspectionOut(BaseModel):
    id: int
    client_id: str | None
    inspector: str | None
    region: str | None
    township: str | None
    village: str | None
    note: str | None
    created_by: str
    created_at: datetime
    files: list[FileResult]
    findings: list[FindingOut]


class Health(BaseModel):
    status: str
    model_loaded: bool | None = None
    database: bool | None = None
    model_version: str | None = None
    detail: str | None = None


class InspectionPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[InspectionOut]


# ---------------------------------------------------------------- batch jobs


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    cancelled = "cancelled"


class FolderJobCreate(BaseModel):
    folder: str = Field(description="Folder on the server, inside ENVWATCH_JOBS_ROOT; images found recursively.")
    inspector: str | None = Field(default=None, max_length=200)
    region: str | None = Field(default=None, max_length=200)
    township: str | None = Field(default=None, max_length=200)
    village: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=4000)
    conf: float | None = Field(default=None, ge=0.0001, le=1.0)


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    source: str
    status: JobStatus
    inspection_id: int = Field(description="The inspection collecting this job's results (GET /v1/inspections/{id}).")
    total: int
    processed: int = Field(description="Files done so far, failed ones included.")
    failed: int
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
