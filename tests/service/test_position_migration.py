"""Migration 0007 on a database with findings from before it: their positions are marked as the photo's."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from inference_api import db


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def test_findings_stored_before_0007_keep_their_position_marked_as_the_photos(database_url: str) -> None:
    engine = db.make_engine(database_url)
    try:
        with engine.begin() as connection:
            command.upgrade(_config(connection), "0005")
            connection.execute(
                sa.text(
                    "INSERT INTO images (id, sha256, path, bytes, width, height, lat, lon, created_at)"
                    " VALUES (1, :sha, 'a/b.jpg', 10, 4, 3, 28.7, 113.5, CURRENT_TIMESTAMP)"
                ),
                {"sha": "0" * 64},
            )
            connection.execute(
                sa.text("INSERT INTO inspections (id, created_by, created_at) VALUES (1, 'wang', CURRENT_TIMESTAMP)")
            )
            for finding_id, lat, lon in ((1, 28.7, 113.5), (2, None, None)):
                connection.execute(
                    sa.text(
                        "INSERT INTO findings (id, inspection_id, image_id, type, label, score, x1, y1, x2, y2,"
                        " lat, lon, observed_at, model_version, status, created_at, updated_at) VALUES"
                        " (:id, 1, 1, 'burning', 'fire', 0.9, 0, 0, 1, 1, :lat, :lon, CURRENT_TIMESTAMP, 'v3',"
                        " 'candidate', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": finding_id, "lat": lat, "lon": lon},
                )
        db.upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT id, position_source, position_accuracy_m FROM findings ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [(1, "photo", None), (2, None, None)]
