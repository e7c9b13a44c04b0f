"""Webhooks: HMAC-signed events for new inspections and transitions, retried after receiver failures."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from service_helpers import Server, Upload, free_port

SECRET = "whsec-test-密钥"


class Receiver:
    """A local HTTP endpoint that fails the first `fail_first` deliveries of each event with 503."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    seen = sum(
                        h["X-Envwatch-Delivery"] == self.headers["X-Envwatch-Delivery"] for h, _, _ in receiver.requests
                    )
                    status = 503 if seen < receiver.fail_first else 200
                    receiver.requests.append((dict(self.headers), body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def delivered(self, event: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for h, b, s in self.requests if s == 200 and h["X-Envwatch-Event"] == event]

    def wait_for(self, event: str, count: int, timeout: float = 30) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.delivered(event)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(f"{event}: {len(self.delivered(event))} of {count} delivered in {timeout} s")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(fail_first=2)
    yield receiver
    receiver.httpd.shutdown()


@pytest.fixture(scope="module")
def server(make_server: Callable[..., Server], receiver: Receiver) -> Server:
    return make_server(
        {
            "ENVWATCH_WEBHOOK_URL": f"http://127.0.0.1:{receiver.port}/hook",
            "ENVWATCH_WEBHOOK_SECRET": SECRET,
            "ENVWATCH_WEBHOOK_BACKOFF_S": "0.2",
        }
    )


def verify(headers: dict[str, str], body: bytes) -> dict:
    expected = hmac.new(SECRET.encode(), headers["X-Envwatch-Timestamp"].encode() + b"." + body, hashlib.sha256)
    assert hmac.compare_digest(headers["X-Envwatch-Signature"], "sha256=" + expected.hexdigest())
    return json.loads(body)


def test_events_are_signed_retried_and_carry_the_change(
    server: Server, receiver: Receiver, inspector_key: str, fire_photos: list[Path], upload: Upload
) -> None:
    with server.client(inspector_key) as client:
        created = upload(client, [(fire_photos[0].name, fire_photos[0].read_bytes())], conf="0.001", region="华容县")
        assert created.status_code == 201
        inspection = created.json()
        finding_id = inspection["findings"][0]["id"]
        assert client.post(f"/v1/findings/{finding_id}/transitions", json={"to": "confirmed"}).status_code == 200
    ((headers, body),) = receiver.wait_for("inspection.created", 1)
    event = verify(headers, body)
    assert event["event"] == "inspection.created" and event["id"] == headers["X-Envwatch-Delivery"]
    assert event["data"]["inspection_id"] == inspection["id"] and event["data"]["region"] == "华容县"
    assert [f["id"] for f in event["data"]["findings"]] == [f["id"] for f in inspection["findings"]]
    with receiver.lock:
        attempts = [(h, b, s) for h, b, s in receiver.requests if h["X-Envwatch-Delivery"] == event["id"]]
    assert [s for _, _, s in attempts] == [503, 503, 200], "two failures, then delivered once"
    # Each retry is signed afresh over its own current timestamp: what a receiver checks against replays.
    assert all(verify(h, b)["id"] == event["id"] for h, b, _ in attempts)
    assert all(abs(int(h["X-Envwatch-Timestamp"]) - time.time()) < 120 for h, _, _ in attempts)
    ((headers, body),) = receiver.wait_for("finding.transitioned", 1)
    moved = verify(headers, body)["data"]
    assert (moved["finding_id"], moved["from"], moved["to"], moved["actor"]) == (
        finding_id,
        "candidate",
        "confirmed",
        "inspector-wang",
    )
