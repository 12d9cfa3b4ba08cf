"""Feed management use cases: create, list, get, update, delete. Imports: domain, metadata."""

from __future__ import annotations

from semreg.domain.errors import Conflict, RequestInvalid
from semreg.domain.feeds import FEED_TYPES, Feed, FeedChanges
from semreg.domain.names import parse_feed_name
from semreg.domain.tags import TagPolicy, parse_permitted_tags
from semreg.metadata import repo
from semreg.metadata.engine import Database
from semreg.services import lookup, versioning


class FeedService:
    """Feeds of one server."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        name: str,
        feed_type: str,
        active: bool = True,
        description: str | None = None,
        policy: TagPolicy | None = None,
        anonymous_view: bool = False,
    ) -> Feed:
        """Create a feed.

        Raises:
            RequestInvalid: the name, feed type or a permitted-tag pattern is invalid.
            Conflict: a feed by that name exists.
        """
        parse_feed_name(name)
        policy = policy or TagPolicy()
        policy = TagPolicy(policy.versioning, parse_permitted_tags(policy.permitted))
        if feed_type not in FEED_TYPES:
            raise RequestInvalid(
                f"unsupported feedType {feed_type!r}: semreg serves container feeds, use 'docker'",
                {"feedType": feed_type},
            )
        async with self.db.write() as conn:
            if await repo.find_feed(conn, name) is not None:
                raise Conflict(f"feed {name!r} already exists", {"feed": name})
            try:
                return await repo.create_feed(
                    conn, name, feed_type, active, description, policy, anonymous_view
                )
            except repo.IntegrityConflict as exc:
                raise Conflict(f"feed {name!r} already exists", {"feed": name}) from exc

    async def list(self) -> list[Feed]:
        async with self.db.read() as conn:
            return await repo.list_feeds(conn)

    async def get(self, name: str) -> Feed:
        """A feed, active or not.

        Raises:
            FeedUnknown: no such feed.
        """
        async with self.db.read() as conn:
            return await lookup.get_feed(conn, name, require_active=False)

    async def update(self, name: str, changes: FeedChanges) -> Feed:
        """Change a feed's settings; ``None`` fields keep their value.

        Switching Container Versioning on computes the virtual tags of the releases already in
        the feed; switching it off leaves the virtual tags where they are, as ordinary tags.

        Raises:
            FeedUnknown: no such feed.
            RequestInvalid: a permitted-tag pattern is invalid.
        """
        if changes.permitted_tags is not None:
            parse_permitted_tags(changes.permitted_tags)
        async with self.db.write() as conn:
            feed = await lookup.get_feed(conn, name, require_active=False)
            updated = await repo.update_feed(conn, feed.id, changes)
            if updated.policy.versioning and not feed.policy.versioning:
                await versioning.enable(conn, updated)
            elif feed.policy.versioning and not updated.policy.versioning:
                await versioning.disable(conn, updated)
            return updated

    async def delete(self, name: str, force: bool = False) -> None:
        """Delete a feed; one that still holds images needs ``force``.

        Raises:
            FeedUnknown: no such feed.
            Conflict: the feed holds images and ``force`` is not set.
        """
        async with self.db.write() as conn:
            feed = await lookup.get_feed(conn, name, require_active=False)
            count = await repo.count_feed_manifests(conn, feed.id)
            if count and not force:
                raise Conflict(
                    f"feed {name!r} still holds {count} manifest(s); delete them first or "
                    "force the deletion (--force / ?force=true)",
                    {"feed": name, "manifests": count},
                )
            await repo.delete_feed(conn, feed.id)
