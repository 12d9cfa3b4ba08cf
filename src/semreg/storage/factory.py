"""Choose the blob store from settings, in one place. Imports: config, storage."""

from __future__ import annotations

from pathlib import Path

from semreg.storage.base import BlobStore
from semreg.storage.filesystem import FilesystemBlobStore


def open_blob_store(root: Path) -> BlobStore:
    """The configured blob store (filesystem today; S3 joins here)."""
    return FilesystemBlobStore(root)
