"""Resolve a feed or a repository by name inside a transaction, raising the client-facing errors.

Imports: domain, metadata.repo.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from semreg.domain.errors import FeedInactive, FeedUnknown, NameUnknown
from semreg.domain.feeds import Feed
from semreg.domain.inventory import Repository
from semreg.domain.names import RepoPath, is_feed_name
from semreg.metadata import repo


async def get_feed(conn: AsyncConnection, name: str, *, require_active: bool = True) -> Feed:
    """The feed by name.

    Raises:
        FeedUnknown: no such feed.
        FeedInactive: the feed is switched off (only when ``require_active``).
    """
    # A name no feed can have is not looked up: PostgreSQL refuses a NUL in a query.
    feed = await repo.find_feed(conn, name) if is_feed_name(name) else None
    if feed is None:
        raise FeedUnknown(f"feed {name[:80]!r} does not exist", {"feed": name[:80]})
    if require_active and not feed.active:
        raise FeedInactive(f"feed {name!r} is disabled", {"feed": name})
    return feed


async def get_repository(conn: AsyncConnection, path: RepoPath) -> Repository:
    """An existing repository.

    Raises:
        FeedUnknown, FeedInactive: see ``get_feed``.
        NameUnknown: the feed has no repository by that name.
    """
    feed = await get_feed(conn, path.feed)
    found = await repo.find_repository(conn, feed, path.repo)
    if found is None:
        raise NameUnknown(f"repository {path} is not known", {"name": str(path)})
    return found


async def find_repository(conn: AsyncConnection, path: RepoPath) -> Repository | None:
    """An existing repository, or None when the (existing, active) feed has none by that name.

    Raises:
        FeedUnknown, FeedInactive: see ``get_feed``.
    """
    feed = await get_feed(conn, path.feed)
    return await repo.find_repository(conn, feed, path.repo)


async def ensure_repository(conn: AsyncConnection, path: RepoPath) -> Repository:
    """The repository, created on first push.

    Raises:
        FeedUnknown, FeedInactive: see ``get_feed``.
    """
    feed = await get_feed(conn, path.feed)
    return await repo.ensure_repository(conn, feed, path.repo)
