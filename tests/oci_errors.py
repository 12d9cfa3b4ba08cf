"""What every refusal must look like: the documented OCI error envelope, code and status.

``DOCUMENTED`` is copied from the table in docs/api.md ("Error codes and statuses"), not from
``semreg.domain.errors``, so a code or status the documentation does not promise fails a test.
"""

from __future__ import annotations

from typing import Any

import httpx

DOCUMENTED: dict[str, frozenset[int]] = {
    "BLOB_UNKNOWN": frozenset({404}),
    "BLOB_UPLOAD_INVALID": frozenset({400, 416}),
    "BLOB_UPLOAD_UNKNOWN": frozenset({404}),
    "DIGEST_INVALID": frozenset({400}),
    "MANIFEST_BLOB_UNKNOWN": frozenset({400}),
    "MANIFEST_INVALID": frozenset({400, 413}),
    "MANIFEST_UNKNOWN": frozenset({404}),
    "NAME_INVALID": frozenset({400}),
    "NAME_UNKNOWN": frozenset({404}),
    "SIZE_INVALID": frozenset({400}),
    "UNAUTHORIZED": frozenset({401}),
    "DENIED": frozenset({403}),
    "UNSUPPORTED": frozenset({400, 404, 405, 416}),
    "TOOMANYREQUESTS": frozenset({429}),
    "TAG_INVALID": frozenset({400, 409}),
    "CONFLICT": frozenset({409}),
    "REQUEST_INVALID": frozenset({400}),
}
# What a server stack trace looks like in a body, in Python's words or in uvicorn's.
TRACEBACK_MARKERS = (b"Traceback (most recent call last)", b'File "/', b"Internal Server Error")


def assert_no_traceback(response: httpx.Response) -> None:
    for marker in TRACEBACK_MARKERS:
        assert marker not in response.content, response.text[:2000]


def assert_documented(response: httpx.Response) -> None:
    """Not a 500, no traceback, and a refusal is one documented error in the OCI envelope."""
    assert response.status_code < 500, response.text[:2000]
    assert_no_traceback(response)
    if response.status_code < 400 or response.request.method == "HEAD":
        return
    error = oci_error(response)
    assert response.status_code in DOCUMENTED[error["code"]], (response.status_code, error)


def oci_error(response: httpx.Response) -> dict[str, Any]:
    """The one error of an OCI error envelope (asserting its shape)."""
    assert response.headers.get("content-type", "").split(";")[0] == "application/json", (
        response.status_code,
        response.text[:500],
    )
    body = response.json()
    assert isinstance(body, dict)
    assert set(body) == {"errors"}, body
    assert isinstance(body["errors"], list)
    assert len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert set(error) == {"code", "message", "detail"}, error
    assert error["code"] in DOCUMENTED, error
    assert isinstance(error["message"], str)
    assert error["message"].strip()
    assert isinstance(error["detail"], dict)
    return dict(error)


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """``response`` is the documented refusal ``status``/``code``; returns the error."""
    assert response.status_code == status, response.text[:2000]
    assert_no_traceback(response)
    if response.request.method == "HEAD":
        assert response.content == b""
        return {}
    error = oci_error(response)
    assert error["code"] == code, error
    assert status in DOCUMENTED[code]
    return error
