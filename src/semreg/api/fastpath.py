"""The most frequent /v2 requests, without the framework: manifest GET/HEAD/PUT, blob HEAD.

A pull is mostly manifest GETs and HEADs and blob HEADs, a push ends in a manifest PUT, and
for them routing, dependency handling and the exception middleware cost more than the answer.

- GET/HEAD: answered here only when they succeed, through the same functions the routes use
  (``auth.require``, ``routes_v2.find_manifest``, the services). A refusal, a miss, a
  malformed name or anything else goes on to the application unchanged, which then answers
  it, errors included, exactly as before. Requests with Basic credentials or a ``Range``
  header always take the routes.
- PUT of a manifest: handed straight to the route function, with the path parameters the
  router would have given it (the same split: the last ``/manifests/``), and its errors
  rendered by the same handlers the application registers.

Nothing is decided here that the routes do not decide.

Imports: api, domain, starlette.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from semreg.api import auth, errors, routes_v2
from semreg.api.state import services_of
from semreg.domain.digest import parse_digest
from semreg.domain.errors import RegistryError
from semreg.domain.names import RepoPath, parse_repo_path


def _split(scope: Scope, marker: str) -> tuple[RepoPath, str] | None:
    """Name and last segment of ``/v2/<name><marker><segment>``, as the routes match it."""
    name, found, last = scope["path"][4:].rpartition(marker)
    if not found or not last or "/" in last or not name:
        return None
    raw: bytes = scope.get("raw_path") or b""
    if b"%" in raw:  # escaped characters: the routes' own checks decide
        return None
    return parse_repo_path(name), last


def _plain(scope: Scope) -> bool:
    """No ``Range`` (a partial answer) and no Basic credentials (whose check counts failed
    sign-ins, which must happen once per request, in the route)."""
    for key, value in scope["headers"]:
        if key == b"range" or (key == b"authorization" and value[:6].lower() == b"basic "):
            return False
    return True


def _encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]


class FastPath:
    """Answers manifest GET/HEAD and blob HEAD that succeed, and manifest PUTs; passes on
    everything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "PUT":
            name, found, reference = scope["path"][4:].rpartition("/manifests/")
            routed = scope["path"].startswith("/v2/") and found and name
            if routed and reference and "/" not in reference:
                scope["path_params"] = {"name": name, "reference": reference}
                response = await _put_manifest(Request(scope, receive))
                await response(scope, receive, send)
                return
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            if path.startswith("/v2/") and _plain(scope):
                try:
                    answer = await self._answer(scope)
                except RegistryError:
                    answer = None
                if answer is not None:
                    headers, body = answer
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
        if "/manifests/" in scope["path"]:
            found = _split(scope, "/manifests/")
            if found is None:
                return None
            request = Request(scope)
            await auth.require(request, found[0])
            head, body = await routes_v2.find_manifest(request, *found)
            return _encode(routes_v2.manifest_headers(head)), body
        if scope["method"] == "HEAD" and "/blobs/sha" in scope["path"]:
            found = _split(scope, "/blobs/")
            if found is None:
                return None
            request = Request(scope)
            path, text = found
            await auth.require(request, path)
            digest = parse_digest(text)
            size = await services_of(request).blobs.stat(path, digest)
            return _encode(routes_v2.blob_headers(digest, size)), b""
        return None


async def _put_manifest(request: Request) -> Response:
    try:
        return await routes_v2.put_manifest(request)
    except RegistryError as exc:
        return await errors.registry_error_handler(request, exc)
    except HTTPException as exc:
        return await errors.http_exception_handler(request, exc)
    except ClientDisconnect as exc:
        return await errors.client_disconnect_handler(request, exc)
