"""Who is calling, and may they: credentials parsing, access decisions, challenges.

On /v2 a Bearer token opens exactly the repositories and actions of its ``access`` claim (the
Docker token specification), unless ``auth.token_acts_as_principal`` is set; HTTP Basic (``api`` +
key, or user + password) is checked against the principal directly. What a /v2 request needs
follows from its method alone, as in the reference registry (distribution's
``appendAccessRecords``): ``GET``/``HEAD`` need ``pull``, ``POST``/``PUT``/``PATCH`` need ``pull``
and ``push``, ``DELETE`` needs ``delete``; the challenge asks for exactly those actions, so a
client that caches one token per repository and method always holds the right one. On /api
every credential form stands for its principal. Decisions raise ``Unauthorized`` (no or bad
credentials: a new token or sign-in may help) or ``Denied``; the error handler turns them into
challenges.

Imports: domain, services, starlette.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Final
from urllib.parse import urlsplit

from fastapi import Depends
from starlette.requests import Request

from semreg.api.state import services_of
from semreg.domain.errors import Denied, Unauthorized
from semreg.domain.names import RepoPath
from semreg.domain.permissions import ACTION_PERMISSION, Permission, Principal
from semreg.domain.scopes import CATALOG, REGISTRY, REPOSITORY, allows, format_scope
from semreg.services.tokens import KEY_PREFIX, VerifiedToken

# distribution's appendAccessRecords: the actions a /v2 request needs, by its method. Writes need
# pull as well (clients HEAD before they push; an upload's status is a GET).
METHOD_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "GET": ("pull",),
    "HEAD": ("pull",),
    "POST": ("pull", "push"),
    "PUT": ("pull", "push"),
    "PATCH": ("pull", "push"),
    "DELETE": ("delete",),
}
# A method outside the table (none is routed today) needs everything.
_ALL_ACTIONS: Final = ("pull", "push", "delete")


def required_actions(method: str) -> tuple[str, ...]:
    """The scope actions a /v2 request with ``method`` needs on its repository."""
    return METHOD_ACTIONS.get(method.upper(), _ALL_ACTIONS)


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller of one request."""

    principal: Principal | None
    """Known for Basic, API keys and (in principal mode) tokens; None for strict tokens."""
    token: VerifiedToken | None = None


def service_name(request: Request) -> str:
    """The token ``service``: configured, else ``host:port`` as the client addressed us."""
    configured = request.app.state.auth_service_name
    if configured:
        return str(configured)
    public = request.app.state.public_url
    if public:
        return str(urlsplit(public).netloc)
    host: str = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return host


def realm(request: Request) -> str:
    base = request.app.state.public_url or f"{request.url.scheme}://{request.url.netloc}"
    return f"{base.rstrip('/')}/v2/_auth"


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """User name and secret of an ``Authorization: Basic`` header.

    Raises:
        Unauthorized: the header is malformed.
    """
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("malformed Basic credentials") from exc
    user, sep, secret = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed Basic credentials: expected user:password")
    return user, secret


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _principal_of_token(request: Request, token: VerifiedToken) -> Principal:
    principal = await services_of(request).tokens.principal_for_ref(
        token.principal_kind, token.principal_id, token.principal_nonce
    )
    if principal is None:
        raise Unauthorized("the key or user this token was issued to no longer exists")
    return principal


async def registry_caller(request: Request) -> Caller | None:
    """The caller of a /v2 request; None when no credentials were sent (anonymous).

    Raises:
        Unauthorized: credentials were sent but are not valid.
        TooManyRequests: too many failed sign-ins.
    """
    cached: Caller | None = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    services = services_of(request)
    caller: Caller | None = None
    token_text = bearer_token(request)
    if token_text is not None:
        token = services.tokens.verify(token_text, service_name(request))
        principal = None
        if request.app.state.token_acts_as_principal:
            principal = await _principal_of_token(request, token)
        caller = Caller(principal, token)
    elif (credentials := basic_credentials(request)) is not None:
        principal = await services.tokens.authenticate(*credentials, _client_address(request))
        caller = Caller(principal)
    request.state.caller = caller
    return caller


async def require(request: Request, path: RepoPath, actions: tuple[str, ...] | None = None) -> None:
    """Allow a /v2 request on a repository: by default it needs what its method needs.

    ``actions`` overrides the method's (the source of a cross-repository mount is only read); a
    tuple, so that a bare ``"pull"`` cannot pass for four one-letter actions.

    Raises:
        Unauthorized: no valid credentials, and they would be needed.
        Denied: the caller lacks a permission (or its token lacks a scope action).
    """
    needed = actions if actions is not None else required_actions(request.method)
    scope = format_scope(REPOSITORY, str(path), needed)
    try:
        caller = await registry_caller(request)
    except Unauthorized as exc:
        # Bad or expired credentials: the challenge says which scope to ask for again.
        raise Unauthorized(exc.message, {**exc.detail, "scope": scope}) from exc
    if caller is not None and caller.principal is None and caller.token is not None:
        granted = caller.token.access
        missing = [a for a in needed if not allows(granted, REPOSITORY, str(path), a)]
        if missing:
            raise Denied(
                f"the token does not grant {','.join(missing)} on {path}; "
                f"request a token for scope {scope}",
                {"scope": scope, "insufficient_scope": True},
            )
        # The token's principal must still exist and still hold the permissions: a revoked key,
        # a deleted user or a withdrawn permission ends its tokens within seconds.
        try:
            current = await _principal_of_token(request, caller.token)
        except Unauthorized as exc:
            raise Unauthorized(exc.message, {"scope": scope}) from exc
        withdrawn = [a for a in needed if not current.may(path.feed, ACTION_PERMISSION[a])]
        if not withdrawn:
            return
        raise Denied(
            f"{current.name} may no longer {','.join(withdrawn)} in feed {path.feed!r}",
            {"scope": scope},
        )
    principal = (
        caller.principal if caller is not None else await services_of(request).tokens.anonymous()
    )
    missing = [
        a for a in needed if principal is None or not principal.may(path.feed, ACTION_PERMISSION[a])
    ]
    if not missing:
        return
    if caller is None:
        raise Unauthorized(
            f"authentication required to {','.join(needed)} {path}", {"scope": scope}
        )
    raise Denied(
        f"{principal.name if principal else 'caller'} may not {','.join(missing)} "
        f"in feed {path.feed!r}",
        {"scope": scope},
    )


async def owner(request: Request) -> str:
    """Who an upload started by this request belongs to (its count is limited per owner)."""
    caller = await registry_caller(request)
    if caller is None:
        return "anonymous"
    if caller.principal is not None:
        return f"{caller.principal.kind}:{caller.principal.id}"
    assert caller.token is not None
    return f"{caller.token.principal_kind}:{caller.token.principal_id}"


async def require_signed_in(request: Request) -> Caller:
    """Any valid credentials (``GET /v2/``: how clients discover the token service).

    Raises:
        Unauthorized: no valid credentials.
    """
    caller = await registry_caller(request)
    if caller is None:
        raise Unauthorized("authentication required", {"scope": ""})
    return caller


async def may_read(request: Request, path: RepoPath) -> bool:
    """Whether the caller may pull from ``path`` (the source of a cross-repository mount)."""
    try:
        await require(request, path, ("pull",))
    except (Unauthorized, Denied):
        return False
    return True


async def catalog_principal(request: Request) -> Principal:
    """Whose view permissions filter the catalog.

    Raises:
        Unauthorized: no valid credentials.
    """
    caller = await require_signed_in(request)
    if caller.principal is not None:
        return caller.principal
    assert caller.token is not None
    if not allows(caller.token.access, REGISTRY, CATALOG, "*"):
        scope = format_scope(REGISTRY, CATALOG, ("*",))
        raise Denied(
            f"the token does not grant the catalog; request a token for scope {scope}",
            {"scope": scope, "insufficient_scope": True},
        )
    return await _principal_of_token(request, caller.token)


# --- /api --------------------------------------------------------------------------------------


async def api_principal(request: Request) -> Principal:
    """The principal of a /api request: X-ApiKey, ?key=, Basic, or Bearer (token or key).

    Raises:
        Unauthorized: credentials were sent but are not valid.
        TooManyRequests: too many failed sign-ins.
    """
    cached: Principal | None = getattr(request.state, "api_principal", None)
    if cached is not None:
        return cached
    services = services_of(request)
    key = request.headers.get("x-apikey") or request.query_params.get("key")
    bearer = bearer_token(request)
    principal: Principal
    if key:
        principal = await services.tokens.authenticate("api", key, _client_address(request))
    elif bearer is not None and bearer.startswith(KEY_PREFIX):
        principal = await services.tokens.authenticate("api", bearer, _client_address(request))
    elif bearer is not None:
        token = services.tokens.verify(bearer, service_name(request))
        principal = await _principal_of_token(request, token)
    elif (credentials := basic_credentials(request)) is not None:
        user, secret = credentials
        if (
            user != "api"
            and not secret.startswith(KEY_PREFIX)
            and not request.app.state.api_passwords
        ):
            raise Unauthorized("user:password sign-in is switched off on /api; use an API key")
        principal = await services.tokens.authenticate(user, secret, _client_address(request))
    else:
        principal = await services.tokens.anonymous()
    request.state.api_principal = principal
    return principal


def refuse(principal: Principal, message: str) -> Unauthorized | Denied:
    """The error for a missing permission: sign in (anonymous) or forbidden."""
    if principal.is_anonymous:
        return Unauthorized(f"authentication required: {message}")
    return Denied(f"{principal.name} may not {message}")


def require_feed(principal: Principal, feed: str, permission: Permission) -> None:
    """Raises: Unauthorized, Denied when ``principal`` lacks ``permission`` on ``feed``."""
    if not principal.may(feed, permission):
        raise refuse(principal, f"{permission} in feed {feed!r}")


def require_admin(principal: Principal, what: str) -> None:
    """Raises: Unauthorized, Denied unless ``principal`` has full control."""
    if not principal.is_admin:
        raise refuse(principal, f"{what} (needs full control)")


def require_feed_management(principal: Principal) -> None:
    """Raises: Unauthorized, Denied unless ``principal`` may manage feeds."""
    if not principal.may_manage_feeds():
        raise refuse(principal, "manage feeds (needs the feeds or full-control system API)")


PrincipalDep = Annotated[Principal, Depends(api_principal)]
