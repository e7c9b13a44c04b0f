"""Findings as files for GIS and spreadsheets: `/v1/findings.geojson`, `/v1/findings.csv` and `.xlsx`."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response

from inference_api import presenters, store, workbook
from inference_api.auth import Reader
from inference_api.deps import SessionDep, StateDep
from inference_api.errors import AUTH, responses
from inference_api.routes.findings import FilterDep, FindingSort, SortQuery
from inference_api.spreadsheet import safe_record

router = APIRouter(prefix="/v1", tags=["exports"])

MAX_EXPORT = 100_000
"""Rows per export; more are cut (the `X-Total-Count` header says how many matched)."""

CSV_COLUMNS = [
    "id",
    "inspection_id",
    "image_id",
    "type",
    "label",
    "score",
    "extent",
    "status",
    "x1",
    "y1",
    "x2",
    "y2",
    "lat",
    "lon",
    "alt",
    "position_source",
    "position_accuracy_m",
    "captured_at",
    "observed_at",
    "region",
    "township",
    "village",
    "model_version",
    "created_at",
    "updated_at",
]


def _position_columns(gps: dict[str, Any] | None) -> dict[str, Any]:
    """Where a finding's position came from, as flat export fields (`position_source`, `position_accuracy_m`)."""
    gps = gps or {}
    return {"position_source": gps.get("source"), "position_accuracy_m": gps.get("accuracy_m")}


@router.get(
    "/findings.geojson",
    responses={
        200: {"content": {"application/geo+json": {}}, "description": "FeatureCollection of Points"},
        **responses(*AUTH, 422),
    },
)
def findings_geojson(
    session: SessionDep, _: Reader, where: FilterDep, limit: Annotated[int, Query(ge=1, le=MAX_EXPORT)] = MAX_EXPORT
) -> Response:
    """Findings with a position as GeoJSON Points ([lon, lat, alt?]), saying where it came from; others left out."""
    geo = store.FindingFilter(**{**where.__dict__, "geotagged": True})
    total, rows = store.list_findings(session, geo, limit, 0)
    features: list[dict[str, Any]] = []
    for finding in rows:
        props = presenters.finding_out(finding).model_dump(mode="json")
        coords = [finding.lon, finding.lat] + ([finding.alt] if finding.alt is not None else [])
        props |= _position_columns(props.pop("gps"))
        features.append(
            {
                "type": "Feature",
                "id": finding.id,
                "geometry": {"type": "Point", "coordinates": coords},
                "properties": props,
            }
        )
    import json

    body = json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False)
    return Response(body, media_type="application/geo+json", headers={"X-Total-Count": str(total)})


@router.get(
    "/findings.csv",
    responses={200: {"content": {"text/csv": {}}, "description": "One row per finding"}, **responses(*AUTH, 422)},
)
def findings_csv(
    session: SessionDep,
    _: Reader,
    where: FilterDep,
    limit: Annotated[int, Query(ge=1, le=MAX_EXPORT)] = MAX_EXPORT,
    sort: SortQuery = FindingSort["id"],
) -> Response:
    """Findings as CSV in the ledger's order (UTF-8 with BOM so spreadsheets read Chinese place names correctly)."""
    total, rows = store.list_findings(session, where, limit, 0, sort.value)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for finding in rows:
        out = presenters.finding_out(finding).model_dump(mode="json")
        flat = {**out, **out["box"], **(out["gps"] or {}), **_position_columns(out["gps"])}
        writer.writerow(safe_record(flat))
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"X-Total-Count": str(total), "Content-Disposition": 'attachment; filename="findings.csv"'},
    )


@router.get(
    "/findings.xlsx",
    responses={
        200: {"content": {workbook.XLSX_TYPE: {}}, "description": "问题台账, one row per finding"},
        **responses(*AUTH, 422),
    },
)
def findings_xlsx(
    request: Request,
    session: SessionDep,
    state: StateDep,
    _: Reader,
    where: FilterDep,
    limit: Annotated[int, Query(ge=1, le=MAX_EXPORT)] = MAX_EXPORT,
    sort: SortQuery = FindingSort["id"],
) -> Response:
    """The ledger as a spreadsheet: Chinese headers, local times as real dates, numbers linking to the findings."""
    total, rows = store.list_findings(session, where, limit, 0, sort.value)
    body = workbook.ledger(
        (presenters.finding_out(f) for f in rows),
        str(request.base_url).rstrip("/"),
        ZoneInfo(state.settings.timezone),
    )
    return Response(
        body,
        media_type=workbook.XLSX_TYPE,
        headers={"X-Total-Count": str(total), "Content-Disposition": 'attachment; filename="findings.xlsx"'},
    )
