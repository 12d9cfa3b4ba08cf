"""The storage conformance suite on the in-memory store."""

from __future__ import annotations

import pytest

from semreg.storage.memory import MemoryBlobStore
from tests.storage_conformance import *  # noqa: F403


@pytest.fixture
def store() -> MemoryBlobStore:
    return MemoryBlobStore()
