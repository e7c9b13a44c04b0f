"""A webhook receiver that hangs: no event is given up for it, few attempts are spent on it, and the
outbox drains as soon as it answers again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from service_helpers import Server, Upload, free_port

EVENTS = 4
OUTAGE_S = 10.0


class HangingReceiver:
    """Answers 200, except while `hanging` is set: then it reads the request and never answers."""

    def __init__(self) -> None:
        self.hanging = threading.Event()
        self.delivered: set[str] = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.hanging.is_set():
                    time.sleep(OUTAGE_S)  # far past the sender's timeout; then the connection just closes
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


@pytest.fixture(scope="module")
def receiver(database_url: str) -> Iterator[HangingReceiver]:
    """One per database backend (depending on `database_url` makes it follow that parameter)."""
    receiver = HangingReceiver()
    yield receiver
    receiver.httpd.shutdown()


@pytest.fixture(scope="module")
def server(make_server: Callable[..., Server], receiver: HangingReceiver) -> Server:
    return make_server(
        {
            "ENVWATCH_WEBHOOK_URL": f"http://127.0.0.1:{receiver.port}/hook",
            "ENVWATCH_WEBHOOK_TIMEOUT_S": "1",
            "ENVWATCH_WEBHOOK_BACKOFF_S": "0.5",
            "ENVWATCH_WEBHOOK_MAX_ATTEMPTS": "3",
        }
    )


def outbox(database_url: str) -> dict[str, int]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sa.text(
                    "SELECT count(*), count(delivered_at), count(failed_at), coalesce(sum(attempts), 0) "
                    "FROM webhook_deliveries"
                )
            ).one()
    finally:
        engine.dispose()
    return dict(zip(("events", "delivered", "given_up", "attempts"), map(int, row), strict=True))


def probes_within(seconds: float, timeout: float = 1.0, backoff: float = 0.5, cap: float = 60.0) -> int:
    """Attempts one paused sender makes in `seconds`: each times out, then waits backoff·2ⁿ (at most `cap`)."""
    count, at = 0, 0.0
    while at <= seconds:
        count += 1
        at += timeout + min(backoff * 2 ** (count - 1), cap)
    return count


def test_an_outage_costs_no_event_and_the_outbox_drains_when_the_receiver_is_back(
    server: Server, receiver: HangingReceiver, inspector_key: str, fire_photos: list[Path], upload: Upload
) -> None:
    receiver.hanging.set()
    started = time.monotonic()
    with server.client(inspector_key) as client:
        for i in range(EVENTS):
            photo = fire_photos[i % len(fire_photos)]
            assert upload(client, [(photo.name, photo.read_bytes())]).status_code == 201
    time.sleep(OUTAGE_S)
    during = outbox(server.database_url)
    elapsed = time.monotonic() - started
    receiver.hanging.clear()
    assert during["events"] == EVENTS and during["delivered"] == 0
    assert during["given_up"] == 0, f"events given up because the receiver was down: {during}"
    # One probe at a time, pausing 0.5, 1, 2, 4 s ... between them: not a timeout for every event in turn.
    # The uploads take longer on a loaded machine, so the bound is what that schedule allows in the time taken,
    # plus the first round, which may post every event already due at once.
    assert during["attempts"] <= probes_within(elapsed) + EVENTS - 1, (during, elapsed)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and outbox(server.database_url)["delivered"] < EVENTS:
        time.sleep(0.2)
    after = outbox(server.database_url)
    assert after["delivered"] == EVENTS and after["given_up"] == 0, after
    with receiver.lock:
        assert len(receiver.delivered) == EVENTS
