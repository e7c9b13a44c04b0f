"""Photo labels ("this photo shows X" / "does not show X"), and what new types are learned from.

An inspector labels a stored photo for any taxonomy type with one action, no box. Learning
(training/learn.py) takes, per photo and type, every answer the service holds:

- photo labels, yes or no;
- box labels (drawn, corrected, imported) and confirmed findings: yes, for their type;
- dismissed findings: no, unless something above says yes for the same photo and type (a
  dismissed box says only that this box was wrong; the photo may still show the type elsewhere).

A photo with both a yes and a no for a type from photo labels or boxes is contradictory: learning
refuses and names the sources, so a person decides which to delete.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from inference_api import presenters, review_labels, review_store, store
from inference_api.auth import Principal
from inference_api.db import transaction
from inference_api.deps import AppState
from inference_api.errors import ApiError
from inference_api.models import Image, InspectionFile, PhotoLabel, utcnow
from inference_api.schemas import PhotoLabelCreate, PhotoLabelOut, UncertainPage, UncertainPhoto
from inference_api.settings import Settings
from inference_api.storage import ImageStore
from model.registry import Registry, RegistryError
from training import learn as learning
from training.photo_heads import most_uncertain

UNCERTAIN_POOL = 500
"""How many of the most recent stored photos the uncertain listing scores (each photo's features are cached)."""
MIN_TO_RANK = 2
"""Photos of each answer a provisional head needs before it can rank anything."""


def create(state: AppState, principal: Principal, body: PhotoLabelCreate) -> PhotoLabelOut:
    with transaction(state.sessions) as session:
        image = store.get_image(session, body.image_id)
        if image is None:
            raise ApiError(404, "not_found", f"no image {body.image_id}")
        row = PhotoLabel(
            image_id=image.id,
            type=body.type.value,
            shows=body.shows,
            shown_model=_shown_model(session, image.id),
            note=body.note,
            created_by=principal.name,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return presenters.photo_label_out(row)


def _shown_model(session: Session, image_id: int) -> str | None:
    """The model version of the photo's latest scoring: what the page showed beside it."""
    query = (
        select(InspectionFile.model_version)
        .where(InspectionFile.image_id == image_id, InspectionFile.model_version.is_not(None))
        .order_by(InspectionFile.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def listed(
    session: Session, image_id: int | None, type_: str | None, limit: int, offset: int
) -> tuple[int, list[PhotoLabel]]:
    query = select(PhotoLabel).where(PhotoLabel.deleted_at.is_(None))
    if image_id is not None:
        query = query.where(PhotoLabel.image_id == image_id)
    if type_ is not None:
        query = query.where(PhotoLabel.type == type_)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(PhotoLabel.id).limit(limit).offset(offset)).all()
    return total, list(rows)


def delete(state: AppState, principal: Principal, label_id: int) -> None:
    with transaction(state.sessions) as session:
        row = session.get(PhotoLabel, label_id)
        if row is None:
            raise ApiError(404, "not_found", f"no photo label {label_id}")
        if row.deleted_at is not None:
            raise ApiError(409, "label_deleted", f"photo label {label_id} was deleted by {row.deleted_by}")
        row.deleted_by, row.deleted_at = principal.name, utcnow()


def gathered(session: Session, files: ImageStore) -> list[learning.PhotoLabel]:
    """Every answer per photo and type the service holds (see the module docstring), for training/learn.py."""
    _, rows = listed(session, None, None, 2**31 - 1, 0)
    images = review_store.images_by_id(session, {row.image_id for row in rows})
    answers = [
        learning.PhotoLabel(
            images[row.image_id].sha256,
            files.path(images[row.image_id].sha256),
            row.type,
            row.shows,
            f"photo label {row.id}",
        )
        for row in rows
    ]
    said_yes = {(a.sha256, a.type) for a in answers if a.shows}
    dismissed = []
    for image in review_labels.reviewed_images(session, files):
        path = files.path(image.sha256)
        for box in image.boxes:
            answers.append(learning.PhotoLabel(image.sha256, path, box.type, True, box.ref))
            said_yes.add((image.sha256, box.type))
        for box in image.hard_negatives:
            dismissed.append(learning.PhotoLabel(image.sha256, path, box.type, False, box.ref))
    return answers + [a for a in dismissed if (a.sha256, a.type) not in said_yes]


def learn_from(sessions: sessionmaker[Session], settings: Settings, by: str, version: str | None) -> dict:
    """Fit heads for every type with enough answers on the promoted version's backbone; a new version, not promoted.

    What `POST /v1/models/learn` and `envwatch models learn` (on the server, with the service's settings) run.
    """
    with sessions() as session:
        answers = gathered(session, ImageStore(settings.data_dir))
    registry = Registry(settings.model_registry)
    return learning.learn(registry, answers, learning.feature_root(settings.data_dir), by, version)


def refuse_if_pinned(settings: Settings) -> None:
    """Learning and promotion work on the registry; a service pinned to one file (`ENVWATCH_MODEL_PATH`) serves
    none of it, so changing the registry from its API would change what another service serves, unseen here."""
    if settings.model_path is not None:
        raise ApiError(
            409,
            "model_pinned",
            f"this service serves the pinned file {settings.model_path} (ENVWATCH_MODEL_PATH), not the registry: "
            "learning, promotion and rollback need a service that follows the registry",
        )


def learn(state: AppState, principal: Principal, version: str | None) -> dict:
    """`learn_from` for a request: refusals as API errors."""
    refuse_if_pinned(state.settings)
    try:
        return learn_from(state.sessions, state.settings, principal.name, version)
    except learning.LearnBusy as exc:
        raise ApiError(409, "learn_running", str(exc)) from None
    except learning.LearnError as exc:
        raise ApiError(422, exc.code, str(exc)) from None
    except RegistryError as exc:  # a version name that cannot be a folder, or no version promoted
        raise ApiError(422, "invalid_version", str(exc)) from None


def uncertain(state: AppState, model: Path, type_: str, limit: int) -> UncertainPage:
    """Unlabelled stored photos whose score for `type_` is nearest 0.5, under a head fitted on the answers so far.

    The head is provisional (fitted now, on every answer for the type, balanced, on the backbone of
    `model`, the serving file), so the list follows each new label; 0.5 is its boundary. The most
    recent `UNCERTAIN_POOL` photos are scored.
    """
    with state.sessions() as session:
        answers = [a for a in _unique_answers(gathered(session, state.images)) if a.type == type_]
        labelled = {a.sha256 for a in answers}
        recent = session.scalars(select(Image).order_by(Image.id.desc()).limit(UNCERTAIN_POOL)).all()
        pool = [(image.id, image.sha256) for image in recent if image.sha256 not in labelled]
    yes = sum(a.shows for a in answers)
    no = len(answers) - yes
    if yes < MIN_TO_RANK or no < MIN_TO_RANK:
        raise ApiError(
            422,
            "too_few_labels",
            f"{type_}: {yes} photo(s) labelled showing it and {no} not; ranking needs at least {MIN_TO_RANK} of each",
        )
    try:
        back = learning.open_backbone(model, learning.feature_root(state.settings.data_dir))
    except learning.LearnError as exc:
        raise ApiError(422, exc.code, str(exc)) from None
    x = back.features.features([a.path for a in answers], desc="features labelled")
    candidates = back.features.features([state.images.path(sha) for _, sha in pool], desc="features pool")
    order, score = most_uncertain(x, np.array([a.shows for a in answers], dtype=np.float32), candidates)
    order = order[:limit]
    return UncertainPage(
        type=type_,
        positives=yes,
        negatives=no,
        considered=len(pool),
        items=[UncertainPhoto(image_id=pool[i][0], score=round(float(score[i]), 4)) for i in order],
    )


def _unique_answers(answers: list[learning.PhotoLabel]) -> list[learning.PhotoLabel]:
    """One answer per photo and type for ranking; a contradictory photo counts as unlabelled-yes-and-no: dropped."""
    votes: dict[tuple[str, str], set[bool]] = {}
    first: dict[tuple[str, str], learning.PhotoLabel] = {}
    for answer in answers:
        key = (answer.sha256, answer.type)
        votes.setdefault(key, set()).add(answer.shows)
        first.setdefault(key, answer)
    return [first[key] for key, seen in votes.items() if len(seen) == 1]
