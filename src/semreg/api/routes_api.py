"""The /api management endpoints, modelled on ProGet's Feed Management API.

Pydantic models make the OpenAPI document; property names follow ProGet's JSON (camelCase).
Imports: domain, services, fastapi, pydantic.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from semreg.api import auth
from semreg.api.bodies import RequestBody
from semreg.api.state import services_of
from semreg.domain.feeds import Feed, FeedChanges
from semreg.domain.inventory import ReleaseRecord
from semreg.domain.names import RepoPath, parse_repo_path
from semreg.domain.permissions import Permission
from semreg.domain.tags import TagPolicy

router = APIRouter(prefix="/api/management/feeds", tags=["feeds"])
containers = APIRouter(prefix="/api/containers", tags=["containers"])


class FeedOut(BaseModel):
    name: str
    feedType: str  # noqa: N815 - ProGet's property name
    active: bool
    description: str | None
    created: datetime
    containerVersioning: bool  # noqa: N815
    permittedTags: list[str]  # noqa: N815
    anonymousView: bool  # noqa: N815

    @classmethod
    def of(cls, feed: Feed) -> FeedOut:
        return cls(
            name=feed.name,
            feedType=feed.feed_type,
            active=feed.active,
            description=feed.description,
            created=feed.created_at,
            containerVersioning=feed.policy.versioning,
            permittedTags=list(feed.policy.permitted),
            anonymousView=feed.anonymous_view,
        )


class FeedCreate(RequestBody):
    # ProGet clients send more properties than semreg knows; they are ignored.
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=64)
    feedType: str = "docker"  # noqa: N815
    active: bool = True
    description: str | None = None
    containerVersioning: bool = False  # noqa: N815
    permittedTags: list[str] = Field(default_factory=list)  # noqa: N815
    anonymousView: bool = False  # noqa: N815


class FeedUpdate(RequestBody):
    """Omitted or null properties keep their value."""

    model_config = ConfigDict(extra="ignore")

    active: bool | None = None
    description: str | None = None
    containerVersioning: bool | None = None  # noqa: N815
    permittedTags: list[str] | None = None  # noqa: N815
    anonymousView: bool | None = None  # noqa: N815


PrincipalDep = auth.PrincipalDep


@router.post("/create", status_code=201)
async def create_feed(body: FeedCreate, request: Request, principal: PrincipalDep) -> FeedOut:
    auth.require_feed_management(principal)
    policy = TagPolicy(body.containerVersioning, tuple(body.permittedTags))
    feed = await services_of(request).feeds.create(
        body.name, body.feedType, body.active, body.description, policy, body.anonymousView
    )
    return FeedOut.of(feed)


@router.get("/list")
async def list_feeds(request: Request, principal: PrincipalDep) -> list[FeedOut]:
    """Feeds the caller may view (all of them for feed managers)."""
    feeds = await services_of(request).feeds.list()
    if principal.may_manage_feeds():
        return [FeedOut.of(feed) for feed in feeds]
    if principal.is_anonymous and not any(f.anonymous_view for f in feeds):
        raise auth.refuse(principal, "list feeds")
    return [FeedOut.of(f) for f in feeds if principal.may(f.name, Permission.VIEW)]


@router.get("/get/{name}")
async def get_feed(name: str, request: Request, principal: PrincipalDep) -> FeedOut:
    if not principal.may_manage_feeds():
        auth.require_feed(principal, name, Permission.VIEW)
    return FeedOut.of(await services_of(request).feeds.get(name))


@router.post("/update/{name}")
async def update_feed(
    name: str, body: FeedUpdate, request: Request, principal: PrincipalDep
) -> FeedOut:
    auth.require_feed_management(principal)
    changes = FeedChanges(
        active=body.active,
        description=body.description,
        container_versioning=body.containerVersioning,
        permitted_tags=tuple(body.permittedTags) if body.permittedTags is not None else None,
        anonymous_view=body.anonymousView,
    )
    return FeedOut.of(await services_of(request).feeds.update(name, changes))


@router.delete("/delete/{name}")
async def delete_feed(
    name: str, request: Request, principal: PrincipalDep, force: bool = False
) -> dict[str, str]:
    auth.require_feed_management(principal)
    await services_of(request).feeds.delete(name, force=force)
    return {"deleted": name}


class ReleaseOut(BaseModel):
    version: str
    digest: str
    size: int
    pushed: datetime
    virtualTags: list[str]  # noqa: N815

    @classmethod
    def of(cls, record: ReleaseRecord) -> ReleaseOut:
        return cls(
            version=record.tag,
            digest=str(record.digest),
            size=record.size,
            pushed=record.pushed_at,
            virtualTags=list(record.virtual_tags),
        )


def _repo_path(feed: str, repo: str) -> RepoPath:
    return parse_repo_path(f"{feed}/{repo}")


@containers.get("/releases")
async def list_releases(
    feed: str, repo: str, request: Request, principal: PrincipalDep
) -> list[ReleaseOut]:
    """A repository's releases, highest SemVer first, with the virtual tags on each."""
    auth.require_feed(principal, feed, Permission.VIEW)
    records = await services_of(request).releases.list(_repo_path(feed, repo))
    return [ReleaseOut.of(r) for r in records]


@containers.post("/releases/purge")
async def purge_release(
    feed: str, repo: str, version: str, request: Request, principal: PrincipalDep
) -> dict[str, str]:
    """Free a deleted release's version so it may be published again with other content."""
    auth.require_admin(principal, "purge releases")
    await services_of(request).releases.purge(_repo_path(feed, repo), version)
    return {"purged": version}
