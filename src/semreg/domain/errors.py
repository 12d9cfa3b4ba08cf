"""Registry error model: one class per condition, each carrying its OCI error code.

Pure: stdlib only. HTTP statuses live in ``semreg.api.errors`` alone.

    RegistryError
    ├── BlobUnknown
    ├── BlobUploadInvalid
    │   └── RangeInvalid               (out-of-order chunk, bad Content-Range)
    ├── BlobUploadUnknown
    ├── DigestInvalid
    │   └── DigestUnsupported          (an algorithm other than sha256/sha512)
    ├── ManifestBlobUnknown
    ├── ManifestInvalid
    ├── ManifestTooLarge
    ├── ManifestUnknown
    ├── NameInvalid
    ├── NameUnknown
    │   └── FeedUnknown
    ├── SizeInvalid
    ├── Unauthorized
    ├── Denied
    │   └── FeedInactive
    ├── Unsupported
    │   ├── RangeNotSatisfiable        (blob GET with a Range beyond the blob)
    │   ├── RouteUnknown
    │   └── PaginationInvalid
    ├── TooManyRequests
    ├── TagInvalid
    │   └── ReleaseImmutable           (a release tag would move to another digest)
    ├── Conflict                       (/api: the resource exists or is still in use)
    ├── RequestInvalid                 (/api: a field is missing or malformed)
    └── InsufficientStorage            (the disk is full, over quota or read-only: 507)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar


class ErrorCode(StrEnum):
    """The distribution-spec error codes, plus TAG_INVALID, UNKNOWN and two /api codes."""

    BLOB_UNKNOWN = "BLOB_UNKNOWN"
    BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
    BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
    DIGEST_INVALID = "DIGEST_INVALID"
    MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
    NAME_INVALID = "NAME_INVALID"
    NAME_UNKNOWN = "NAME_UNKNOWN"
    SIZE_INVALID = "SIZE_INVALID"
    UNAUTHORIZED = "UNAUTHORIZED"
    DENIED = "DENIED"
    UNSUPPORTED = "UNSUPPORTED"
    TOOMANYREQUESTS = "TOOMANYREQUESTS"
    TAG_INVALID = "TAG_INVALID"
    UNKNOWN = "UNKNOWN"
    CONFLICT = "CONFLICT"
    REQUEST_INVALID = "REQUEST_INVALID"


_EMPTY: Mapping[str, object] = MappingProxyType({})


class RegistryError(Exception):
    """Base of every error a client may see; ``message`` is meant for a person."""

    code: ClassVar[ErrorCode] = ErrorCode.UNKNOWN

    def __init__(self, message: str, detail: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail: Mapping[str, object] = detail if detail is not None else _EMPTY


class BlobUnknown(RegistryError):
    code = ErrorCode.BLOB_UNKNOWN


class BlobUploadInvalid(RegistryError):
    code = ErrorCode.BLOB_UPLOAD_INVALID


class RangeInvalid(BlobUploadInvalid):
    """A chunk that does not start where the upload ends."""


class BlobUploadUnknown(RegistryError):
    code = ErrorCode.BLOB_UPLOAD_UNKNOWN


class DigestInvalid(RegistryError):
    code = ErrorCode.DIGEST_INVALID


class DigestUnsupported(DigestInvalid):
    """A well-formed digest whose algorithm this registry does not implement."""


class ManifestBlobUnknown(RegistryError):
    code = ErrorCode.MANIFEST_BLOB_UNKNOWN


class ManifestInvalid(RegistryError):
    code = ErrorCode.MANIFEST_INVALID


class ManifestTooLarge(ManifestInvalid):
    """A manifest body over the configured limit."""


class ManifestUnknown(RegistryError):
    code = ErrorCode.MANIFEST_UNKNOWN


class NameInvalid(RegistryError):
    code = ErrorCode.NAME_INVALID


class NameUnknown(RegistryError):
    code = ErrorCode.NAME_UNKNOWN


class FeedUnknown(NameUnknown):
    """No feed by that name."""


class SizeInvalid(RegistryError):
    code = ErrorCode.SIZE_INVALID


class Unauthorized(RegistryError):
    code = ErrorCode.UNAUTHORIZED


class Denied(RegistryError):
    code = ErrorCode.DENIED


class FeedInactive(Denied):
    """The feed exists but is switched off."""


class Unsupported(RegistryError):
    code = ErrorCode.UNSUPPORTED


class RangeNotSatisfiable(Unsupported):
    """A blob GET whose Range lies outside the blob."""


class RouteUnknown(Unsupported):
    """A path under /v2 that is not an endpoint of the API."""


class PaginationInvalid(Unsupported):
    """``n`` or ``last`` of a listing is malformed."""


class TooManyRequests(RegistryError):
    code = ErrorCode.TOOMANYREQUESTS


class TagInvalid(RegistryError):
    code = ErrorCode.TAG_INVALID


class ReleaseImmutable(TagInvalid):
    """A release tag already points at another digest (or did, before it was deleted)."""


class Conflict(RegistryError):
    code = ErrorCode.CONFLICT


class RequestInvalid(RegistryError):
    code = ErrorCode.REQUEST_INVALID


class InsufficientStorage(RegistryError):
    """The storage cannot take more bytes (full, over quota, read-only); retry once it can.

    Raised by the storage and metadata layers themselves: what it means does not depend on the
    use case.
    """
