"""The base of every /api request body: text that no database column can hold is refused.

JSON may carry a NUL (``\\u0000``), which PostgreSQL refuses in text, and lone surrogates
(``\\ud800``), which no UTF-8 encoder takes (neither the database drivers nor the JSON response
that would echo them). Either answered 500 before; now the whole body is checked once, before
any field is validated, and refused as 400 ``REQUEST_INVALID``. The walk is iterative, so a body
nested as deep as the JSON parser allows cannot exhaust the stack here.

Imports: pydantic, stdlib.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator


def unstorable_text(value: object) -> str | None:
    """Why ``value`` (decoded JSON or form data) holds text no column can store; None if fine."""
    pending: list[object] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "text must not contain NUL characters"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "text must be valid Unicode (no lone surrogates such as \\ud800)"
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return None


class RequestBody(BaseModel):
    """Every /api request model derives from this."""

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        problem = unstorable_text(data)
        if problem is not None:
            raise ValueError(problem)
        return data
