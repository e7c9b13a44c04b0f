"""Alembic environment: runs over the connection the app hands in (see `inference_api.db.upgrade`).

Falls back to `ENVWATCH_DATABASE_URL` so `alembic -c ... revision --autogenerate` also works.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from inference_api.models import Base

target_metadata = Base.metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from inference_api.settings import get_settings

    engine = create_engine(get_settings().database_url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
