"""The floor under semreg's GET figures: apps that answer one fixed manifest and do nothing else.

``asgi_app`` is a bare ASGI callable; ``starlette_app`` is a Starlette app with one route. Both
answer every request (the Starlette one: GET or HEAD of ``/v2/<name>/manifests/<reference>``)
with the same fixed manifest of about 450 bytes and the headers semreg answers a manifest GET
with (``Content-Type``, ``Content-Length``, ``Docker-Content-Digest``, ``ETag``,
``Docker-Distribution-API-Version``, ``X-Request-Id``; uvicorn adds ``Date`` and ``Server`` to
both). What the floor measures is uvicorn, uvloop and httptools (and Starlette's routing and
``Response``) on this machine: no registry in Python can answer faster. Run them as semreg runs::

    python -m uvicorn bench.floor:asgi_app --loop uvloop --http httptools --no-access-log
    python -m uvicorn bench.floor:starlette_app --loop uvloop --http httptools --workers 2

Imports: stdlib and starlette only (no semreg, no test code), so the app is all the process does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MEDIA_TYPE: Final = "application/vnd.oci.image.manifest.v1+json"


def _descriptor(media_type: str, seed: bytes, size: int) -> dict[str, object]:
    return {
        "digest": f"sha256:{hashlib.sha256(seed).hexdigest()}",
        "mediaType": media_type,
        "size": size,
    }


# The shape of bench.content.manifest: one config, one layer, one annotation.
BODY: Final = json.dumps(
    {
        "annotations": {"org.example.bench.number": "0"},
        "config": _descriptor("application/vnd.oci.image.config.v1+json", b"floor config", 145),
        "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", b"floor", 4284)],
        "mediaType": MEDIA_TYPE,
        "schemaVersion": 2,
    },
    separators=(",", ":"),
    sort_keys=True,
).encode()
DIGEST: Final = f"sha256:{hashlib.sha256(BODY).hexdigest()}"
HEADERS: Final = {
    "Content-Type": MEDIA_TYPE,
    "Content-Length": str(len(BODY)),
    "Docker-Content-Digest": DIGEST,
    "ETag": f'"{DIGEST}"',
    "Docker-Distribution-API-Version": "registry/2.0",
    "X-Request-Id": "0123456789abcdef",
}
_RAW_HEADERS: Final = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every HTTP request with the fixed manifest (HEAD: the headers only)."""
    if scope["type"] == "lifespan":
        while True:  # nothing to start or stop
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": _RAW_HEADERS})
    body = b"" if scope["method"] == "HEAD" else BODY
    await send({"type": "http.response.body", "body": body})


async def _manifest(request: Request) -> Response:
    # Starlette's Response drops the body of a HEAD answer and keeps its Content-Length.
    return Response(BODY, headers=HEADERS)


starlette_app = Starlette(
    routes=[Route("/v2/{name:path}/manifests/{reference}", _manifest, methods=["GET", "HEAD"])]
)
