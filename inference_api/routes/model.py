"""`/v1/model`: which detector is serving, its labels and shipped thresholds, and the problem taxonomy."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from inference_api.auth import Reader
from inference_api.deps import DetectorDep
from inference_api.errors import AUTH, responses
from model.taxonomy import PROBLEM_TYPES, problem_for_label

router = APIRouter(prefix="/v1", tags=["model"])


class LabelOut(BaseModel):
    key: str
    problem: str | None
    threshold: float | None
    tile_threshold: float | None = Field(
        default=None, description="Least score of a box found in a tile of a large aerial photo (docs/drone.md)."
    )


class ProblemTypeOut(BaseModel):
    key: str
    name_zh: str
    name_en: str
    detectable: bool


class ModelOut(BaseModel):
    version: str
    runtime: str = Field(
        description="The CPU runtime the model runs on: the one `ENVWATCH_RUNTIME` names, else the fastest that "
        "keeps the answers on this machine (model/networks.py)."
    )
    labels: list[LabelOut]
    problem_types: list[ProblemTypeOut]


@router.get("/model", response_model=ModelOut, responses=responses(*AUTH, 503))
def model_info(_: Reader, detector: DetectorDep) -> ModelOut:
    """What a client needs to interpret findings: model version, labels → problems, thresholds."""
    return ModelOut(
        version=str(detector.version),
        runtime=detector.network.runtime,
        labels=[
            LabelOut(
                key=name,
                problem=problem_for_label(name),
                threshold=detector.thresholds.get(name),
                tile_threshold=detector.tile_thresholds.get(name),
            )
            for name in detector.names
        ],
        problem_types=[ProblemTypeOut(**vars(p)) for p in PROBLEM_TYPES],
    )
