"""`/v1/jobs`: batch scoring of a server folder (admin) or an uploaded zip, with progress and cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from sqlalchemy import select

from inference_api import jobs, services
from inference_api.auth import Admin, Reader, Writer
from inference_api.deps import IdPath, Offset, SessionDep, StateDep, require_storage
from inference_api.errors import AUTH, ApiError, responses
from inference_api.models import Job
from inference_api.schemas import TILE_HELP, FolderJobCreate, JobOut, Text
from model.images import path_text
from model.tiling import TileMode

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _job(session: SessionDep, job_id: int) -> JobOut:
    job = session.get(Job, job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return JobOut.model_validate(job)


@router.post("", status_code=201, response_model=JobOut, responses=responses(*AUTH, 422, 429, 507))
def create_folder_job(body: FolderJobCreate, state: StateDep, session: SessionDep, principal: Admin) -> JobOut:
    """Score every image under a server folder; only inside `ENVWATCH_JOBS_ROOT`, and only for admins."""
    root = state.settings.jobs_root
    if root is None:
        raise ApiError(422, "folder_jobs_disabled", "folder jobs are off: set ENVWATCH_JOBS_ROOT")
    folder = (root / body.folder).resolve()  # an absolute `folder` replaces the root here
    if not folder.is_relative_to(root.resolve()):
        raise ApiError(422, "outside_jobs_root", f"{body.folder} is not inside the jobs root")
    try:
        is_folder = folder.is_dir()
    except OSError as exc:  # a name too long for the file system, say
        raise ApiError(422, "not_a_folder", f"{body.folder} cannot be opened: {exc.strerror or exc}") from None
    if not is_folder:
        raise ApiError(422, "not_a_folder", f"{body.folder} is not a folder")
    require_storage(state)
    meta = services.InspectionMeta(body.inspector, body.region, body.township, body.village, body.note)
    source = path_text(folder.relative_to(root.resolve()))  # readers need not learn the server's layout
    job_id = jobs.create_job(
        state, principal, "folder", source, jobs.folder_files(folder, root), meta, body.conf, body.tile
    )
    return _job(session, job_id)


@router.post("/zip", status_code=201, response_model=JobOut, responses=responses(*AUTH, 413, 422, 429, 507))
def create_zip_job(
    state: StateDep,
    session: SessionDep,
    principal: Writer,
    archive: Annotated[UploadFile, File(description="A zip of photos (folders inside are fine).")],
    inspector: Annotated[Text | None, Form(max_length=200)] = None,
    region: Annotated[Text | None, Form(max_length=200)] = None,
    township: Annotated[Text | None, Form(max_length=200)] = None,
    village: Annotated[Text | None, Form(max_length=200)] = None,
    note: Annotated[Text | None, Form(max_length=4000)] = None,
    conf: Annotated[float | None, Form(ge=0.0001, le=1.0)] = None,
    tile: Annotated[TileMode, Form(description=TILE_HELP)] = "auto",
) -> JobOut:
    """Extract the zip safely (traversal, links and zip bombs refused) and score its images in the background."""
    require_storage(state)  # the zip is extracted beside the image store
    meta = services.InspectionMeta(inspector, region, township, village, note)
    name = services.clean_filename(archive.filename or "upload.zip")
    job_id = jobs.create_zip_job(state, principal, archive.file, name, meta, conf, tile)
    return _job(session, job_id)


@router.get("", response_model=list[JobOut], responses=responses(*AUTH, 422))
def list_jobs(
    session: SessionDep,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> list[JobOut]:
    rows = session.scalars(select(Job).order_by(Job.id.desc()).limit(limit).offset(offset)).all()
    return [JobOut.model_validate(r) for r in rows]


@router.get("/{job_id}", response_model=JobOut, responses=responses(*AUTH, 404, 422))
def get_job(job_id: IdPath, session: SessionDep, _: Reader) -> JobOut:
    """Progress: `processed` of `total`, `failed`, and `status` (queued, running, done, cancelled)."""
    return _job(session, job_id)


@router.post("/{job_id}/cancel", response_model=JobOut, responses=responses(*AUTH, 404, 409, 422))
def cancel_job(job_id: IdPath, state: StateDep, session: SessionDep, principal: Writer) -> JobOut:
    """Stop before the next file; what was scored stays. Only an admin or the job's starter may (else 403).

    A finished job is 409.
    """
    jobs.cancel(state, principal, job_id)
    return _job(session, job_id)
