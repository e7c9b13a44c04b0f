"""Shared by the service tests: the server subprocess, paths of the shared data, photo builders.

A plain module (not conftest) so test modules can import these names directly.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / ".." / "shared" / "datasets"
FIRE_IMAGES = DATASETS / "fire-continuous" / "test" / "images"
GARBAGE_IMAGES = DATASETS / "garbage-cn" / "valid" / "images"
POSTGRES_URL = os.environ.get("ENVWATCH_TEST_POSTGRES_URL")

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(not POSTGRES_URL, reason="ENVWATCH_TEST_POSTGRES_URL is not set"),
    ),
]


def model_path() -> Path:
    """The model the package's registry promotes: what `envwatch serve` loads by default."""
    from model.registry import promoted_model

    return promoted_model()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A uvicorn subprocess serving `create_app()`; `log` collects its stderr/stdout."""

    root: Path
    database_url: str
    env: dict[str, str]
    admin_key: str | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.root / f"server-{uuid.uuid4().hex[:6]}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return Path(self.env["ENVWATCH_DATA_DIR"])

    def start(self, expect_ready: bool = True) -> Server:
        self.port = free_port()
        env = {**os.environ, **self.env, "ENVWATCH_DATABASE_URL": self.database_url}
        if self.admin_key:
            env["ENVWATCH_ADMIN_KEY"] = self.admin_key
        self.log_path = self.root / f"server-{uuid.uuid4().hex[:6]}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "inference_api.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                status = httpx.get(f"{self.url}/readyz", timeout=2).status_code
                if status == 200 or (status == 503 and not expect_ready):
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready in 60 s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, key: str | None = None, timeout: float = 120) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    @property
    def admin(self) -> httpx.Client:
        return self.client(self.admin_key)

    def new_key(self, role: str, name: str | None = None) -> str:
        with self.admin as client:
            response = client.post("/v1/keys", json={"name": name or f"{role}-{uuid.uuid4().hex[:6]}", "role": role})
        assert response.status_code == 201, response.text
        return response.json()["key"]


def _rational(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60 * 10000)
    return (IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 10000))


def with_exif(source: Path, lat: float, lon: float, alt: float, taken: str, orientation: int = 1) -> bytes:
    """`source` re-saved as JPEG with EXIF GPS (S/W for negative degrees), altitude, DateTimeOriginal, orientation."""
    image = Image.open(source).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    refs = {1: "N" if lat >= 0 else "S", 3: "E" if lon >= 0 else "W"}
    gps.update({**refs, 2: _rational(abs(lat)), 4: _rational(abs(lon)), 5: 0, 6: IFDRational(round(alt * 100), 100)})
    exif.get_ifd(0x8769)[0x9003] = taken
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


Upload = Callable[..., httpx.Response]


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run `calls` on threads released together by a barrier (to provoke races); their results, in order."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        start.wait()
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
