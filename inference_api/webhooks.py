"""Webhooks: HMAC-signed JSON events, delivered from a database outbox with exponential back-off.

`enqueue` adds an event to the transaction of the change it announces; `WebhookSender` (one
background thread per process) posts due events and reschedules failures at backoff * 2^n. On
PostgreSQL due rows are claimed with `FOR UPDATE SKIP LOCKED`, so several server processes never
send one event twice at the same time. Delivery is at-least-once: receivers deduplicate on
`X-Envwatch-Delivery`.

A receiver that is down (no answer, a timeout, 408, 429 or 5xx) must neither stall the queue nor
cost events: due events go oldest-due first (a retry does not jump ahead of new events), up to
`webhook_concurrency` at once, so a round lasts at most timeout * BATCH / concurrency. When a whole
round finds the receiver unavailable, the sender pauses (backoff doubling up to OUTAGE_MAX_PAUSE_S)
and then probes with a single event instead of spending a timeout on each; events are never given
up for an outage, only after `webhook_max_attempts` refusals (other 3xx/4xx). The first success
after an outage makes every pending event due at once, so the backlog drains as soon as the
receiver is back rather than on each event's own back-off.

Each request carries `X-Envwatch-Event`, `X-Envwatch-Delivery`, `X-Envwatch-Timestamp` and, with
a secret configured, `X-Envwatch-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from inference_api.models import WebhookDelivery, utcnow
from inference_api.settings import Settings

log = logging.getLogger("envwatch.webhooks")

MAX_DELAY_S = 600.0
"""Longest back-off of one event."""
OUTAGE_MAX_PAUSE_S = 60.0
"""Longest pause between probes of a receiver that is down: how long a recovered receiver waits at most."""
BATCH = 20
UNAVAILABLE_STATUSES = frozenset({408, 429})
"""Besides 5xx, the answers that mean "not now" (the receiver is busy or down), not "not this event"."""


@dataclass(frozen=True)
class Outcome:
    error: str | None
    unavailable: bool
    """The receiver could not take any event (no answer, timeout, 408/429/5xx), as opposed to refusing this one."""


def enqueue(session: Session, settings: Settings, event: str, data: dict[str, Any]) -> None:
    """Add `event` to the session's transaction; no-op when no webhook URL is configured."""
    if not settings.webhook_url:
        return
    delivery_id = str(uuid.uuid4())
    payload = {"id": delivery_id, "event": event, "at": utcnow().isoformat(), "data": data}
    session.add(
        WebhookDelivery(
            delivery_id=delivery_id,
            event=event,
            payload=payload,
            attempts=0,
            next_attempt_at=utcnow(),
            created_at=utcnow(),
        )
    )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Polls the outbox and delivers due events until `stop()`."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], poll_s: float = 0.5) -> None:
        self.settings, self.sessions, self.poll_s = settings, sessions, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="envwatch-webhooks", daemon=True)
        self._client = httpx.Client(timeout=settings.webhook_timeout_s)
        self._posters = ThreadPoolExecutor(settings.webhook_concurrency, thread_name_prefix="envwatch-webhook-post")
        self._outages = 0
        """Rounds in a row that found the receiver unavailable; while > 0, each round is a single probe."""
        self._paused_until = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.settings.webhook_timeout_s + 5)
        self._posters.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.deliver_due()
            except Exception:  # keep the thread alive through database hiccups
                log.exception("webhook delivery round failed")
                sent = 0
            if not sent:
                self._stop.wait(self.poll_s)

    def deliver_due(self) -> int:
        """Attempt due events once each (one probe while the receiver is down); returns how many were attempted."""
        if time.monotonic() < self._paused_until:
            return 0
        with self.sessions() as session, session.begin():
            query = (
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.delivered_at.is_(None),
                    WebhookDelivery.failed_at.is_(None),
                    WebhookDelivery.next_attempt_at <= utcnow(),
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(1 if self._outages else BATCH)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            due = session.scalars(query).all()
            if not due:
                return 0
            outcomes = list(self._posters.map(self._post, [self._request(d) for d in due]))
            for delivery, outcome in zip(due, outcomes, strict=True):
                self._record(delivery, outcome)
            if all(outcome.unavailable for outcome in outcomes):
                self._outages += 1
                pause = min(self.settings.webhook_backoff_s * 2 ** (self._outages - 1), OUTAGE_MAX_PAUSE_S)
                self._paused_until = time.monotonic() + pause
                log.warning("webhook receiver unavailable, pausing", extra={"pause_s": pause, "rounds": self._outages})
            elif any(outcome.error is None for outcome in outcomes) and self._outages:
                self._outages = 0
                self._resume(session)
            return len(due)

    def _resume(self, session: Session) -> None:
        """The receiver is back: every pending event is due now, whatever back-off the outage gave it."""
        now = utcnow()
        resumed = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.delivered_at.is_(None),
                WebhookDelivery.failed_at.is_(None),
                WebhookDelivery.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        log.info("webhook receiver back", extra={"rescheduled": resumed.rowcount})  # type: ignore[attr-defined]

    def _request(self, delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Envwatch-Event": delivery.event,
            "X-Envwatch-Delivery": delivery.delivery_id,
            "X-Envwatch-Timestamp": timestamp,
        }
        if self.settings.webhook_secret:
            headers["X-Envwatch-Signature"] = sign(self.settings.webhook_secret.get_secret_value(), timestamp, body)
        return body, headers

    def _post(self, request: tuple[bytes, dict[str, str]]) -> Outcome:
        """One POST, on a poster thread (it touches no session)."""
        assert self.settings.webhook_url
        body, headers = request
        try:
            response = self._client.post(self.settings.webhook_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(f"{type(exc).__name__}: {exc}", unavailable=True)
        status = response.status_code
        if status < 300:
            return Outcome(None, unavailable=False)
        return Outcome(f"HTTP {status}", unavailable=status >= 500 or status in UNAVAILABLE_STATUSES)

    def _record(self, delivery: WebhookDelivery, outcome: Outcome) -> None:
        delivery.attempts += 1
        now = utcnow()
        if outcome.error is None:
            delivery.delivered_at, delivery.last_error = now, None
            log.info(
                "webhook delivered",
                extra={"delivery": delivery.delivery_id, "event": delivery.event, "attempts": delivery.attempts},
            )
            return
        delivery.last_error = outcome.error
        if not outcome.unavailable and delivery.attempts >= self.settings.webhook_max_attempts:
            delivery.failed_at = now
            log.error(
                "webhook given up",
                extra={"delivery": delivery.delivery_id, "error": outcome.error, "attempts": delivery.attempts},
            )
            return
        delay = min(self.settings.webhook_backoff_s * 2 ** (delivery.attempts - 1), MAX_DELAY_S)
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        log.warning(
            "webhook failed, will retry",
            extra={
                "delivery": delivery.delivery_id,
                "error": outcome.error,
                "attempts": delivery.attempts,
                "retry_in_s": delay,
            },
        )
