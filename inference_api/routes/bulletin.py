"""`/v1/bulletin`: the weekly bulletin (周通报) and township ranking, as JSON, a printable page and .xlsx."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response

from inference_api import bulletin, bulletin_page, workbook
from inference_api.auth import Reader
from inference_api.deps import SessionDep, StateDep
from inference_api.errors import AUTH, ApiError, responses
from inference_api.pool import Overloaded
from inference_api.routes.inspections import _overloaded
from inference_api.schemas import Bulletin, Text

router = APIRouter(prefix="/v1", tags=["bulletin"])


def _bulletin(
    session: SessionDep,
    state: StateDep,
    region: Annotated[Text, Query(min_length=1, max_length=200, description="County (inspection region), exact.")],
    township: Annotated[Text | None, Query(max_length=200, description="One township of it; else the county.")] = None,
    period: Annotated[
        str | None, Query(max_length=20, description="ISO week (2026-W48) or month (2026-11); default: this week.")
    ] = None,
) -> Bulletin:
    try:
        chosen = bulletin.parse_period(period) if period else bulletin.current_period(state.settings)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    return bulletin.make(session, state.settings, chosen, region, township or None)


BulletinDep = Annotated[Bulletin, Depends(_bulletin)]


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _filename(b: Bulletin, suffix: str) -> str:
    name = f"bulletin-{b.period}-{b.region}{'-' + b.township if b.township else ''}.{suffix}"
    return f"attachment; filename=\"bulletin-{b.period}.{suffix}\"; filename*=UTF-8''{quote(name)}"


@router.get("/bulletin", response_model=Bulletin, responses=responses(*AUTH, 422))
def get_bulletin(_: Reader, result: BulletinDep) -> Bulletin:
    """The bulletin's numbers: new problems by type and township, rectified on time and late, still overdue,
    recurrences, the most confident photos and the township ranking with rank changes (see docs/api.md)."""
    return result


@router.get(
    "/bulletin.html",
    responses={
        200: {"content": {"text/html": {}}, "description": "One page, A4 printable"},
        **responses(*AUTH, 422, 503),
    },
)
def bulletin_html(request: Request, session: SessionDep, state: StateDep, _: Reader, result: BulletinDep) -> Response:
    """The bulletin as one self-contained HTML page (photos with their boxes inside), to print or send."""
    stored = bulletin_page.stored_photos(session, state.images, result.photos)
    try:
        jpegs = state.pool.run(bulletin_page.photo_jpegs, result.photos, stored, state.settings)
    except Overloaded as exc:
        raise _overloaded(state, exc) from exc
    page = bulletin_page.render(result, jpegs, _base_url(request))
    return Response(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "private, no-store"})


@router.get(
    "/bulletin.xlsx",
    responses={200: {"content": {workbook.XLSX_TYPE: {}}, "description": "Ranking and lists"}, **responses(*AUTH, 422)},
)
def bulletin_xlsx(request: Request, _: Reader, result: BulletinDep) -> Response:
    """The township ranking, with the overdue, late and recurring findings on sheets of their own."""
    return Response(
        workbook.ranking(result, _base_url(request)),
        media_type=workbook.XLSX_TYPE,
        headers={"Content-Disposition": _filename(result, "xlsx")},
    )
