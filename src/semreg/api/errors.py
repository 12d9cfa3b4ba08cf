"""HTTP status per error class, the JSON error envelope and the one exception handler.

This module alone knows statuses. The status of an error class is found along its MRO, so a
subclass keeps its parent's OCI code but may have its own status (``RangeInvalid`` -> 416).
Imports: domain, starlette.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from semreg.domain import errors as e

logger = logging.getLogger(__name__)

STATUS: Mapping[type[e.RegistryError], int] = {
    e.RegistryError: 500,
    e.BlobUnknown: 404,
    e.BlobUploadInvalid: 400,
    e.RangeInvalid: 416,
    e.BlobUploadUnknown: 404,
    e.DigestInvalid: 400,
    e.ManifestBlobUnknown: 400,
    e.ManifestInvalid: 400,
    e.ManifestTooLarge: 413,
    e.ManifestUnknown: 404,
    e.NameInvalid: 400,
    e.NameUnknown: 404,
    e.SizeInvalid: 400,
    e.Unauthorized: 401,
    e.Denied: 403,
    e.Unsupported: 405,
    e.RangeNotSatisfiable: 416,
    e.RouteUnknown: 404,
    e.PaginationInvalid: 400,
    e.TooManyRequests: 429,
    e.TagInvalid: 400,
    e.ReleaseImmutable: 409,
    e.Conflict: 409,
    e.RequestInvalid: 400,
    e.InsufficientStorage: 507,
}


def status_of(error: e.RegistryError) -> int:
    for cls in type(error).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


def envelope(code: str, message: str, detail: object = None) -> dict[str, object]:
    return {"errors": [{"code": code, "message": message, "detail": detail or {}}]}


def _challenge(request: Request, error: e.RegistryError) -> str | None:
    scope = error.detail.get("scope")
    if not request.url.path.startswith("/v2"):
        return 'Basic realm="semreg"' if isinstance(error, e.Unauthorized) else None
    if not isinstance(error, e.Unauthorized) and not error.detail.get("insufficient_scope"):
        return None
    # Imported here: api.auth builds the realm and service from the request and app state.
    from semreg.api.auth import realm, service_name

    params = [f'realm="{realm(request)}"', f'service="{service_name(request)}"']
    if isinstance(scope, str) and scope:
        params.append(f'scope="{scope}"')
    if error.detail.get("insufficient_scope"):
        params.append('error="insufficient_scope"')
    return "Bearer " + ",".join(params)


def _extra_headers(request: Request, error: e.RegistryError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(error, e.Unauthorized | e.Denied):
        challenge = _challenge(request, error)
        if challenge is not None:
            headers["WWW-Authenticate"] = challenge
    retry_after = error.detail.get("retryAfter")
    if isinstance(error, e.TooManyRequests) and isinstance(retry_after, int):
        headers["Retry-After"] = str(retry_after)
    size = error.detail.get("size")
    if isinstance(error, e.RangeNotSatisfiable) and isinstance(size, int):
        headers["Content-Range"] = f"bytes */{size}"
    elif isinstance(error, e.RangeInvalid) and isinstance(size, int):
        # distribution-spec: a 416 on an upload tells the client where to resume
        headers["Location"] = request.url.path
        headers["Range"] = f"0-{max(size - 1, 0)}"
    return headers


async def registry_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, e.RegistryError)
    status = status_of(exc)
    if isinstance(exc, e.InsufficientStorage):
        # One line, no traceback: the cause is the disk, and the message names it.
        logger.error(
            "failed to store data",
            extra={"reason": exc.detail.get("reason"), "path": request.url.path},
        )
    elif status >= 500:
        logger.error("failed to handle request", exc_info=exc)
    else:
        logger.debug(
            "request refused",
            extra={"code": str(exc.code), "status": status, "path": request.url.path},
        )
    return JSONResponse(
        envelope(exc.code, exc.message, dict(exc.detail)),
        status_code=status,
        headers=_extra_headers(request, exc),
    )


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (404, 405) and the request limits' (408, 413), in the OCI
    envelope."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        code, message = e.ErrorCode.UNSUPPORTED, f"{request.method} is not supported on this path"
    elif exc.status_code == 404:
        code, message = e.ErrorCode.UNSUPPORTED, f"no endpoint at {request.url.path}"
    elif exc.status_code in (408, 413):
        upload = request.url.path.startswith("/v2/")
        code = e.ErrorCode.BLOB_UPLOAD_INVALID if upload else e.ErrorCode.REQUEST_INVALID
        message = str(exc.detail)
    elif 400 <= exc.status_code < 500:  # a body FastAPI or Starlette could not parse
        code, message = e.ErrorCode.REQUEST_INVALID, str(exc.detail)
    else:
        code, message = e.ErrorCode.UNKNOWN, str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 408:
        headers["Connection"] = "close"  # the rest of the body is not going to be read
    return JSONResponse(
        envelope(code, message), status_code=exc.status_code, headers=headers or None
    )


async def client_disconnect_handler(request: Request, exc: Exception) -> Response:
    """The client went away mid-body (a cancelled push): nothing failed on our side."""
    logger.info("client disconnected", extra={"method": request.method, "path": request.url.path})
    return Response(status_code=400)


def log_unexpected(scope: Scope, exc: Exception) -> None:
    logger.error(
        "failed to handle request",
        exc_info=exc,
        extra={"method": scope.get("method"), "path": scope.get("path")},
    )


def internal_error_response() -> Response:
    return JSONResponse(
        envelope(e.ErrorCode.UNKNOWN, "internal error; the server log has the details"),
        status_code=500,
    )
