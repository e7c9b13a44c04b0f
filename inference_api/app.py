"""`create_app()`: the envwatch inspection service as a FastAPI app.

Startup (in the lifespan, so importing this module stays cheap and needs no model): apply
Alembic migrations, make sure an admin key exists, load the detector. A model that fails to
load does not stop the process: /healthz stays up and /readyz answers 503 with the reason, so an
operator can see why instead of a crash loop.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from inference_api import auth, db, errors
from inference_api.body_limit import BodyLimit
from inference_api.deadlines import OverdueWatcher
from inference_api.deps import AppState
from inference_api.jobs import JobRunner
from inference_api.model_watch import ModelWatcher
from inference_api.observability import Metrics, configure_logging, install_middleware
from inference_api.orphans import OrphanSweeper
from inference_api.pool import DetectorPool
from inference_api.routes import (
    bulletin,
    exports,
    findings,
    health,
    images,
    inspections,
    jobs,
    keys,
    labels,
    model,
    models,
    photo_labels,
    web,
)
from inference_api.settings import Settings, get_settings
from inference_api.storage import ImageStore
from inference_api.webhooks import WebhookSender

log = logging.getLogger("envwatch.app")

API_VERSION = "1.0.0"


def _startup(state: AppState, watcher: ModelWatcher) -> None:
    db.upgrade(state.engine)
    log.info("database migrated", extra={"database": state.engine.url.render_as_string(hide_password=True)})
    admin_key = state.settings.admin_key.get_secret_value() if state.settings.admin_key else None
    auth.bootstrap_keys(state.sessions, admin_key, state.settings.create_local_admin)
    watcher.check(force=True)  # a model that fails to load is reported by /readyz, not raised


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; nothing touches the database or the model until the server starts."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    engine = db.make_engine(settings.database_url)
    pool = DetectorPool(settings.detect_workers, settings.detect_queue)
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=db.make_sessionmaker(engine),
        images=ImageStore(settings.data_dir),
        pool=pool,
        metrics=Metrics(pool),
    )

    watcher = ModelWatcher(state)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_startup, state, watcher)
        watcher.start()
        sender = WebhookSender(settings, state.sessions) if settings.webhook_url else None
        if sender:
            sender.start()
        runner = JobRunner(state)
        runner.start()
        overdue = OverdueWatcher(settings, state.sessions)
        sweeper = OrphanSweeper(state)
        overdue.start()
        sweeper.start()
        try:
            yield
        finally:
            sweeper.stop()
            overdue.stop()
            runner.stop()
            watcher.stop()
            if sender:
                sender.stop()
            pool.shutdown()
            engine.dispose()

    app = FastAPI(
        title="envwatch inspection service",
        version=API_VERSION,
        description=(
            "Finds candidate living-environment problems (overflowing or exposed garbage, burning) in "
            "inspection photos, and tracks their review by inspectors. Every error body is "
            '`{"error": {"code", "message", "file"?, "files"?}}`.'
        ),
        lifespan=lifespan,
    )
    app.state.envwatch = state
    app.state.model_watcher = watcher
    errors.install(app)

    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    install_middleware(app, state.metrics)
    routers = (health, keys, model, models, inspections, findings, labels, photo_labels, exports, bulletin, images)
    for module in (*routers, jobs, web):
        app.include_router(module.router)
    return app
