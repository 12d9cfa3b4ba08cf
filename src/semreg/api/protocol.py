"""The HTTP/1.1 protocol semreg serves with: uvicorn's httptools protocol, plus header limits.

uvicorn arms no timer while a request's headers arrive, so a client sending one header byte at a
time (or nothing, after connecting) held its connection forever; and httptools sets no size
limit on headers. Here a request's headers must be complete within ``header_timeout`` seconds
of its first byte (or of the connection, for the first request) and within ``max_header_bytes``;
otherwise the connection is closed (431 for oversized headers). Requests the parser refuses get
their 400 in the OCI error envelope instead of uvicorn's plain text, and so do connections
beyond ``server.max_connections`` their 503. ``create_app`` sets both from
the settings, in every worker process. Imports: uvicorn, stdlib.
"""

from __future__ import annotations

import asyncio
import json
from typing import ClassVar

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_REFUSAL = (
    b"HTTP/1.1 %s\r\n"
    b"content-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
)


def _refusal(status: bytes, message: str) -> bytes:
    """A whole response refusing a request the HTTP parser could not take, in the OCI envelope."""
    body = json.dumps({"errors": [{"code": "UNSUPPORTED", "message": message, "detail": {}}]})
    return _REFUSAL % (status, len(body), body.encode())


_BUSY_BODY = json.dumps(
    {
        "errors": [
            {
                "code": "TOOMANYREQUESTS",
                "message": "the server is at its connection limit (server.max_connections); "
                "retry in a moment",
                "detail": {},
            }
        ]
    }
).encode()


async def _busy(scope: Scope, receive: Receive, send: Send) -> None:
    """uvicorn's answer beyond ``limit_concurrency``, in the OCI envelope (its own is text)."""
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_BUSY_BODY)).encode()),
                (b"retry-after", b"1"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BUSY_BODY, "more_body": False})


# The protocol looks the 503 app up in its module when it answers: this is the one it finds.
setattr(httptools_impl, "service_unavailable", _busy)  # noqa: B010


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with a deadline and a size limit for request headers."""

    header_timeout: ClassVar[float] = 20.0
    max_header_bytes: ClassVar[int] = 64 * 1024

    _deadline: asyncio.TimerHandle | None = None
    _header_bytes: int = 0
    _in_headers: bool = False
    _too_large: bool = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Headers still incomplete after this data: count it (httptools buffers an unfinished
        # header line whole, so an endless one must be cut off here).
        if self._in_headers and not self.transport.is_closing():
            self._count(len(data), raising=False)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count(len(name) + len(value) + 4)

    def _count(self, size: int, *, raising: bool = True) -> None:
        self._header_bytes += size
        if self._header_bytes <= self.max_header_bytes or self._too_large:
            return
        self._too_large = True
        if raising:
            # From a parser callback: httptools stops and uvicorn calls send_400_response.
            raise ValueError("request headers too large")
        self.send_400_response("request headers too large")

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own refusal is plain text: answer malformed requests in the OCI envelope.
        self._disarm()
        if self._too_large:
            answer = _refusal(b"431 Request Header Fields Too Large", "request headers too large")
        else:
            answer = _refusal(b"400 Bad Request", f"invalid HTTP request: {msg.rstrip('.')}")
        self.transport.write(answer)
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._in_headers = True
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy and not self.transport.is_closing():
            self.transport.close()
