"""Soak: minutes of mixed load with server kills, a full disk and a hanging webhook receiver (a benchmark, not a test).

Everything runs on loopback: a real uvicorn server (killed with SIGKILL and restarted every
`--kill-every` seconds, on the same database and data dir), a webhook receiver that hangs without
answering for the middle of the run, and, when a tmpfs can be mounted (root), an image store on a
small tmpfs that is filled for a while so uploads meet a full disk. Client threads meanwhile
upload photos, review findings (confirm, order, rectify with a follow-up photo, close), edit labels
two at a time, queue zip jobs and read photos. Bounded by `--duration` and `--max-requests`.

At the end the server is restarted once more (its sweeper removes what the kills left), the
outbox is given time to drain, and the run prints: requests, 5xx by code, connection errors
(kills), photos lost (answered 201, unreadable now), rows without files, files without rows,
impossible labels, webhook events delivered / pending / given up, peak RSS. Exit status 1 if any
loss count is not zero or events are still pending.

    .venv/bin/python benchmarks/soak_bench.py --duration 180
    .venv/bin/python benchmarks/soak_bench.py --duration 180 \\
        --postgres postgresql+psycopg://envwatch:envwatch@127.0.0.1:5432/envwatch_test
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx
import sqlalchemy as sa
from PIL import Image

from model.registry import promoted_model
from model.taxonomy import trainable_labels

REPO = Path(__file__).resolve().parents[1]
PHOTOS = [
    REPO / ".." / "shared" / "datasets" / "fire-continuous" / "test" / "images",
    REPO / ".." / "shared" / "datasets" / "garbage-cn" / "valid" / "images",
]
MIN_FREE = 256 * 1024
"""ENVWATCH_MIN_FREE_BYTES of the soaked server: the full-disk phase starts just above it (uploads are let in
and meet ENOSPC part-way) and ends below it (uploads are refused up front)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """Webhook receiver on loopback; while `hanging` it reads each request and never answers."""

    def __init__(self) -> None:
        self.hanging = threading.Event()
        self.delivered: set[str] = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.hanging.is_set():
                    time.sleep(30)  # past the sender's timeout; then the connection just closes
                    return
                with receiver.lock:
                    receiver.delivered.add(self.headers["X-Envwatch-Delivery"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


class Server:
    """The service as a uvicorn subprocess; `kill()` is SIGKILL (no clean shutdown), `peak_rss_mib` is sampled."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.peak_rss_mib = 0.0
        self.starts = 0
        threading.Thread(target=self._sample_rss, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, extra: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.starts += 1
        log = (self.root / f"server-{self.starts}.log").open("wb")
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
            ],  # fmt: skip
            cwd=REPO,
            env={**os.environ, **self.env, **(extra or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {log.name}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not come up in 90 s")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def _sample_rss(self) -> None:
        while True:
            process = self.process
            if process is not None and process.poll() is None:
                try:
                    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_rss_mib = max(self.peak_rss_mib, int(line.split()[1]) / 1024)
                except (FileNotFoundError, ProcessLookupError):
                    pass
            time.sleep(0.5)


@contextmanager
def small_disk(root: Path, megabytes: int) -> Iterator[Path | None]:
    """A tmpfs of `megabytes` (None where one cannot be mounted: not root), unmounted at the end."""
    mount_point = root / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(mount_point)], capture_output=True
    )
    if done.returncode != 0:
        print(f"full disk: skipped, cannot mount a tmpfs: {done.stderr.decode(errors='replace').strip()}")
        yield None
        return
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Make about `leave` bytes the free space on `disk` with a filler file."""
    filler = disk / "filler"
    stats = os.statvfs(disk)
    current = filler.stat().st_size if filler.exists() else 0
    size = max(0, current + stats.f_bavail * stats.f_frsize - leave)
    with filler.open("wb") as handle:
        handle.write(b"\0" * size)


class Photos:
    """Distinct small JPEGs made from the shared photos (a pixel changed per copy: a new sha256 each)."""

    def __init__(self) -> None:
        sources = [p for folder in PHOTOS for p in sorted(folder.glob("*.jpg"))[:20]]
        if not sources:
            raise SystemExit(f"no photos under {PHOTOS}")
        self.sources = [Image.open(p).convert("RGB").resize((640, 480)) for p in sources]
        self.counter = 0
        self.lock = threading.Lock()

    def new(self) -> bytes:
        with self.lock:
            self.counter += 1
            n = self.counter
        image = self.sources[n % len(self.sources)].copy()
        image.putpixel((n % 640, (n // 640) % 480), (n % 256, (n >> 8) % 256, 7))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=88)
        return buffer.getvalue()


class Soak:
    """The shared state of the load threads: what the service acknowledged, and every answer's status."""

    def __init__(self, server: Server, key: str, photos: Photos, max_requests: int) -> None:
        self.server, self.key, self.photos, self.max_requests = server, key, photos, max_requests
        self.lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.errors_5xx: Counter[str] = Counter()
        self.connection_errors = 0
        self.acknowledged: dict[int, bytes] = {}
        """image id -> bytes of every photo an upload answered 201 for."""
        self.findings: dict[int, str] = {}
        self.labels: list[int] = []
        self.jobs = 0
        self.stop = threading.Event()

    def requests(self) -> int:
        with self.lock:
            return sum(self.statuses.values()) + self.connection_errors

    def call(self, method: str, path: str, **kwargs: object) -> httpx.Response | None:
        """One request to the current server; None when the connection failed (the server was being killed)."""
        try:
            with httpx.Client(base_url=self.server.url, headers={"X-API-Key": self.key}, timeout=60) as client:
                response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:
            with self.lock:
                self.connection_errors += 1
            time.sleep(0.3)
            return None
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code >= 500:
                try:
                    code = response.json()["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = "?"
                self.errors_5xx[f"{response.status_code} {code} {method} {path.split('/')[2]}"] += 1
        return response

    def upload(self, photos: list[bytes] | None = None) -> None:
        photos = photos or [self.photos.new() for _ in range(random.choice((1, 1, 2, 3)))]
        files = [("files", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
        sent = {name: data for _, (name, data, _) in files}
        response = self.call("POST", "/v1/inspections", files=files, data={"conf": "0.05", "region": "soak"})
        if response is None or response.status_code != 201:
            return
        body = response.json()
        with self.lock:
            for result in body["files"]:
                if result["ok"]:
                    self.acknowledged[result["image"]["id"]] = sent[result["file"]]
            for finding in body["findings"]:
                self.findings[finding["id"]] = "candidate"

    def review(self) -> None:
        with self.lock:
            if not self.findings:
                return
            finding_id, status = random.choice(list(self.findings.items()))
        step = {"candidate": "confirmed", "confirmed": "rectification_ordered", "rectified": "closed"}.get(status)
        if status == "rectification_ordered":
            files = {"file": ("after.jpg", self.photos.new(), "image/jpeg")}
            response = self.call("POST", f"/v1/findings/{finding_id}/rectification", files=files)
            step = "rectified"
        elif step is None:
            return
        else:
            response = self.call("POST", f"/v1/findings/{finding_id}/transitions", json={"to": step})
        if response is not None and response.status_code == 200:
            with self.lock:
                self.findings[finding_id] = step

    def same_photo_twice(self) -> None:
        """One new photo at once as an upload and as the follow-up of a rectification that is refused (the
        finding is not awaiting one): the refused request's clean-up must not take the upload's file."""
        with self.lock:
            candidates = [f for f, status in self.findings.items() if status == "candidate"]
        if not candidates:
            return
        data, finding_id = self.photos.new(), random.choice(candidates)
        files = {"file": ("same.jpg", data, "image/jpeg")}
        threads = [
            threading.Thread(target=self.upload, args=([data],)),
            threading.Thread(target=self.call, args=("POST", f"/v1/findings/{finding_id}/rectification"),
                             kwargs={"files": files}),
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def edit_labels(self) -> None:
        with self.lock:
            if not self.acknowledged:
                return
            image_id = random.choice(list(self.acknowledged))
        box = {"x1": 1, "y1": 1, "x2": 50, "y2": 50}
        made = self.call("POST", "/v1/labels", json={"image_id": image_id, "type": "burning", "box": box})
        if made is None or made.status_code != 201:
            return
        label_id = made.json()["id"]
        with self.lock:
            self.labels.append(label_id)
        edits = [{"type": "exposed_garbage"}, {"label": "smoke"}]
        threads = [threading.Thread(target=self.call, args=("PATCH", f"/v1/labels/{label_id}"), kwargs={"json": e})
                   for e in edits]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def zip_job(self) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for i in range(3):
                archive.writestr(f"batch/{i}.jpg", self.photos.new())
        self.call("POST", "/v1/jobs/zip", files={"archive": ("batch.zip", buffer.getvalue(), "application/zip")})
        with self.lock:
            self.jobs += 1

    def read(self) -> None:
        with self.lock:
            image_id = random.choice(list(self.acknowledged)) if self.acknowledged else None
        choice = random.random()
        if image_id is not None and choice < 0.4:
            self.call("GET", f"/v1/images/{image_id}/original")
        elif image_id is not None and choice < 0.5:
            self.call("GET", f"/v1/images/{image_id}/annotated.jpg")
        else:
            self.call("GET", "/v1/findings", params={"limit": 20, "sort": "-id"})

    def client(self) -> None:
        actions = [
            (self.upload, 4),
            (self.same_photo_twice, 1),
            (self.review, 3),
            (self.read, 4),
            (self.edit_labels, 1),
            (self.zip_job, 0.4),
        ]
        functions, weights = zip(*actions, strict=True)
        while not self.stop.is_set() and self.requests() < self.max_requests:
            random.choices(functions, weights)[0]()


def outbox(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT count(delivered_at), count(*) - count(delivered_at) - count(failed_at), count(failed_at) "
                "FROM webhook_deliveries"
            )
        ).one()
    return dict(zip(("delivered", "pending", "given_up"), map(int, row), strict=True))


def audit(soak: Soak, engine: sa.Engine, data_dir: Path) -> dict[str, int]:
    """What a restart, a sweep and the outbox left: every count here should be zero."""
    lost = 0
    for image_id, data in soak.acknowledged.items():
        response = soak.call("GET", f"/v1/images/{image_id}/original")
        lost += response is None or response.status_code != 200 or response.content != data
    with engine.connect() as connection:
        shas = set(connection.execute(sa.text("SELECT sha256 FROM images")).scalars())
        labels = connection.execute(sa.text("SELECT type, label FROM labels")).all()
    files = {p.name for p in data_dir.glob("*/*/*") if p.is_file()}
    return {
        "photos_lost": lost,
        "rows_without_files": len(shas - files),
        "files_without_rows": len(files - shas),
        "impossible_labels": sum(label not in trainable_labels(type_) for type_, label in labels),
    }


def database(root: Path, postgres: str | None) -> tuple[str, sa.Engine, object]:
    """The soak's database URL (a fresh SQLite file, or a fresh PostgreSQL schema), an engine, and a clean-up."""
    if not postgres:
        url = f"sqlite:///{root / 'soak.db'}"
        return url, sa.create_engine(url), lambda: None
    schema = f"soak_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{postgres}{'&' if '?' in postgres else '?'}options={quote(f'-csearch_path={schema}')}"

    def drop() -> None:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))

    return url, sa.create_engine(url), drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=180, help="seconds of load")
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=40, help="seconds between SIGKILLs of the server")
    parser.add_argument("--disk-mb", type=int, default=48, help="size of the tmpfs image store")
    parser.add_argument("--postgres", help="a PostgreSQL URL to soak on (a fresh schema) instead of SQLite")
    parser.add_argument(
        "--drain-s", type=float, default=150, help="longest wait for the outbox once the receiver is back"
    )
    args = parser.parse_args()
    random.seed(15)

    with tempfile.TemporaryDirectory(prefix="envwatch-soak-") as tmp, small_disk(Path(tmp), args.disk_mb) as disk:
        root = Path(tmp)
        url, engine, drop = database(root, args.postgres)
        data_dir = (disk or root) / "images"
        receiver = Receiver()
        admin_key = "ew_soak_" + secrets.token_urlsafe(16)
        server = Server(
            root,
            {
                "ENVWATCH_DATABASE_URL": url,
                "ENVWATCH_DATA_DIR": str(data_dir),
                "ENVWATCH_MODEL_PATH": str(promoted_model()),
                "ENVWATCH_ADMIN_KEY": admin_key,
                "ENVWATCH_DETECT_WORKERS": "2",  # an upload and a refused rectification of one photo at once
                "ENVWATCH_MIN_FREE_BYTES": str(MIN_FREE),
                "ENVWATCH_ORPHAN_GRACE_S": "5",
                "ENVWATCH_WEBHOOK_URL": f"http://127.0.0.1:{receiver.port}/hook",
                "ENVWATCH_WEBHOOK_TIMEOUT_S": "2",
                "ENVWATCH_WEBHOOK_BACKOFF_S": "1",
                "ENVWATCH_LOG_LEVEL": "WARNING",
            },
        )
        server.start()
        key = httpx.post(
            server.url + "/v1/keys",
            json={"name": "soak-inspector", "role": "inspector"},
            headers={"X-API-Key": admin_key},
        ).json()["key"]
        soak = Soak(server, key, Photos(), args.max_requests)
        threads = [threading.Thread(target=soak.client, daemon=True) for _ in range(args.clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        kills, disk_full, hung = 0, False, False
        next_kill = started + args.kill_every
        while time.monotonic() - started < args.duration and soak.requests() < args.max_requests:
            elapsed = (time.monotonic() - started) / args.duration
            if not hung and 0.2 <= elapsed < 0.6:
                receiver.hanging.set()
                hung = True
            if hung and elapsed >= 0.6 and receiver.hanging.is_set():
                receiver.hanging.clear()
            if disk is not None and not disk_full and 0.35 <= elapsed < 0.55:
                fill(disk, MIN_FREE + 200 * 1024)  # a few uploads pass the up-front check, then run out part-way
                disk_full = True
            if disk is not None and disk_full and elapsed >= 0.55 and (disk / "filler").exists():
                (disk / "filler").unlink()
            if time.monotonic() >= next_kill:
                server.kill()
                kills += 1
                server.start()
                next_kill = time.monotonic() + args.kill_every
            time.sleep(0.2)
        soak.stop.set()
        for thread in threads:
            thread.join(timeout=120)
        receiver.hanging.clear()
        load_s = time.monotonic() - started
        with soak.lock:
            statuses, errors_5xx, connection_errors = (
                Counter(soak.statuses),
                Counter(soak.errors_5xx),
                soak.connection_errors,
            )
        server.kill()  # one last kill, then a restart whose sweeper sees everything older than a second
        server.start({"ENVWATCH_ORPHAN_GRACE_S": "1"})
        deadline = time.monotonic() + args.drain_s
        while time.monotonic() < deadline and outbox(engine)["pending"]:
            time.sleep(1)
        time.sleep(2)  # the startup sweep
        counts = audit(soak, engine, data_dir)
        webhooks = outbox(engine)
        server.stop()
        engine.dispose()
        drop()  # type: ignore[operator]

    five_xx = sum(n for status, n in statuses.items() if status >= 500)
    report = {
        "backend": "postgresql" if args.postgres else "sqlite",
        "load_s": round(load_s, 1),
        "requests": sum(statuses.values()) + connection_errors,
        "by_status": dict(sorted(statuses.items())),
        "5xx": five_xx,
        "5xx_other_than_507_503": sum(
            n for status, n in statuses.items() if status >= 500 and status not in (503, 507)
        ),
        "5xx_by_kind": dict(errors_5xx.most_common()),
        "connection_errors_during_kills": connection_errors,
        "server_kills": kills,
        "full_disk_phase": disk is not None,
        "photos_acknowledged": len(soak.acknowledged),
        **counts,
        "zip_jobs_sent": soak.jobs,
        "webhook_events_delivered": webhooks["delivered"],
        "webhook_events_pending": webhooks["pending"],
        "webhook_events_given_up": webhooks["given_up"],
        "webhook_deliveries_seen_by_receiver": len(receiver.delivered),
        "peak_rss_mib": round(server.peak_rss_mib, 1),
    }
    for name, value in report.items():
        print(f"{name:36} {value}")
    print(json.dumps(report, ensure_ascii=False))
    losses = [counts[k] for k in counts] + [webhooks["pending"], webhooks["given_up"]]
    return 1 if any(losses) else 0


if __name__ == "__main__":
    sys.exit(main())
