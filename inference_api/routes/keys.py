"""`/v1/keys` (admin): create, list and revoke API keys; `/v1/me`: who am I."""

from __future__ import annotations

from fastapi import APIRouter

from inference_api import store
from inference_api.auth import Admin, Reader, hash_key, new_key
from inference_api.deps import IdPath, SessionDep
from inference_api.errors import AUTH, ApiError, responses
from inference_api.models import utcnow
from inference_api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, Me

router = APIRouter(prefix="/v1", tags=["keys"])


@router.get("/me", response_model=Me, responses=responses(*AUTH))
def me(principal: Reader) -> Me:
    return Me(name=principal.name, role=principal.role)


@router.post("/keys", status_code=201, response_model=ApiKeyCreated, responses=responses(*AUTH, 422))
def create_key(body: ApiKeyCreate, session: SessionDep, _: Admin) -> ApiKeyCreated:
    """A new key; the secret is in this response only (the server keeps its sha256)."""
    key = new_key()
    with session.begin():
        row = store.create_key(session, body.name, body.role.value, hash_key(key), key[:8])
    return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=key)


@router.get("/keys", response_model=list[ApiKeyOut], responses=responses(*AUTH))
def list_keys(session: SessionDep, _: Admin) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(row) for row in store.list_keys(session)]


@router.delete("/keys/{key_id}", response_model=ApiKeyOut, responses=responses(*AUTH, 404, 409, 422))
def revoke_key(key_id: IdPath, session: SessionDep, principal: Admin) -> ApiKeyOut:
    """Revoke a key (it stops working at once); revoking your own key is refused to avoid lock-out."""
    with session.begin():
        row = store.get_key(session, key_id)
        if row is None:
            raise ApiError(404, "not_found", f"no key {key_id}")
        if row.id == principal.key_id:
            raise ApiError(409, "own_key", "an admin cannot revoke the key it is using")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
    return ApiKeyOut.model_validate(row)
