"""The queries behind labels from reviews (as `store` holds the ledger's): callers commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from inference_api.models import Finding, Image, Label

REVIEWED = ("confirmed", "rectification_ordered", "rectified", "closed", "dismissed")
"""Finding statuses an inspector has decided; every one past `confirmed` went through it."""


@dataclass(frozen=True)
class LabelFilter:
    image_id: int | None = None
    finding_id: int | None = None
    type: str | None = None
    source: str | None = None

    def apply(self, query: Select) -> Select:  # type: ignore[type-arg]
        query = query.where(Label.deleted_at.is_(None))
        for column, value in (
            (Label.image_id, self.image_id),
            (Label.finding_id, self.finding_id),
            (Label.type, self.type),
            (Label.source, self.source),
        ):
            if value is not None:
                query = query.where(column == value)
        return query


def get_label(session: Session, label_id: int) -> Label | None:
    return session.get(Label, label_id)


def list_labels(session: Session, where: LabelFilter, limit: int, offset: int) -> tuple[int, Sequence[Label]]:
    total = session.scalar(where.apply(select(func.count(Label.id)))) or 0
    rows = session.scalars(where.apply(select(Label)).order_by(Label.id).limit(limit).offset(offset)).all()
    return total, rows


def live_correction(session: Session, finding_id: int) -> Label | None:
    return session.scalar(select(Label).where(Label.finding_id == finding_id, Label.deleted_at.is_(None)))


def label_by_external_id(session: Session, external_id: str) -> Label | None:
    return session.scalar(select(Label).where(Label.external_id == external_id))


def live_labels(session: Session) -> Sequence[Label]:
    return session.scalars(select(Label).where(Label.deleted_at.is_(None)).order_by(Label.id)).all()


def reviewed_findings(session: Session) -> Sequence[Finding]:
    """Findings an inspector decided, with their history (who decided, when)."""
    query = select(Finding).where(Finding.status.in_(REVIEWED)).options(selectinload(Finding.events))
    return session.scalars(query.order_by(Finding.id)).all()


def images_by_id(session: Session, ids: set[int]) -> dict[int, Image]:
    if not ids:
        return {}
    return {image.id: image for image in session.scalars(select(Image).where(Image.id.in_(ids)))}
