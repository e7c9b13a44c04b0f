"""API keys and roles: who may do what, keys stored only hashed, bootstrap and first-start admin keys."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from service_helpers import Server, Upload

READ_ENDPOINTS = [
    "/v1/findings",
    "/v1/findings/summary",
    "/v1/inspections",
    "/v1/findings.csv",
    "/v1/findings.geojson",
    "/v1/model",
    "/v1/me",
]


def stored_key_rows(database_url: str) -> list[dict]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM api_keys"))]
    finally:
        engine.dispose()


@pytest.mark.parametrize("path", READ_ENDPOINTS + ["/v1/keys", "/v1/findings/1", "/v1/images/1/annotated.jpg"])
@pytest.mark.parametrize("key", [None, "ew_wrong", ""], ids=["missing", "wrong", "empty"])
def test_missing_or_wrong_key_is_401_without_data(server: Server, path: str, key: str | None) -> None:
    headers = {} if key is None else {"X-API-Key": key}
    response = httpx.get(server.url + path, headers=headers)
    assert response.status_code == 401
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["code"] == "unauthenticated"


def test_both_header_forms_are_accepted(server: Server, integration_key: str) -> None:
    bearer = httpx.get(server.url + "/v1/me", headers={"Authorization": f"Bearer {integration_key}"})
    header = httpx.get(server.url + "/v1/me", headers={"X-API-Key": integration_key})
    assert bearer.status_code == header.status_code == 200
    assert bearer.json() == header.json() == {"name": "gis-portal", "role": "integration"}


def test_roles_decide_what_a_key_may_do(
    server: Server, inspector_key: str, integration_key: str, fire_photos: list[Path], upload: Upload
) -> None:
    photo = [(fire_photos[0].name, fire_photos[0].read_bytes())]
    with server.client(integration_key) as integration, server.client(inspector_key) as inspector:
        for path in READ_ENDPOINTS:
            assert integration.get(path).status_code == 200, path
            assert inspector.get(path).status_code == 200, path
        refused = upload(integration, photo)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert upload(inspector, photo).status_code == 201
        for client in (integration, inspector):
            assert client.get("/v1/keys").status_code == 403
            assert client.post("/v1/keys", json={"name": "x", "role": "admin"}).status_code == 403
            assert client.delete("/v1/keys/1").status_code == 403
    with server.admin as admin:
        assert upload(admin, photo).status_code == 201
        names = [k["name"] for k in admin.get("/v1/keys").json()]
    assert "x" not in names


def test_keys_are_stored_hashed_and_revocation_is_immediate(server: Server, database_url: str) -> None:
    with server.admin as admin:
        created = admin.post("/v1/keys", json={"name": "tablet-07", "role": "inspector"})
        assert created.status_code == 201
        key, key_id = created.json()["key"], created.json()["id"]
        assert httpx.get(server.url + "/v1/me", headers={"X-API-Key": key}).json()["name"] == "tablet-07"
        listed = admin.get("/v1/keys").json()
        assert all("key" not in entry and "key_hash" not in entry for entry in listed)
        rows = stored_key_rows(database_url)
        row = next(r for r in rows if r["id"] == key_id)
        assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
        assert not any(key in str(value) for r in rows for value in r.values())
        assert server.admin_key and not any(server.admin_key in str(value) for r in rows for value in r.values())
        revoked = admin.delete(f"/v1/keys/{key_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        assert httpx.get(server.url + "/v1/me", headers={"X-API-Key": key}).status_code == 401
        assert admin.delete("/v1/keys/999999").status_code == 404
        own = next(k["id"] for k in listed if k["name"] == "bootstrap-admin")
        assert admin.delete(f"/v1/keys/{own}").status_code == 409
        assert admin.post("/v1/keys", json={"name": "", "role": "admin"}).status_code == 422
        assert admin.post("/v1/keys", json={"name": "n", "role": "superuser"}).status_code == 422


def test_a_revoked_admin_key_stays_revoked_after_a_restart(server: Server) -> None:
    """Revoking ENVWATCH_ADMIN_KEY's key (it leaked, say) must outlast the restart that reads it again."""
    with server.admin as admin:
        second = admin.post("/v1/keys", json={"name": "second-admin", "role": "admin"}).json()["key"]
        bootstrap = next(k for k in admin.get("/v1/keys").json() if k["name"] == "bootstrap-admin")
    assert bootstrap["prefix"] == "(env)", "no character of an operator's own key is kept"
    with server.client(second) as other:
        assert other.delete(f"/v1/keys/{bootstrap['id']}").status_code == 200
    server.stop()
    server.start()
    assert httpx.get(server.url + "/v1/me", headers={"X-API-Key": server.admin_key or ""}).status_code == 401
    assert "stays revoked" in server.log()
    assert httpx.get(server.url + "/v1/me", headers={"X-API-Key": second}).json()["name"] == "second-admin"


def test_first_start_without_config_creates_and_logs_one_admin_key(
    make_server: Callable[..., Server], database_url: str
) -> None:
    # This module's `server` already bootstrapped an admin; a fresh database shows first start.
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE role = 'admin'"))
    engine.dispose()
    first = make_server(admin_key=None)
    keys = re.findall(r"ew_[A-Za-z0-9_-]{20,}", first.log())
    assert len(set(keys)) == 1, first.log()
    local = keys[0]
    assert httpx.get(first.url + "/v1/me", headers={"X-API-Key": local}).json() == {
        "name": "local-admin",
        "role": "admin",
    }
    assert any(r["key_hash"] == hashlib.sha256(local.encode()).hexdigest() for r in stored_key_rows(database_url))
    first.stop()
    second = make_server(admin_key=None, env={"ENVWATCH_DATA_DIR": str(first.data_dir)})
    assert re.findall(r"ew_[A-Za-z0-9_-]{20,}", second.log()) == []
    assert httpx.get(second.url + "/v1/me", headers={"X-API-Key": local}).status_code == 200
