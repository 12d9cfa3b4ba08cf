"""The input limits of ``server`` (issue 9): defaults, environment names and their bounds."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from semreg.config import load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SEMREG_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    server = load_settings().server
    assert server.max_manifest_references == 4096
    assert server.max_page_size == 10_000


def test_environment_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMREG_SERVER__MAX_MANIFEST_REFERENCES", "12")
    monkeypatch.setenv("SEMREG_SERVER__MAX_PAGE_SIZE", "34")
    server = load_settings().server
    assert (server.max_manifest_references, server.max_page_size) == (12, 34)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_manifest_references", 0),
        # Each reference is one parameter of one query; PostgreSQL takes at most 32,767.
        ("max_manifest_references", 10_001),
        ("max_page_size", 0),
        ("max_page_size", 100_001),
    ],
)
def test_out_of_bounds_values_are_refused_at_start(name: str, value: int) -> None:
    with pytest.raises(ValidationError):
        load_settings(server={name: value})
