"""A campaign played out over two weeks with a clock the test controls, for the bulletin tests.

The server runs in this process (uvicorn in a thread, `create_app` as in production, real HTTP,
real database, real detector) so that the service clock (inference_api/clock.py) can be set to
the Monday, Wednesday or the week after that a step of the campaign happens on. Times below are
Asia/Shanghai wall-clock times, as the offices write them.

The ledger it builds (青山县; townships 城关镇 with 东村 and 西村, 河口镇 with 南村, 石桥乡 with 北村):

| finding | where     | raised      | ordered, deadline    | then                                      |
|---------|-----------|-------------|----------------------|-------------------------------------------|
| a       | 城关镇东村 | W47 Mon     | Mon, 3 days → 11-19  | rectified Wed (early), closed Thu         |
| b       | 河口镇南村 | W47 Mon     | Mon, date 11-20      | overdue from Sat; rectified W48 Tue, late |
| c       | 石桥乡北村 | W47 Mon     | Mon, 2 days → 11-18  | rectified Tue, on time                    |
| d       | 城关镇东村 | W48 Mon     | –                    | confirmed: a recurrence of a              |
| e1      | 城关镇西村 | W48 Mon     | Mon, date 11-24      | overdue Wed; rectified Wed 10:00, late    |
| e2      | 城关镇西村 | W48 Mon     | Mon, 1 day → 11-24   | never rectified: still overdue            |
| f       | 河口镇南村 | W48 Tue     | Tue, date 11-27      | rectified Thu, on time                    |
| x       | 河口镇南村 | W48 Tue     | –                    | dismissed: not a problem                  |

Each is the top finding of its own upload (conf 0.001, so every photo raises some); the other
findings of those uploads stay candidates, which the bulletin counts as awaiting review.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from PIL import Image
from service_helpers import GARBAGE_IMAGES, free_port

from inference_api import clock
from inference_api.app import create_app
from inference_api.settings import Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
REGION = "青山县"
ADMIN_KEY = "ew_test_campaign_admin"


def local(text: str) -> datetime:
    """`2026-11-16 09:00` in Asia/Shanghai, as an aware UTC time."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).astimezone(UTC)


class Clock:
    """The service clock during the campaign: stands still until the test moves it."""

    def __init__(self, start: str) -> None:
        self.at = local(start)

    def __call__(self) -> datetime:
        return self.at

    def set(self, text: str) -> None:
        self.at = local(text)


class Hooks:
    """A webhook receiver that keeps every event's JSON body."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                hooks.events.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def of(self, event: str) -> list[dict]:
        return [e["data"] for e in list(self.events) if e["event"] == event]


@dataclass
class Campaign:
    url: str
    clock: Clock
    hooks: Hooks
    settings: Settings
    ids: dict[str, int] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    candidates: dict[str, int] = field(default_factory=dict)
    """Findings of each step's upload left as candidates (all but the one the step reviews)."""

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=120)

    def wait_until(self, check: object, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"not in {timeout} s: {what}")


def plain_photo(index: int) -> bytes:
    """A shared garbage photo re-encoded without EXIF, so its finding is observed when the clock says."""
    source = sorted(GARBAGE_IMAGES.glob("*.jpg"))[index]
    out = io.BytesIO()
    Image.open(source).convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


@contextmanager
def in_process_server(database_url: str, root: Path, model: Path, start: str) -> Iterator[Campaign]:
    """The service on `database_url`, its clock at `start` (Asia/Shanghai) until the block ends."""
    fake = Clock(start)
    hooks = Hooks()
    settings = Settings(
        database_url=database_url,
        data_dir=root / "images",
        model_path=model,
        admin_key=ADMIN_KEY,
        webhook_url=f"http://127.0.0.1:{hooks.port}/hook",
        webhook_backoff_s=0.1,
        overdue_poll_s=0.05,
        timezone="Asia/Shanghai",
        deadline_days={"overflowing_garbage": 3, "exposed_garbage": 3, "burning": 3},
        log_level="WARNING",
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    with clock.using(fake):
        thread.start()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("in-process server not ready in 60 s")
        try:
            yield Campaign(url=url, clock=fake, hooks=hooks, settings=settings)
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            hooks.httpd.shutdown()


def _raise(c: Campaign, client: httpx.Client, name: str, photo: int, township: str, village: str) -> int:
    """Upload a photo at the clock's time; the top finding becomes `name`."""
    response = client.post(
        "/v1/inspections",
        files=[("files", (f"{name}.jpg", plain_photo(photo), "image/jpeg"))],
        data={"region": REGION, "township": township, "village": village, "conf": "0.001", "inspector": "王"},
    )
    assert response.status_code == 201, response.text
    findings = sorted(response.json()["findings"], key=lambda f: (-f["score"], f["id"]))
    assert findings, f"photo {photo} raised nothing at conf 0.001"
    c.ids[name], c.types[name], c.candidates[name] = findings[0]["id"], findings[0]["type"], len(findings) - 1
    return findings[0]["id"]


def _move(client: httpx.Client, finding_id: int, to: str, **extra: object) -> dict:
    response = client.post(f"/v1/findings/{finding_id}/transitions", json={"to": to, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def _rectify(client: httpx.Client, finding_id: int) -> dict:
    response = client.post(f"/v1/findings/{finding_id}/rectification", data={"note": "已清理"})
    assert response.status_code == 200, response.text
    return response.json()


def _order(client: httpx.Client, finding_id: int, **deadline: object) -> dict:
    _move(client, finding_id, "confirmed")
    return _move(client, finding_id, "rectification_ordered", **deadline)


def _overdue(client: httpx.Client, name_ids: list[int]) -> bool:
    return all(client.get(f"/v1/findings/{i}").json()["overdue"] for i in name_ids)


def play(c: Campaign) -> None:
    """Build the ledger of the module docstring, step by step on the controlled clock."""
    with c.client() as client:
        c.clock.set("2026-11-16 09:00")  # W47 Monday
        a = _raise(c, client, "a", 0, "城关镇", "东村")
        b = _raise(c, client, "b", 1, "河口镇", "南村")
        cc = _raise(c, client, "c", 2, "石桥乡", "北村")
        assert _order(client, a, deadline_days=3)["deadline"] == "2026-11-19"
        assert _order(client, b, deadline="2026-11-20")["deadline"] == "2026-11-20"
        assert _order(client, cc, deadline_days=2)["deadline"] == "2026-11-18"
        c.clock.set("2026-11-17 16:00")
        assert _rectify(client, cc)["rectified_late"] is False
        c.clock.set("2026-11-18 10:00")  # W47 Wednesday
        assert _rectify(client, a)["rectified_late"] is False
        c.clock.set("2026-11-19 10:00")
        _move(client, a, "closed")
        c.clock.set("2026-11-21 00:00")  # Saturday: b's deadline (Friday) has passed
        c.wait_until(lambda: _overdue(client, [b]), "b overdue on Saturday")

        c.clock.set("2026-11-23 09:00")  # W48 Monday
        d = _raise(c, client, "d", 0, "城关镇", "东村")
        _move(client, d, "confirmed")
        e1 = _raise(c, client, "e1", 3, "城关镇", "西村")
        e2 = _raise(c, client, "e2", 4, "城关镇", "西村")
        _order(client, e1, deadline="2026-11-24")
        assert _order(client, e2, deadline_days=1)["deadline"] == "2026-11-24"
        c.clock.set("2026-11-24 10:00")  # Tuesday
        assert _rectify(client, b)["rectified_late"] is True
        f = _raise(c, client, "f", 5, "河口镇", "南村")
        x = _raise(c, client, "x", 6, "河口镇", "南村")
        _move(client, x, "dismissed")
        _order(client, f, deadline="2026-11-27")
        c.clock.set("2026-11-25 08:00")  # Wednesday: e1 and e2 are overdue
        c.wait_until(lambda: _overdue(client, [e1, e2]), "e1 and e2 overdue on Wednesday")
        c.clock.set("2026-11-25 10:00")
        assert _rectify(client, e1)["rectified_late"] is True
        c.clock.set("2026-11-26 15:00")  # Thursday
        assert _rectify(client, f)["rectified_late"] is False
        c.clock.set("2026-12-01 10:00")  # W49 Tuesday: the W48 bulletin is made
