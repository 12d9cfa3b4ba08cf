"""The /api management endpoints, modelled on ProGet's Feed Management API.

Pydantic models make the OpenAPI document; property names follow ProGet's JSON (camelCase).
Imports: domain, services, fastapi, pydantic.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from semreg.domain.feeds import Feed, FeedChanges
from semreg.services.container import Services

router = APIRouter(prefix="/api/management/feeds", tags=["feeds"])


class FeedOut(BaseModel):
    name: str
    feedType: str  # noqa: N815 - ProGet's property name
    active: bool
    description: str | None
    created: datetime

    @classmethod
    def of(cls, feed: Feed) -> FeedOut:
        return cls(
            name=feed.name,
            feedType=feed.feed_type,
            active=feed.active,
            description=feed.description,
            created=feed.created_at,
        )


class FeedCreate(BaseModel):
    # ProGet clients send more properties than semreg knows; they are ignored.
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=64)
    feedType: str = "docker"  # noqa: N815
    active: bool = True
    description: str | None = None


class FeedUpdate(BaseModel):
    """Omitted or null properties keep their value."""

    model_config = ConfigDict(extra="ignore")

    active: bool | None = None
    description: str | None = None


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.post("/create", status_code=201)
async def create_feed(body: FeedCreate, request: Request) -> FeedOut:
    feed = await _services(request).feeds.create(
        body.name, body.feedType, body.active, body.description
    )
    return FeedOut.of(feed)


@router.get("/list")
async def list_feeds(request: Request) -> list[FeedOut]:
    return [FeedOut.of(feed) for feed in await _services(request).feeds.list()]


@router.get("/get/{name}")
async def get_feed(name: str, request: Request) -> FeedOut:
    return FeedOut.of(await _services(request).feeds.get(name))


@router.post("/update/{name}")
async def update_feed(name: str, body: FeedUpdate, request: Request) -> FeedOut:
    changes = FeedChanges(active=body.active, description=body.description)
    return FeedOut.of(await _services(request).feeds.update(name, changes))


@router.delete("/delete/{name}")
async def delete_feed(name: str, request: Request, force: bool = False) -> dict[str, str]:
    await _services(request).feeds.delete(name, force=force)
    return {"deleted": name}
