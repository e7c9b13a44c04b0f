"""Webhooks: HMAC-signed JSON events, delivered from a database outbox with exponential back-off.

`enqueue` adds an event to the transaction of the change it announces; `WebhookSender` (one
background thread per process) posts due events and reschedules failures at backoff * 2^n. On
PostgreSQL due rows are claimed with `FOR UPDATE SKIP LOCKED`, so several server processes never
send one event twice at the same time. Delivery is at-least-once: receivers deduplicate on
`X-Envwatch-Delivery`.

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
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inference_api.models import WebhookDelivery, utcnow
from inference_api.settings import Settings

log = logging.getLogger("envwatch.webhooks")

MAX_DELAY_S = 600.0
BATCH = 20


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

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.settings.webhook_timeout_s + 5)
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
        """Attempt every due event once; returns how many were attempted."""
        with self.sessions() as session, session.begin():
            query = (
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.delivered_at.is_(None),
                    WebhookDelivery.failed_at.is_(None),
                    WebhookDelivery.next_attempt_at <= utcnow(),
                )
                .order_by(WebhookDelivery.id)
                .limit(BATCH)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            due = session.scalars(query).all()
            for delivery in due:
                self._attempt(delivery)
            return len(due)

    def _attempt(self, delivery: WebhookDelivery) -> None:
        assert self.settings.webhook_url
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
        delivery.attempts += 1
        try:
            response = self._client.post(self.settings.webhook_url, content=body, headers=headers)
            error = None if response.status_code < 300 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        now = utcnow()
        if error is None:
            delivery.delivered_at, delivery.last_error = now, None
            log.info(
                "webhook delivered",
                extra={"delivery": delivery.delivery_id, "event": delivery.event, "attempts": delivery.attempts},
            )
            return
        delivery.last_error = error
        if delivery.attempts >= self.settings.webhook_max_attempts:
            delivery.failed_at = now
            log.error(
                "webhook given up",
                extra={"delivery": delivery.delivery_id, "error": error, "attempts": delivery.attempts},
            )
            return
        delay = min(self.settings.webhook_backoff_s * 2 ** (delivery.attempts - 1), MAX_DELAY_S)
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        log.warning(
            "webhook failed, will retry",
            extra={
                "delivery": delivery.delivery_id,
                "error": error,
                "attempts": delivery.attempts,
                "retry_in_s": delay,
            },
        )
