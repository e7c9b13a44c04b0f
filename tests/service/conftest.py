"""Fixtures for the service tests: a real uvicorn server in a subprocess, per module and per database.

Every test talks HTTP to a server started exactly as in production (`uvicorn --factory`), with
the real ONNX detector, so what is tested is what runs. Each module gets its own fresh database
(a new SQLite file, or a new PostgreSQL schema) and data dir, so modules never see each other's
rows. PostgreSQL runs when `ENVWATCH_TEST_POSTGRES_URL` is set (CI sets it).
"""

from __future__ import annotations

import io
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from service_helpers import BACKENDS, FIRE_IMAGES, GARBAGE_IMAGES, POSTGRES_URL, Server, Upload, model_path


@pytest.fixture(scope="session")
def service_model() -> Path:
    """The model every test server loads (`ENVWATCH_MODEL_PATH`): the one the package promotes."""
    return model_path()


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database for one module: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'envwatch.db'}"
        return
    assert POSTGRES_URL
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin_engine = sa.create_engine(POSTGRES_URL)
    with admin_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    with admin_engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin_engine.dispose()


@pytest.fixture(scope="module")
def make_server(
    database_url: str, service_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Server]]:
    """Start servers on this module's database; each gets its own data dir unless one is given.

    They share one bootstrap admin key: a different `ENVWATCH_ADMIN_KEY` on the same database
    would (rightly) replace the earlier one.
    """
    started: list[Server] = []
    module_key = "ew_test_" + secrets.token_urlsafe(16)

    def make(
        env: dict[str, str] | None = None,
        admin_key: str | None = "generate",
        start: bool = True,
        expect_ready: bool = True,
    ) -> Server:
        root = tmp_path_factory.mktemp("server")
        full_env = {
            "ENVWATCH_DATA_DIR": str(root / "images"),
            "ENVWATCH_MODEL_PATH": str(service_model),
            "ENVWATCH_LOG_LEVEL": "INFO",
            **(env or {}),
        }
        key = module_key if admin_key == "generate" else admin_key
        server = Server(root=root, database_url=database_url, env=full_env, admin_key=key)
        started.append(server)
        return server.start(expect_ready) if start else server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(make_server: Callable[..., Server]) -> Server:
    """This module's server with default settings and a known admin key."""
    return make_server()


@pytest.fixture(scope="module")
def inspector_key(server: Server) -> str:
    return server.new_key("inspector", "inspector-wang")


@pytest.fixture(scope="module")
def integration_key(server: Server) -> str:
    return server.new_key("integration", "gis-portal")


# ---------------------------------------------------------------- photos, good and bad


@pytest.fixture(scope="session")
def fire_photos() -> list[Path]:
    photos = sorted(FIRE_IMAGES.glob("*.jpg"))[:6]
    assert photos, f"no photos under {FIRE_IMAGES}"
    return photos


@pytest.fixture(scope="session")
def garbage_photos() -> list[Path]:
    photos = sorted(GARBAGE_IMAGES.glob("*.jpg"))[:6]
    assert photos, f"no photos under {GARBAGE_IMAGES}"
    return photos


@pytest.fixture(scope="session")
def bad_files(fire_photos: list[Path]) -> dict[str, bytes]:
    """Real broken files, one per way an upload can be unusable."""
    jpeg = fire_photos[0].read_bytes()
    bomb = io.BytesIO()
    # 20000 x 20000 = 400 M pixels of one colour: a few hundred KB of PNG, 1.2 GB once decoded.
    Image.new("1", (20000, 20000)).save(bomb, "PNG", optimize=True)
    return {
        "empty.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 3],
        "notes.jpg": "这不是照片 - this is a text file renamed .jpg\n".encode() * 20,
        "bomb.png": bomb.getvalue(),
    }


@pytest.fixture(scope="session")
def noise_jpeg() -> Callable[[int, int], bytes]:
    """A random-noise JPEG of a given size (noise does not compress: byte size ~ pixel count)."""

    def build(width: int, height: int) -> bytes:
        rng = np.random.default_rng(0)
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=95)
        return buffer.getvalue()

    return build


@pytest.fixture(scope="session")
def upload() -> Upload:
    """`upload(client, [(name, bytes), ...], **form)`: POST /v1/inspections as a multipart form."""

    def post(client: httpx.Client, files: list[tuple[str, bytes]], **form: str) -> httpx.Response:
        parts = [("files", (name, data, "image/jpeg")) for name, data in files]
        return client.post("/v1/inspections", files=parts, data=form)

    return post
