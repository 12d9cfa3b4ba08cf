"""Release listing and purging for versioned feeds. Imports: domain, metadata."""

from __future__ import annotations

from semreg.domain.errors import ManifestUnknown, TagInvalid
from semreg.domain.inventory import ReleaseRecord
from semreg.domain.names import RepoPath
from semreg.domain.semver import find_version
from semreg.metadata import repo
from semreg.metadata.engine import Database
from semreg.services import lookup


class ReleaseService:
    """What a versioned repository has released."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, path: RepoPath) -> list[ReleaseRecord]:
        """Live releases, highest SemVer first, with the virtual tags on each.

        Raises:
            FeedUnknown, FeedInactive, NameUnknown: the repository is missing.
        """
        async with self.db.read() as conn:
            repository = await lookup.get_repository(conn, path)
            return await repo.list_releases(conn, repository.id)

    async def purge(self, path: RepoPath, version: str) -> None:
        """Free a deleted release's version so it can be published again with other content.

        Raises:
            FeedUnknown, FeedInactive, NameUnknown: the repository is missing.
            TagInvalid: ``version`` is not a release version.
            ManifestUnknown: no deleted release by that version.
        """
        if find_version(version) is None:
            raise TagInvalid(f"{version!r} is not a release version", {"tag": version})
        async with self.db.write() as conn:
            repository = await lookup.get_repository(conn, path)
            if not await repo.purge_retired_release(conn, repository.id, version):
                raise ManifestUnknown(
                    f"{path} has no deleted release {version} to purge (a live release must be "
                    "deleted first)",
                    {"tag": version},
                )
