"""The most frequent /v2 reads, answered without the framework: manifest GET/HEAD, blob HEAD.

A pull is mostly these, and routing, dependency handling and exception middleware cost more
than the answer itself. This ASGI layer answers one of them only when it succeeds, through
the same functions the routes use (``auth.require``, ``routes_v2.find_manifest``, the
services): a refusal, a miss, a malformed name or any other request goes on to the
application unchanged, which then answers it, errors included, exactly as before. Nothing
is decided here that the routes do not decide. Requests with Basic credentials or a
``Range`` header always take the routes.

Imports: api, domain, starlette.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from semreg.api import auth, routes_v2
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


class FastReads:
    """Answers a manifest GET/HEAD or a blob HEAD that succeeds; passes on everything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
