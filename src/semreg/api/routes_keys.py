"""API keys and users: ``/api/api-keys/*`` (ProGet's names and fields) and ``/api/users/*``.

A key's text is in the answer to ``create`` and nowhere else. Imports: api.auth, domain,
services, fastapi, pydantic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from semreg.api import auth
from semreg.api.bodies import RequestBody
from semreg.api.state import services_of
from semreg.domain.errors import NameUnknown
from semreg.domain.permissions import (
    Principal,
    PrincipalKind,
    parse_permissions,
    parse_system_apis,
)
from semreg.services.principals import KeySpec

keys = APIRouter(prefix="/api/api-keys", tags=["api-keys"])
users = APIRouter(prefix="/api/users", tags=["users"])
PrincipalDep = auth.PrincipalDep
# Key ids are INTEGER columns: PostgreSQL's is 32 bits, and a larger id reached it as a 500.
MAX_KEY_ID: Final = 2**31 - 1
KeyId = Annotated[int, Query(ge=1, le=MAX_KEY_ID, description="The id from /api/api-keys/list")]


class KeyCreate(RequestBody):
    model_config = ConfigDict(extra="ignore")

    type: str = Field(description="system, feed or personal")
    displayName: str | None = Field(default=None, max_length=200)  # noqa: N815
    description: str | None = None
    feed: str | None = None
    packagePermissions: list[str] = Field(default_factory=list)  # noqa: N815
    systemApis: list[str] = Field(default_factory=list)  # noqa: N815
    expiration: AwareDatetime | None = Field(
        default=None, description="With a time zone, e.g. 2030-01-01T00:00:00Z"
    )
    user: str | None = None

    @field_validator("expiration")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        # 9999-12-31T23:59:59-10:00 is a valid aware datetime that UTC cannot hold.
        try:
            return None if value is None else value.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("expiration is out of range once converted to UTC") from exc


class KeyOut(BaseModel):
    id: int
    type: str
    displayName: str | None  # noqa: N815
    description: str | None
    feed: str | None
    packagePermissions: list[str]  # noqa: N815
    systemApis: list[str]  # noqa: N815
    expiration: datetime | None
    user: str | None
    created: datetime
    prefix: str = Field(description="The first characters of the key, to recognise it")


def _may_create(principal: Principal, spec: KeySpec) -> bool:
    if principal.is_admin:
        return True
    # A signed-in user may make personal keys for itself.
    return (
        spec.type == "personal"
        and principal.kind is PrincipalKind.USER
        and (spec.user == principal.name)
    )


@keys.post("/create", response_class=PlainTextResponse)
async def create_key(body: KeyCreate, request: Request, principal: PrincipalDep) -> str:
    """Create an API key; the answer is the key's text, shown this once."""
    spec = KeySpec(
        type=body.type,
        display_name=body.displayName,
        description=body.description,
        feed=body.feed,
        permissions=parse_permissions(body.packagePermissions),
        system_apis=parse_system_apis(body.systemApis),
        user=body.user,
        expires_at=body.expiration,
    )
    if not _may_create(principal, spec):
        raise auth.refuse(principal, "create API keys (needs full control)")
    _row, text = await services_of(request).principals.create_key(spec)
    return text


@keys.get("/list")
async def list_keys(request: Request, principal: PrincipalDep) -> list[KeyOut]:
    """Every key (administrators) or the caller's own personal keys; never the key text."""
    if principal.is_anonymous:
        raise auth.refuse(principal, "list API keys")
    rows = await services_of(request).principals.list_keys()
    if not principal.is_admin:
        rows = [r for r in rows if r.type == "personal" and r.user == principal.name]
    return [
        KeyOut(
            id=r.id,
            type=r.type,
            displayName=r.display_name,
            description=r.description,
            feed=r.feed,
            packagePermissions=sorted(r.permissions),
            systemApis=sorted(r.system_apis),
            expiration=r.expires_at,
            user=r.user,
            created=r.created_at,
            prefix=r.prefix,
        )
        for r in rows
    ]


@keys.api_route("/delete", methods=["POST", "DELETE"])
async def delete_key(id: KeyId, request: Request, principal: PrincipalDep) -> dict[str, int]:
    """Revoke a key: it stops working at once (tokens it obtained expire on their own)."""
    services = services_of(request)
    row = await services.principals.find_key(id)
    own = row is not None and row.type == "personal" and row.user == principal.name
    if not principal.is_admin and not own:
        raise auth.refuse(principal, "revoke this API key")
    if row is None:
        raise NameUnknown(f"no API key with id {id}", {"id": id})
    await services.principals.delete_key(id)
    return {"deleted": id}


class UserCreate(RequestBody):
    name: str
    password: str = Field(min_length=8)
    systemApis: list[str] = Field(default_factory=list)  # noqa: N815


class UserOut(BaseModel):
    name: str
    systemApis: list[str]  # noqa: N815
    permissions: dict[str, list[str]] = Field(description='feed name ("*" = all) -> permissions')
    created: datetime


class Grant(RequestBody):
    user: str
    feed: str | None = Field(default=None, description="None: every feed")
    permissions: list[str] = Field(description="view, add, promote, delete; empty revokes")


@users.post("/create", status_code=201)
async def create_user(body: UserCreate, request: Request, principal: PrincipalDep) -> UserOut:
    auth.require_admin(principal, "create users")
    row = await services_of(request).principals.create_user(
        body.name, body.password, parse_system_apis(body.systemApis)
    )
    return UserOut(
        name=row.name, systemApis=sorted(row.system_apis), permissions={}, created=row.created_at
    )


@users.get("/list")
async def list_users(request: Request, principal: PrincipalDep) -> list[UserOut]:
    auth.require_admin(principal, "list users")
    return [
        UserOut(
            name=row.name,
            systemApis=sorted(row.system_apis),
            permissions={feed or "*": sorted(perms) for feed, perms in grants.items()},
            created=row.created_at,
        )
        for row, grants in await services_of(request).principals.list_users()
    ]


@users.api_route("/delete", methods=["POST", "DELETE"])
async def delete_user(name: str, request: Request, principal: PrincipalDep) -> dict[str, str]:
    auth.require_admin(principal, "delete users")
    await services_of(request).principals.delete_user(name)
    return {"deleted": name}


@users.post("/permissions")
async def grant(body: Grant, request: Request, principal: PrincipalDep) -> dict[str, object]:
    """Set a user's permissions on a feed (or on every feed when ``feed`` is null)."""
    auth.require_admin(principal, "grant permissions")
    permissions = parse_permissions(body.permissions)
    await services_of(request).principals.grant(body.user, body.feed, permissions)
    return {"user": body.user, "feed": body.feed, "permissions": sorted(permissions)}
