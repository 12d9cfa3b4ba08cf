"""Crash points: named steps where a fault-injection test can make the process die at once.

Tests start ``semreg serve`` (or ``semreg gc``) with ``testing.crash_point`` naming a point and
``testing.crash_after`` saying on which visit it fires; the process then kills itself with
SIGKILL there, as a power cut or the OOM killer would, and the test checks what a restarted server
finds. When no point is armed (always, outside such tests) ``reach`` is one dictionary test.

The points, in the order a push meets them:

    upload.write          a batch of an upload's bytes written, not yet recorded
    upload.checkpointed   a chunk's progress recorded while it streams
    upload.recorded       a chunk recorded, its answer not yet sent (between chunks)
    upload.published      an upload's blob linked into place, its metadata not yet committed
    upload.finishing      inside the transaction that records the blob, before it commits
    manifest.stored       a manifest's bytes stored, its transaction not yet begun
    manifest.committing   inside a manifest's transaction (tags and virtual tags written)
    promotion.committing  inside a promotion's transaction
    gc.deleting           collection deleted a blob's bytes, before its transaction commits

Only the composition roots arm points. Imports: stdlib only.
"""

from __future__ import annotations

import os
import signal
from typing import Final

POINTS: Final = frozenset(
    {
        "upload.write",
        "upload.checkpointed",
        "upload.recorded",
        "upload.published",
        "upload.finishing",
        "manifest.stored",
        "manifest.committing",
        "promotion.committing",
        "gc.deleting",
    }
)

_armed: dict[str, int] = {}


def arm(point: str, after: int = 1) -> None:
    """Die at the ``after``-th visit of ``point``.

    Raises:
        ValueError: ``point`` is not one of ``POINTS``.
    """
    if point not in POINTS:
        raise ValueError(f"unknown crash point {point!r}; known: {', '.join(sorted(POINTS))}")
    _armed[point] = max(after, 1)


def reach(point: str) -> None:
    """Pass ``point``; kill this process if a test armed it for this visit."""
    if not _armed or point not in _armed:
        return
    _armed[point] -= 1
    if _armed[point] <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
