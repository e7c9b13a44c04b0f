"""Every knob of the inspection service, in one pydantic-settings class.

One class (rather than settings scattered over modules) so that `ENVWATCH_*` environment
variables are the single, documented way to configure a deployment, and tests can start a
server with nothing but environment variables.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RANKING_WEIGHTS = {"on_time_rate": 60.0, "problems_per_village": 10.0, "overdue": 5.0, "recurrences": 10.0}
"""The township score's factors and their default weights (the formula is in inference_api/bulletin.py)."""

MODEL_DIR = Path(__file__).resolve().parents[1] / "model"
"""The package's model folder: the shipped model, and the default model registry (model/registry.py)."""


class Settings(BaseSettings):
    """Service configuration; each field reads `ENVWATCH_<FIELD NAME>` from the environment."""

    model_config = SettingsConfigDict(env_prefix="ENVWATCH_", env_file=None, extra="ignore")

    database_url: str = Field(
        default="sqlite:///./var/envwatch.db",
        description="SQLAlchemy URL; SQLite for the embedded default, postgresql+psycopg://... in production.",
    )
    data_dir: Path = Field(default=Path("./var/images"), description="Where uploaded images are kept by sha256.")
    min_free_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=0,
        description="Free space the image store must keep; below it uploads get 507 and /readyz 503.",
    )
    orphan_grace_s: float = Field(
        default=600.0, gt=0, description="Age after which an image file no row references (a crash's) is removed."
    )
    orphan_sweep_s: float = Field(default=3600.0, gt=0, description="How often the image store is swept for those.")
    model_path: Path | None = Field(
        default=None,
        description="Pin this ONNX detector; unset: serve the registry's promoted version, reloaded when it changes.",
    )
    model_registry: Path = Field(default=MODEL_DIR, description="Folder of the model registry (registry.json).")
    model_poll_s: float = Field(default=2.0, gt=0, description="How often the registry is checked for a promotion.")

    max_upload_bytes: int = Field(default=25 * 1024 * 1024, gt=0, description="Largest accepted single file.")
    max_request_bytes: int = Field(
        default=200 * 1024 * 1024, gt=0, description="Largest accepted request body (Content-Length); 413 above it."
    )
    max_files: int = Field(default=32, gt=0, description="Most files in one inspection upload.")
    max_pixels: int = Field(
        default=60_000_000, gt=0, description="Largest accepted image area; guards against decompression bombs."
    )

    detect_workers: int = Field(
        default=2,
        gt=0,
        description="Detections run at the same time (threads). Two keep both stages busy: one photo is decoded, "
        "checked or drawn (single-threaded) while another is in the networks.",
    )
    detect_queue: int = Field(default=8, ge=0, description="Detections allowed to wait; beyond that 503.")
    retry_after_s: int = Field(default=5, gt=0, description="Retry-After sent with 503 when overloaded.")

    admin_key: SecretStr | None = Field(
        default=None, description="Bootstrap admin API key; stored hashed under the name 'bootstrap-admin'."
    )
    create_local_admin: bool = Field(
        default=True,
        description="With no admin key configured and none in the database, create one on first start and log it.",
    )

    jobs_root: Path | None = Field(
        default=None,
        description="Server folder under which batch jobs may read folders (admin only); unset: folder jobs off.",
    )
    max_zip_entries: int = Field(default=10_000, gt=0, description="Most files in an uploaded zip.")
    max_zip_uncompressed_bytes: int = Field(
        default=4 * 1024**3, gt=0, description="Most bytes a zip may expand to (zip bombs are refused)."
    )
    max_zip_ratio: float = Field(default=100.0, gt=1, description="Largest compression ratio of one zip entry.")
    max_active_jobs: int = Field(
        default=4, gt=0, description="Batch jobs one API key may have queued or running; more get 429."
    )

    webhook_url: str | None = Field(
        default=None, description="POSTed an HMAC-signed JSON event on new inspections and review transitions."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key for the X-Envwatch-Signature header of webhook deliveries."
    )
    webhook_max_attempts: int = Field(
        default=8, gt=0, description="Attempts after which an event the receiver refuses (3xx/4xx) is given up."
    )
    webhook_backoff_s: float = Field(
        default=2.0, gt=0, description="First retry delay; doubles per attempt, capped at 10 minutes."
    )
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one delivery attempt.")
    webhook_concurrency: int = Field(default=4, gt=0, description="Deliveries in flight at once.")

    exif_timezone: str = Field(
        default="Asia/Shanghai",
        description="Time zone of EXIF capture times, which cameras record without one.",
    )

    timezone: str = Field(
        default="Asia/Shanghai",
        description="The offices' time zone: the day a deadline ends, ISO weeks of bulletins, times on them.",
    )
    deadline_days: dict[str, int] = Field(
        default={"burning": 1, "overflowing_garbage": 3, "exposed_garbage": 7},
        description="Days to rectify, per problem type, when an order gives neither a deadline nor days.",
    )
    deadline_days_default: int = Field(default=7, ge=0, le=365, description="Days to rectify other problem types.")
    overdue_poll_s: float = Field(default=60.0, gt=0, description="How often passed deadlines are looked for.")
    recurrence_distance_m: float = Field(
        default=50.0, ge=0, description="A new finding this close (GPS) to a recently closed one of its type recurs."
    )
    recurrence_days: int = Field(
        default=30,
        ge=0,
        le=3650,
        description="How long after closing a finding a new one at its place is a recurrence.",
    )
    ranking_weights: dict[str, float] = Field(
        default=RANKING_WEIGHTS,
        description="Weights of the township score in bulletins (inference_api/bulletin.py documents the formula); "
        "factors left out keep their default weight.",
    )
    bulletin_photos: int = Field(default=6, ge=0, le=50, description="Most confident photos shown in a bulletin.")

    log_level: str = Field(default="INFO", description="Level of the JSON logs written to stderr.")

    @field_validator("timezone", "exif_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; an IANA name such as Asia/Shanghai") from None
        return value

    @field_validator("ranking_weights")
    @classmethod
    def _known_factors(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(RANKING_WEIGHTS))
        if unknown:
            raise ValueError(f"unknown ranking factors {unknown}; known: {sorted(RANKING_WEIGHTS)}")
        return {**RANKING_WEIGHTS, **value}

    @field_validator("deadline_days")
    @classmethod
    def _days_in_range(cls, value: dict[str, int]) -> dict[str, int]:
        from model.taxonomy import PROBLEMS_BY_KEY

        unknown = sorted(set(value) - set(PROBLEMS_BY_KEY))
        if unknown:
            raise ValueError(f"unknown problem types {unknown}")
        wrong = sorted(key for key, days in value.items() if not 0 <= days <= 365)
        if wrong:
            raise ValueError(f"deadline days must be 0 to 365: {wrong}")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
