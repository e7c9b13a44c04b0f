"""API keys with roles: admin, inspector, integration (read-only).

Keys are random tokens; only their sha256 is stored, so a leaked database does not leak keys.
A key is accepted as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Unknown keys get 401
and under-privileged ones 403, both without revealing whether the resource exists.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from inference_api import store
from inference_api.deps import StateDep
from inference_api.errors import ApiError
from inference_api.schemas import Role

log = logging.getLogger("envwatch.auth")

BOOTSTRAP_NAME = "bootstrap-admin"
ENV_PREFIX = "(env)"
"""The listed prefix of the key set by `ENVWATCH_ADMIN_KEY`: none of its characters."""
LOCAL_ADMIN_NAME = "local-admin"

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <api key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <api key>`")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (recorded as the actor of review transitions) and role."""

    key_id: int
    name: str
    role: Role


def new_key() -> str:
    """A fresh secret: 32 random bytes, URL-safe, with a recognisable prefix."""
    return "ew_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def authenticate(
    state: StateDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> Principal:
    """The caller's principal, or 401; both header forms are accepted."""
    key = (bearer.credentials if bearer else None) or header
    if not key:
        raise ApiError(
            401,
            "unauthenticated",
            "an API key is required (Authorization: Bearer <key> or X-API-Key)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    digest = hash_key(key.strip())
    with state.sessions() as session:
        row = store.active_key_by_hash(session, digest)
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        raise ApiError(
            401, "unauthenticated", "the API key is unknown or revoked", headers={"WWW-Authenticate": "Bearer"}
        )
    return Principal(row.id, row.name, Role(row.role))


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency admitting only `roles`; everybody else authenticated gets 403."""

    def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise ApiError(403, "forbidden", f"this needs one of the roles: {allowed}")
        return principal

    return dependency


Reader = Annotated[Principal, Depends(require(Role.admin, Role.inspector, Role.integration))]
Writer = Annotated[Principal, Depends(require(Role.admin, Role.inspector))]
Admin = Annotated[Principal, Depends(require(Role.admin))]


def bootstrap_keys(sessions: sessionmaker[Session], admin_key: str | None, create_local_admin: bool) -> str | None:
    """Make sure an admin can log in.

    With `ENVWATCH_ADMIN_KEY` set, (re)registers it as `bootstrap-admin`, unless that key was
    revoked: a key revoked because it leaked must not come back with the next restart. Otherwise
    (or then), when no active admin key exists and `create_local_admin` is on (the embedded
    `envwatch serve` default), creates one, stores its hash and returns the key so it is printed
    exactly once. Nothing of an operator's own key is kept but its hash: its listed prefix is
    `(env)`, as a few characters of a short chosen key would shorten a search for the rest.
    """
    with sessions() as session, session.begin():
        if admin_key:
            kept = store.upsert_named_key(session, BOOTSTRAP_NAME, Role.admin.value, hash_key(admin_key), ENV_PREFIX)
            if kept is not None:
                return None
            log.warning(
                "ENVWATCH_ADMIN_KEY was revoked through the API and stays revoked; set a new key",
                extra={"event": "admin_key_revoked"},
            )
        if not create_local_admin or store.count_active_admins(session) > 0:
            return None
        key = new_key()
        store.create_key(session, LOCAL_ADMIN_NAME, Role.admin.value, hash_key(key), key[:8])
    # Logged at WARNING so it shows at every usual log level; this is the only time it is shown.
    log.warning(
        "created a local admin API key (shown only now; only its hash is kept): %s",
        key,
        extra={"event": "local_admin_key_created"},
    )
    return key
