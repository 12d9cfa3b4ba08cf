"""HTTP details of the /v2 API: Range and Content-Range parsing, pagination, blob streaming.

Every number here comes from a client: the patterns admit ASCII digits only (``[0-9]``, not
``str.isdigit``, which is true of "²"), and ``_offset`` bounds the digits before ``int()``,
which raises ValueError over 4,300 digits and is quadratic below that. Imports: domain,
starlette, stdlib.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request

from semreg.api.state import max_page_size
from semreg.domain.errors import PaginationInvalid, RangeInvalid, RangeNotSatisfiable

_BYTES_RANGE: Final = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# distribution-spec: "Content-Range: <start>-<end>"; Docker sends "bytes <start>-<end>/<size>" too.
_CONTENT_RANGE: Final = re.compile(r"^(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?$")
_DIGITS: Final = re.compile(r"[0-9]+")
# No blob, upload or page is larger: sizes are int64 in the image spec and BIGINT in the database.
MAX_OFFSET: Final = 2**63 - 1
_MAX_OFFSET_DIGITS: Final = len(str(MAX_OFFSET))
# A `last` marker is a repository name (at most 255 characters) or a tag (128).
_MAX_MARKER: Final = 255


def _offset(digits: str) -> int | None:
    """The value of ASCII ``digits`` (already matched by a ``[0-9]`` pattern); None above
    ``MAX_OFFSET``, which no blob or upload reaches."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > _MAX_OFFSET_DIGITS:
        return None
    value = int(significant)
    return value if value <= MAX_OFFSET else None


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
    # A number beyond MAX_OFFSET is beyond every blob: as large as the blob is enough.
    first = _offset(match.group(1)) if match.group(1) else None
    last = _offset(match.group(2)) if match.group(2) else None
    if not match.group(1):  # suffix range: the last N bytes
        length = size if last is None else last
        if length == 0:
            raise _unsatisfiable(header, size)
        # The last N bytes of an empty blob are the whole (empty) body: answer 200.
        return (max(size - length, 0), size) if size else None
    start = size if first is None else first
    end = size if last is None else min(last + 1, size)
    if start >= size or (match.group(2) and last is not None and last < start):
        raise _unsatisfiable(header, size)
    return start, end


def _unsatisfiable(header: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"range {header[:60]!r} is not satisfiable: the blob is {size} bytes", {"size": size}
    )


def is_content_range(header: str) -> bool:
    """Whether ``parse_content_range`` accepts ``header``."""
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        return False
    start, end = _offset(match.group(1)), _offset(match.group(2))
    return start is not None and end is not None and end >= start


def parse_content_range(header: str | None, size: int) -> tuple[int | None, int | None]:
    """``(start, length)`` of an upload chunk's ``Content-Range``; ``(None, None)`` when absent.

    ``size`` is what the upload holds: a refusal says where to resume, as every 416 must.

    Raises:
        RangeInvalid: malformed, or the end is before the start.
    """
    if header is None:
        return None, None
    match = _CONTENT_RANGE.fullmatch(header.strip())
    start = _offset(match.group(1)) if match else None
    end = _offset(match.group(2)) if match else None
    if start is None or end is None or end < start:
        raise RangeInvalid(
            f"invalid Content-Range {header[:60]!r}: expected <start>-<end>, "
            f"each at most {MAX_OFFSET}; the upload holds {size} bytes",
            {"header": header[:60], "size": size},
        )
    return start, end - start + 1


def upload_range(size: int) -> str:
    """The ``Range`` header of an upload holding ``size`` bytes (``0-0`` when empty)."""
    return f"0-{max(size - 1, 0)}"


def parse_page(request: Request) -> tuple[int | None, str | None]:
    """``n`` (at most ``server.max_page_size``) and ``last`` of a listing.

    Raises:
        PaginationInvalid: ``n`` is not a non-negative integer, or ``last`` is not printable
            ASCII of at most 255 characters (no name or tag is anything else).
    """
    raw_n = request.query_params.get("n")
    last = request.query_params.get("last") or None
    # distribution-spec: the marker is a name or tag; anything else would reach SQL (where
    # PostgreSQL refuses a NUL) only to match nothing.
    if last is not None and (
        len(last) > _MAX_MARKER or not (last.isascii() and last.isprintable())
    ):
        raise PaginationInvalid(
            f"invalid last={last[:20]!r}: expected a repository name or a tag",
            {"last": last[:20]},
        )
    if raw_n is None or raw_n == "":
        return None, last
    if not _DIGITS.fullmatch(raw_n):
        raise PaginationInvalid(
            f"invalid n={raw_n[:20]!r}: expected a non-negative integer", {"n": raw_n[:20]}
        )
    n = _offset(raw_n)
    limit = max_page_size(request)
    return limit if n is None else min(n, limit), last


def next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'


def announced_length(request: Request) -> int | None:
    """The ``Content-Length`` the client announced; None when absent or not a size.

    (The HTTP server refuses a malformed one before the app sees it; this is the second line.)
    """
    value = request.headers.get("content-length")
    if value is None or not _DIGITS.fullmatch(value):
        return None
    return _offset(value)


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
