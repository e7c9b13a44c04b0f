"""Throughput and latency of POST /v1/inspections against a real local server (a benchmark, not a test).

Starts `uvicorn inference_api.app:create_app --factory` on a temporary SQLite database, then for
1, 4 and 16 concurrent clients uploads one photo per request and prints requests/s, p50/p95
latency, how many were refused (503, pool and queue full), how long a zip batch job of `--job`
photos takes from upload to done, and the server's peak RSS (VmHWM): once per runtime named (by
default the reference, onnxruntime, then the shipped default, `auto`).

    .venv/bin/python benchmarks/service_bench.py --requests 48 --workers 2 --queue 32
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from shared_photos import SHARED_DATASETS, photos_in_turn

from inference_api.settings import Settings
from model.registry import promoted_model

REPO = Path(__file__).resolve().parents[1]
PHOTOS = SHARED_DATASETS / "fire-continuous" / "test" / "images"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the server process has used so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_level(url: str, key: str, photos: list[tuple[str, bytes]], clients: int, requests: int) -> dict:
    latencies: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=300) as client:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                name, data = photos[index % len(photos)]
                started = time.perf_counter()
                response = client.post("/v1/inspections", files=[("files", (name, data, "image/jpeg"))])
                elapsed = time.perf_counter() - started
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 201:
                        latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ok = sorted(latencies)
    return {
        "clients": clients,
        "ok": len(ok),
        "refused": statuses.count(503),
        "other": len([s for s in statuses if s not in (201, 503)]),
        "rps": len(ok) / wall if wall else 0.0,
        "p50": statistics.median(ok) if ok else float("nan"),
        "p95": ok[min(len(ok) - 1, int(0.95 * len(ok)))] if ok else float("nan"),
    }


def run_job(url: str, key: str, folder: Path, count: int) -> str:
    """A zip job of `count` photos (from `folder` and garbage-cn's valid split, in turn), from upload to done."""
    paths = photos_in_turn([folder, SHARED_DATASETS / "garbage-cn" / "valid" / "images"], count)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for index, path in enumerate(paths):
            zipped.write(path, f"{index:04d}-{path.name}")
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=300) as client:
        started = time.perf_counter()
        job = client.post("/v1/jobs/zip", files={"archive": ("bench.zip", archive.getvalue(), "application/zip")})
        job.raise_for_status()
        while (state := client.get(f"/v1/jobs/{job.json()['id']}").json())["status"] in ("queued", "running"):
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    each = seconds / len(paths) * 1000
    return f"zip job: {state['processed']} photos {state['status']} in {seconds:.2f} s, {each:.1f} ms a photo"


@contextmanager
def running_server(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen]]:
    """A uvicorn server on a free port with `env`, once ready: its URL and process."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "inference_api.app:create_app", "--factory", "--port", str(port)]
    server = subprocess.Popen([*command, "--log-level", "warning"], cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("server did not become ready")
        yield url, server
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--workers",
        type=int,
        default=Settings.model_fields["detect_workers"].default,
        help="ENVWATCH_DETECT_WORKERS (default: the service's)",
    )
    parser.add_argument("--queue", type=int, default=32, help="ENVWATCH_DETECT_QUEUE")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--job", type=int, default=120, help="photos in one zip batch job (0: none)")
    parser.add_argument(
        "--runtime",
        nargs="+",
        default=["onnxruntime", "auto"],
        help="ENVWATCH_RUNTIME of each server in turn (model/networks.py; default: the reference, then the default)",
    )
    args = parser.parse_args()

    photos = [(p.name, p.read_bytes()) for p in sorted(args.photos.glob("*.jpg"))[:32]]
    if not photos:
        raise SystemExit(f"no photos in {args.photos}")
    key = "ew_bench_" + secrets.token_urlsafe(16)
    model = str(args.model or promoted_model())
    print(
        f"model={model} workers={args.workers} queue={args.queue} requests/level={args.requests} cpus={os.cpu_count()}"
    )
    print(f"{'runtime':<14} {'clients':>7} {'ok':>5} {'503':>5} {'other':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for runtime in args.runtime:
        with tempfile.TemporaryDirectory(prefix="envwatch-bench-") as tmp:
            env = {
                **os.environ,
                "ENVWATCH_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                "ENVWATCH_DATA_DIR": f"{tmp}/images",
                "ENVWATCH_MODEL_PATH": model,
                "ENVWATCH_ADMIN_KEY": key,
                "ENVWATCH_DETECT_WORKERS": str(args.workers),
                "ENVWATCH_DETECT_QUEUE": str(args.queue),
                "ENVWATCH_LOG_LEVEL": "WARNING",
                "ENVWATCH_RUNTIME": runtime,
            }
            with running_server(env) as (url, server):
                with httpx.Client(base_url=url, headers={"X-API-Key": key}) as client:
                    chosen = client.get("/v1/model").json()["runtime"]
                run_level(url, key, photos, 1, 4)  # warm-up
                for level in args.levels:
                    r = run_level(url, key, photos, level, args.requests)
                    print(
                        f"{chosen:<14} {r['clients']:>7} {r['ok']:>5} {r['refused']:>5} {r['other']:>5} "
                        f"{r['rps']:>8.1f} {r['p50'] * 1000:>8.0f} {r['p95'] * 1000:>8.0f}"
                    )
                if args.job:
                    print(f"{chosen:<14} {run_job(url, key, args.photos, args.job)}")
                print(f"{chosen:<14} server peak RSS: {peak_rss_mib(server.pid):.0f} MiB")


if __name__ == "__main__":
    main()
