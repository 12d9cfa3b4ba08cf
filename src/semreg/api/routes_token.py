"""The Docker token endpoint: ``GET /v2/_auth?service=&scope=...`` with optional Basic auth.

The answer follows the Docker token specification: ``token``/``access_token`` (the same JWT),
``expires_in`` and ``issued_at``. The grant is the intersection of what was asked for and what
the principal may do; a partial grant is not an error. Imports: api.auth, domain, starlette.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from semreg.api.auth import basic_credentials, service_name
from semreg.api.state import services_of
from semreg.domain.errors import RequestInvalid
from semreg.domain.scopes import Access, parse_scope


async def issue_token(request: Request) -> Response:
    services = services_of(request)
    ours = service_name(request)
    asked = request.query_params.get("service")
    if asked and asked != ours:
        raise RequestInvalid(
            f"this registry is service {ours!r}, not {asked!r}", {"service": asked}
        )
    requested: list[Access] = []
    for scope in request.query_params.getlist("scope"):
        requested += parse_scope(scope)
    credentials = basic_credentials(request)
    if credentials is None:
        principal = await services.tokens.anonymous()
    else:
        client = request.client.host if request.client else "-"
        principal = await services.tokens.authenticate(*credentials, client)
    issued = services.tokens.issue(principal, requested, ours)
    body = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at.isoformat().replace("+00:00", "Z"),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


routes: list[BaseRoute] = [Route("/v2/_auth", issue_token, methods=["GET"])]
