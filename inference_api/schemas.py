"""Pydantic request and response bodies of the public API (what OpenAPI documents).

Kept apart from the ORM models so that the wire format can stay stable while tables change.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from model.problems import Extent
from model.taxonomy import PROBLEM_TYPES
from model.tiling import TileMode


def _without_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL (SQLite can): refuse it at the edge, with the same 422 on both."""
    if "\x00" in value:
        raise ValueError("text must not contain the NUL character (\\x00)")
    return value


Text = Annotated[str, AfterValidator(_without_nul)]
"""A string from a client that will be stored: every free-text field, query and form value uses it."""


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


TILE_HELP = (
    "Tiled detection for drone frames: 'auto' (default) tiles an aerial photo (drone XMP or maker, GeoTIFF, or "
    "over 50 MP with no camera named in EXIF) that fitting to the model's input would shrink more than 4 times, "
    "never a ground photo; "
    "'on' tiles every photo larger than one tile, 'off' never tiles."
)

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
    name: Text = Field(min_length=1, max_length=100)
    role: Role


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    prefix: str = Field(
        description="First characters of a generated key, to recognise it; `(env)` for ENVWATCH_ADMIN_KEY's key. "
        "Keys themselves are not stored."
    )
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


class PositionSource(StrEnum):
    """Where a finding's position came from."""

    photo = "photo"  # the photo's EXIF GPS (or, for an imported drone scan, its computed ground position)
    device = "device"  # the uploading device's geolocation, used only when the photo has no GPS


class Position(Gps):
    """A finding's position and where it came from."""

    source: PositionSource
    accuracy_m: float | None = Field(
        default=None, description="Radius (metres) the device reported for a `device` position; null for photos."
    )


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
    label: str = Field(description="Detector label that raised the problem; the type itself for a whole-photo one.")
    score: float
    box: Box
    extent: Extent = Field(
        description="`box`: the detector located the problem in `box`; `photo`: the photo classifier saw it "
        "somewhere in the photo, and `box` is the whole photo (no place on it is claimed); `approx`: a type "
        "learned from photo labels, and `box` is an approximate location (where the evidence lies, not an outline)."
    )
    gps: Position | None
    captured_at: datetime | None
    observed_at: datetime
    model_version: str
    status: Status
    region: str | None
    township: str | None
    village: str | None
    created_at: datetime
    updated_at: datetime
    deadline: date | None = Field(
        default=None, description="整改时限: last day of the latest rectification order, in the offices' time zone."
    )
    overdue: bool = Field(default=False, description="Rectification ordered and its deadline passed (overdue_at).")
    overdue_at: datetime | None = Field(default=None, description="When the current order was found overdue.")
    rectified_late: bool | None = Field(
        default=None, description="The latest rectification came after its deadline; null without one."
    )
    recurrence_of: int | None = Field(
        default=None, description="反弹: the recently closed finding of this type and place this one recurs after."
    )


class FollowupProblem(BaseModel):
    type: str
    label: str
    score: float
    box: Box
    extent: Extent = "box"


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
    deadline: date | None = Field(default=None, description="The deadline this order set (rectification_ordered).")


class FindingDetail(FindingOut):
    history: list[FindingEventOut]


class FindingPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[FindingOut]


class Transition(BaseModel):
    to: Status = Field(description="Target status.")
    note: Text | None = Field(default=None, max_length=4000)
    deadline: date | None = Field(
        default=None,
        description="With to=rectification_ordered: the last day to rectify (YYYY-MM-DD, not before today).",
    )
    deadline_days: int | None = Field(
        default=None,
        ge=0,
        le=365,
        description="With to=rectification_ordered: days from today instead; neither: the type's default.",
    )


class SummaryRegion(BaseModel):
    region: str | None
    total: int
    by_type: dict[str, int]
    by_status: dict[str, int]
    by_type_status: dict[str, dict[str, int]]
    rectified: int = Field(default=0, description="Findings whose rectification stands (status rectified or closed).")
    median_days_to_rectified: float | None = Field(
        default=None, description="Median days from raised (created) to the latest move into rectified; null if none."
    )
    overdue: int = Field(default=0, description="Open rectification orders past their deadline.")
    rectified_late: int = Field(default=0, description="Rectified (or closed) after their deadline.")


class Summary(BaseModel):
    total: int
    regions: list[SummaryRegion]
    rectified: int = Field(default=0, description="Rectified findings over all regions.")
    median_days_to_rectified: float | None = Field(default=None, description="Median over all regions.")
    overdue: int = Field(default=0, description="Overdue over all regions.")
    rectified_late: int = Field(default=0, description="Rectified late over all regions.")


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
    storage: bool | None = Field(default=None, description="The image store is writable with enough free space.")
    free_bytes: int | None = Field(default=None, description="Free space for the image store.")
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
    folder: Text = Field(description="Folder on the server, inside ENVWATCH_JOBS_ROOT; images found recursively.")
    inspector: Text | None = Field(default=None, max_length=200)
    region: Text | None = Field(default=None, max_length=200)
    township: Text | None = Field(default=None, max_length=200)
    village: Text | None = Field(default=None, max_length=200)
    note: Text | None = Field(default=None, max_length=4000)
    conf: float | None = Field(default=None, ge=0.0001, le=1.0)
    tile: TileMode = Field(default="auto", description=TILE_HELP)


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
    tile: TileMode = Field(description=TILE_HELP)
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


# ---------------------------------------------------------------- labels from reviews


class LabelSource(StrEnum):
    manual = "manual"
    correction = "correction"
    label_studio = "label_studio"


class LabelBox(BaseModel):
    """A box in pixels of the upright stored photo (as finding boxes are); checked against its size."""

    x1: float = Field(ge=0, allow_inf_nan=False)
    y1: float = Field(ge=0, allow_inf_nan=False)
    x2: float = Field(ge=0, allow_inf_nan=False)
    y2: float = Field(ge=0, allow_inf_nan=False)


class LabelCreate(BaseModel):
    image_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="A stored photo to draw a box on (a manual label)."
    )
    finding_id: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="A finding whose box or type this fixes (a correction); its photo is the label's photo.",
    )
    type: ProblemTypeKey | None = Field(  # type: ignore[valid-type]
        default=None, description="Problem type; required for a manual label, a correction defaults to the finding's."
    )
    label: Text | None = Field(
        default=None,
        max_length=50,
        description="Detector label to train (e.g. smoke for burning); default: the type's first, or the type itself.",
    )
    box: LabelBox | None = Field(
        default=None, description="Required for a manual label; a correction defaults to the finding's box."
    )
    note: Text | None = Field(default=None, max_length=4000)


class LabelUpdate(BaseModel):
    type: ProblemTypeKey | None = None  # type: ignore[valid-type]
    label: Text | None = Field(default=None, max_length=50)
    box: LabelBox | None = None
    note: Text | None = Field(default=None, max_length=4000)


class LabelOut(BaseModel):
    id: int
    image_id: int
    finding_id: int | None = Field(description="The finding this label corrects, for a correction.")
    type: str
    label: str
    box: Box
    source: LabelSource
    proposed_by: str | None = Field(description="Model version whose finding this corrects; null when drawn anew.")
    note: str | None
    created_by: str
    created_at: datetime
    updated_by: str | None
    updated_at: datetime | None
    deleted_by: str | None = Field(description="Set once the label is deleted; lists and exports leave it out.")
    deleted_at: datetime | None


class LabelPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[LabelOut]


class LabelTypeCount(BaseModel):
    type: str
    name_zh: str
    name_en: str
    positives: int = Field(description="Boxes that train the type: confirmed findings, corrections, drawn boxes.")
    hard_negatives: int = Field(description="Dismissed findings of the type: the model's recorded false positives.")
    images: int = Field(description="Photos with at least one of either.")


class LabelSummary(BaseModel):
    reviewed_images: int = Field(description="Photos that an export would contain.")
    types: list[LabelTypeCount]


class ImportSkip(BaseModel):
    task: str = Field(description="Label Studio task id, with /result id when one box was skipped.")
    reason: str


class LabelImport(BaseModel):
    tasks: int
    created: int = Field(description="New labels (boxes drawn in Label Studio, or first corrections of findings).")
    updated: int = Field(description="Labels whose box or type was changed in Label Studio.")
    unchanged: int = Field(description="Boxes already stored as they are (within rounding), or imported before.")
    skipped: list[ImportSkip]


# ---------------------------------------------------------------- model registry


class ModelVersionOut(BaseModel):
    version: str
    added_at: str
    promoted: bool = Field(description="The version the registry says to serve.")
    summary: dict[str, Any] = Field(description="Labels, reviewed images used, test mAP50 (see its model card).")


class ModelsOut(BaseModel):
    serving: str | None = Field(description="Version of the detector answering requests now; null while none is.")
    pinned: bool = Field(description="ENVWATCH_MODEL_PATH pins one file: promotions are not followed.")
    promoted: str | None
    error: str | None = Field(description="Why the last (re)load failed; the previous detector kept serving.")
    versions: list[ModelVersionOut]


class PromoteIn(BaseModel):
    version: str = Field(max_length=64, description="A registered version (see GET /v1/models).")


class LearnIn(BaseModel):
    version: str | None = Field(
        default=None, max_length=64, description="Name of the new version; default `<promoted>-learned-<UTC time>`."
    )


class LearnedTypeOut(BaseModel):
    type: str
    positives: int = Field(description="Labelled photos showing the type.")
    negatives: int = Field(description="Labelled photos not showing it.")
    threshold: float = Field(description="Score from which the type is raised, chosen by cross-validation.")
    cv_recall: float = Field(description="Out-of-fold share of the positives flagged at the threshold.")
    cv_false_alarms: float = Field(description="Out-of-fold share of the negatives flagged at the threshold.")
    cv_flagged_positives: int
    cv_flagged_negatives: int


class LearnOut(BaseModel):
    version: str = Field(description="The new version: registered, not promoted.")
    base: str = Field(description="The promoted version it adds heads to (detector and backbone unchanged).")
    backbone: str = Field(description="Identity of the backbone the features came from.")
    learned_by: str
    learned_at: str
    types: list[LearnedTypeOut]
    skipped: dict[str, str] = Field(description="Types with labels that were not learned, and why.")
    method: str


# ---------------------------------------------------------------- photo labels


class PhotoLabelCreate(BaseModel):
    image_id: int = Field(ge=1, le=2**31 - 1)
    type: ProblemTypeKey  # type: ignore[valid-type]
    shows: bool = Field(description="true: the photo shows the type; false: it does not.")
    note: str | None = Field(default=None, max_length=2000)


class PhotoLabelOut(BaseModel):
    id: int
    image_id: int
    type: str
    shows: bool
    shown_model: str | None = Field(description="Model version whose results the photo carried when labelled.")
    note: str | None
    created_by: str
    created_at: datetime
    deleted_by: str | None
    deleted_at: datetime | None


class PhotoLabelPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[PhotoLabelOut]


class UncertainPhoto(BaseModel):
    image_id: int
    score: float = Field(description="The provisional head's score: 0.5 is where it cannot tell.")


class UncertainPage(BaseModel):
    type: str
    positives: int = Field(description="Labelled photos showing the type, that the provisional head learned from.")
    negatives: int
    considered: int = Field(description="Unlabelled stored photos scored (the most recent ones).")
    items: list[UncertainPhoto] = Field(description="Most uncertain first.")


# ---------------------------------------------------------------- bulletins (通报)


class BulletinTownship(BaseModel):
    township: str | None = Field(description="Township name; null for inspections that named none.")
    total: int
    by_type: dict[str, int]


class BulletinPhoto(BaseModel):
    finding_id: int
    image_id: int
    type: str
    score: float
    box: Box
    extent: Extent = Field(
        description="As a finding's: `photo` when the box is the whole photo, `approx` when it is approximate."
    )
    township: str | None
    village: str | None
    observed_at: datetime


class BulletinItem(BaseModel):
    """A finding a section names: overdue, rectified late, or recurring."""

    finding_id: int
    type: str
    township: str | None
    village: str | None
    deadline: date | None
    at: datetime | None = Field(description="Rectified at (late), observed at (recurrence); null for overdue.")
    recurrence_of: int | None = None


class BulletinRank(BaseModel):
    township: str
    rank: int = Field(description="1 is best; equal scores share a rank (1, 2, 2, 4).")
    previous_rank: int | None = Field(description="Rank in the previous period; null if not ranked then.")
    change: int | None = Field(description="Places moved up since the previous period (negative: down).")
    score: float
    problems: int = Field(description="New problems (reviewed, not dismissed) observed in the period.")
    villages: int = Field(description="Villages of the township named by inspections up to the period's end.")
    problems_per_village: float
    on_time: int
    late: int
    overdue: int
    on_time_rate: float = Field(description="on_time / (on_time + late + overdue); 1 when all three are 0.")
    recurrences: int


class Bulletin(BaseModel):
    period: str = Field(description="ISO week (2026-W48) or month (2026-11).")
    first_day: date
    last_day: date
    timezone: str
    region: str
    township: str | None = Field(description="The township this bulletin is about; null: the whole county.")
    made_at: datetime
    as_of: datetime = Field(description="Deadlines and rectifications are counted up to this moment.")
    empty: bool = Field(description="No finding was observed, rectified or overdue here in the period.")
    new_total: int
    new_by_type: dict[str, int]
    new_by_township: list[BulletinTownship]
    awaiting_review: int = Field(description="Candidates of the period not reviewed yet (not counted as problems).")
    photos: list[BulletinPhoto]
    rectified_on_time: int
    rectified_late: int
    still_overdue: int
    late: list[BulletinItem]
    overdue: list[BulletinItem]
    recurrences: list[BulletinItem]
    weights: dict[str, float]
    ranking: list[BulletinRank]
