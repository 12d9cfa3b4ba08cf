"""HTTP details of the /v2 API: Range and Content-Range parsing, pagination, blob streaming.

Imports: domain, starlette, stdlib.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request

from semreg.domain.errors import PaginationInvalid, RangeInvalid, RangeNotSatisfiable

_BYTES_RANGE: Final = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# distribution-spec: "Content-Range: <start>-<end>"; Docker sends "bytes <start>-<end>/<size>" too.
_CONTENT_RANGE: Final = re.compile(r"^(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?$")
MAX_PAGE: Final = 10_000


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``[start, end)`` a ``Range: bytes=`` header asks for; None means the whole blob.

    Multi-range and malformed headers are ignored (RFC 9110 allows serving the whole body).

    Raises:
        RangeNotSatisfiable: the range lies outside the blob.
    """
    if not header:
        return None
    match = _BYTES_RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            raise _unsatisfiable(header, size)
        # The last N bytes of an empty blob are the whole (empty) body: answer 200.
        return (max(size - length, 0), size) if size else None
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(header, size)
    return start, end


def _unsatisfiable(header: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"range {header!r} is not satisfiable: the blob is {size} bytes", {"size": size}
    )


def parse_content_range(header: str | None) -> tuple[int, int] | None:
    """``(start, length)`` of an upload chunk's ``Content-Range``; None when absent.

    Raises:
        RangeInvalid: malformed, or the end is before the start.
    """
    if header is None:
        return None
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None or int(match.group(2)) < int(match.group(1)):
        raise RangeInvalid(
            f"invalid Content-Range {header[:60]!r}: expected <start>-<end>",
            {"header": header[:60]},
        )
    start, end = int(match.group(1)), int(match.group(2))
    return start, end - start + 1


def upload_range(size: int) -> str:
    """The ``Range`` header of an upload holding ``size`` bytes (``0-0`` when empty)."""
    return f"0-{max(size - 1, 0)}"


def parse_page(request: Request) -> tuple[int | None, str | None]:
    """``n`` and ``last`` of a listing.

    Raises:
        PaginationInvalid: ``n`` is not a non-negative integer.
    """
    raw_n = request.query_params.get("n")
    last = request.query_params.get("last") or None
    if raw_n is None or raw_n == "":
        return None, last
    if not raw_n.isdigit():
        raise PaginationInvalid(f"invalid n={raw_n[:20]!r}: expected a non-negative integer")
    return min(int(raw_n), MAX_PAGE), last


def next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'


def announced_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, but no more than ``limit + 1`` bytes: enough to tell it is too large."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            break
    return bytes(body)


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, skipping empty chunks."""
    async for chunk in request.stream():
        if chunk:
            yield chunk
