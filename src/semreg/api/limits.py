"""Request limits applied before any route runs: idle bodies, and /api bodies.

- Every request body must keep arriving: a read that waits longer than ``body_idle_seconds``
  for the next bytes fails the request with 408 (a stalled upload stops holding a connection and
  its part of the upload; the client resumes).
- An /api request with a body is authenticated *before* a byte of the body is read, anonymous
  callers may not send one (no /api write is open to them), and the body may not exceed
  ``max_api_body_bytes``: 413, with the OCI error envelope, whether the size was announced or
  only found out while reading.

Imports: api, domain, starlette.
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from semreg.api import auth, errors
from semreg.domain.errors import ErrorCode, RegistryError

_MAX_LENGTH_DIGITS: Final = 19


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its limit; FastAPI re-raises HTTPExceptions
    from its body parsing, so the handler in ``api/errors.py`` answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the {limit} byte limit")
        self.limit = limit


class BodyStalled(HTTPException):
    """Raised from ``receive`` when no body bytes came for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"no request body bytes arrived for {seconds:g} seconds")


def _announced(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not (0 < len(value) <= _MAX_LENGTH_DIGITS) or not value.isascii():
        return None
    return int(value) if value.isdigit() else None


def _has_body(headers: Headers) -> bool:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return True
    return bool(_announced(headers))


class RequestLimits:
    """ASGI middleware enforcing the limits above."""

    def __init__(self, app: ASGIApp, *, body_idle_seconds: float, max_api_body_bytes: int) -> None:
        self.app = app
        self.idle = body_idle_seconds
        self.max_api_body = max_api_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        receive = self._idle_guard(receive)
        if scope["path"].startswith("/api/") and _has_body(headers):
            refusal = await self._refuse_api_body(scope, receive, headers)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            receive = self._size_guard(receive, self.max_api_body)
        await self.app(scope, receive, send)

    async def _refuse_api_body(
        self, scope: Scope, receive: Receive, headers: Headers
    ) -> JSONResponse | None:
        """The answer to an /api body that must not be read, or None to go on."""
        announced = _announced(headers)
        if announced is not None and announced > self.max_api_body:
            return _too_large(self.max_api_body)
        request = Request(scope, receive)
        try:
            # Cached on the request state: the route's dependency gets this same principal.
            principal = await auth.api_principal(request)
        except RegistryError as exc:
            response = await errors.registry_error_handler(request, exc)
            assert isinstance(response, JSONResponse)
            return response
        if principal.is_anonymous:
            return JSONResponse(
                errors.envelope(
                    ErrorCode.UNAUTHORIZED,
                    "authentication required: sign in (an API key as X-ApiKey, or Basic "
                    "api:<key>) before sending a request body",
                ),
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="semreg"'},
            )
        return None

    def _idle_guard(self, receive: Receive) -> Receive:
        done = False

        async def guarded() -> Message:
            nonlocal done
            if done:
                return await receive()  # after the body: only a disconnect can come
            try:
                # asyncio.timeout, not wait_for: no task per chunk of an upload.
                async with asyncio.timeout(self.idle):
                    message = await receive()
            except TimeoutError:
                raise BodyStalled(self.idle) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                done = True
            return message

        return guarded

    @staticmethod
    def _size_guard(receive: Receive, limit: int) -> Receive:
        total = 0

        async def guarded() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > limit:
                    raise BodyTooLarge(limit)
            return message

        return guarded


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        errors.envelope(
            ErrorCode.REQUEST_INVALID,
            f"the request body is larger than the {limit} byte limit (server.max_api_body_bytes)",
            {"limit": limit},
        ),
        status_code=413,
    )
