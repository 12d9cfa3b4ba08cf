"""Promotion and retagging: ``/api/promotions/*`` and ``/api/containers/{tags,images}/*``.

The request shapes are ProGet's, so its users' scripts keep working: the promote call accepts
``application/x-www-form-urlencoded`` (what PowerShell's Invoke-WebRequest sends for a hashtable)
as well as JSON. Imports: api.auth, domain, services, fastapi, pydantic.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from semreg.api import auth
from semreg.api.bodies import RequestBody
from semreg.api.state import services_of
from semreg.domain.digest import parse_digest
from semreg.domain.errors import RequestInvalid
from semreg.domain.names import (
    RepoPath,
    parse_feed_name,
    parse_name,
    parse_reference,
    parse_repo_path,
    parse_tag,
)
from semreg.domain.permissions import Permission
from semreg.domain.promotion import PromotionRecord
from semreg.services.promotion import PromotionRequest

promotions = APIRouter(prefix="/api/promotions", tags=["promotions"])
containers = APIRouter(prefix="/api/containers", tags=["containers"])
PrincipalDep = auth.PrincipalDep


class PromotionIn(RequestBody):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    packageName: str = Field(min_length=1)  # noqa: N815
    groupName: str | None = None  # noqa: N815
    version: str = Field(min_length=1)
    fromFeed: str = Field(min_length=1)  # noqa: N815
    toFeed: str = Field(min_length=1)  # noqa: N815
    comments: str | None = None
    toVersion: str | None = None  # noqa: N815


class PromotionOut(BaseModel):
    id: int
    fromFeed: str  # noqa: N815
    toFeed: str  # noqa: N815
    packageName: str  # noqa: N815
    version: str
    toVersion: str  # noqa: N815
    digest: str
    comments: str | None
    promotedBy: str  # noqa: N815
    promoted: datetime

    @classmethod
    def of(cls, record: PromotionRecord) -> PromotionOut:
        return cls(
            id=record.id,
            fromFeed=record.from_feed,
            toFeed=record.to_feed,
            packageName=record.repository,
            version=record.version,
            toVersion=record.to_version,
            digest=str(record.digest),
            comments=record.comments,
            promotedBy=record.actor,
            promoted=record.promoted_at,
        )


async def _promotion_body(request: Request) -> PromotionIn:
    """The promote request from a form or a JSON body.

    Raises:
        RequestInvalid: the body is missing fields or is not a form or JSON object.
    """
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    data: Any
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        data = dict(await request.form())
    else:
        try:
            data = json.loads(await request.body() or b"null")
        # ValueError: JSONDecodeError, UnicodeDecodeError and integers over 4,300 digits;
        # RecursionError: nesting deeper than the parser's recursion limit.
        except (ValueError, RecursionError) as exc:
            raise RequestInvalid(
                f"the body must be a form or a JSON object ({exc.__class__.__name__})"
            ) from exc
    if not isinstance(data, dict):
        raise RequestInvalid("the body must be a form or a JSON object")
    try:
        return PromotionIn.model_validate({k: v for k, v in data.items() if v not in ("", None)})
    except ValidationError as exc:
        errors = exc.errors()
        fields = [".".join(str(p) for p in err["loc"]) or "body" for err in errors]
        whole = [str(err["msg"]) for err in errors if not err["loc"]]  # the body's own check
        raise RequestInvalid(
            "; ".join(whole)
            if whole
            else "missing or invalid fields: "
            + ", ".join(fields)
            + " (required: packageName, version, fromFeed, toFeed)",
            {"fields": fields},
        ) from exc


@promotions.post(
    "/promote",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": PromotionIn.model_json_schema()},
                "application/x-www-form-urlencoded": {"schema": PromotionIn.model_json_schema()},
            }
        }
    },
)
async def promote(request: Request, principal: PrincipalDep) -> PromotionOut:
    """Promote an image (with all its blobs and child manifests) from one feed to another."""
    body = await _promotion_body(request)
    name = f"{body.groupName}/{body.packageName}" if body.groupName else body.packageName
    source = parse_repo_path(f"{body.fromFeed}/{name}")
    parse_repo_path(f"{body.toFeed}/{name}")
    version = parse_tag(body.version)
    to_version = parse_tag(body.toVersion) if body.toVersion else version
    auth.require_feed(principal, body.fromFeed, Permission.VIEW)
    auth.require_feed(principal, body.toFeed, Permission.PROMOTE)
    record = await services_of(request).promotions.promote(
        PromotionRequest(source, version, body.toFeed, to_version, body.comments),
        actor=principal.name,
    )
    return PromotionOut.of(record)


@promotions.get("/list")
async def list_promotions(
    request: Request,
    principal: PrincipalDep,
    feed: str | None = None,
    package: str | None = None,
    version: str | None = None,
) -> list[PromotionOut]:
    """Promotions, newest first; ``feed`` matches the source or the target."""
    # Parsed before they reach SQL: no promotion is recorded under anything else.
    feed = parse_feed_name(feed) if feed is not None else None
    package = parse_name(package) if package is not None else None
    version = parse_tag(version).name if version is not None else None
    if feed is not None:
        auth.require_feed(principal, feed, Permission.VIEW)
    elif principal.is_anonymous:
        raise auth.refuse(principal, "list promotions")
    records = await services_of(request).promotions.history(feed, package, version)
    visible = [
        r
        for r in records
        if principal.may(r.from_feed, Permission.VIEW) or principal.may(r.to_feed, Permission.VIEW)
    ]
    return [PromotionOut.of(r) for r in visible]


def _repo(feed: str, repo: str) -> RepoPath:
    return parse_repo_path(f"{feed}/{repo}")


@containers.post("/tags/create")
async def create_tag(
    request: Request,
    principal: PrincipalDep,
    feed: str,
    repo: str,
    target: Annotated[str, Query(description="The tag or digest to point at")],
    name: Annotated[str, Query(description="The new tag")],
    force: bool = False,
) -> JSONResponse:
    """Tag an existing image: 201 Created, 200 Exists, 200 Updated (force), 409 if it differs."""
    path, reference, tag = _repo(feed, repo), parse_reference(target), parse_tag(name)
    auth.require_feed(principal, feed, Permission.ADD)
    if force:
        auth.require_feed(principal, feed, Permission.DELETE)
    result, digest = await services_of(request).promotions.create_tag(
        path, reference, tag, force, principal.name
    )
    body = {"result": result, "tag": tag.name, "digest": str(digest)}
    return JSONResponse(body, status_code=201 if result == "Created" else 200)


@containers.api_route("/tags/delete", methods=["POST", "DELETE"])
async def delete_tag(
    request: Request, principal: PrincipalDep, feed: str, repo: str, tag: str
) -> dict[str, str]:
    """Delete a tag; the image stays (and a release stays reserved)."""
    path, parsed = _repo(feed, repo), parse_tag(tag)
    auth.require_feed(principal, feed, Permission.DELETE)
    await services_of(request).promotions.delete_tag(path, parsed, principal.name)
    return {"result": "Deleted", "tag": tag}


@containers.api_route("/images/delete", methods=["POST", "DELETE"])
async def delete_image(
    request: Request, principal: PrincipalDep, feed: str, repo: str, digest: str
) -> dict[str, str]:
    """Delete an image by its full digest, with every tag on it."""
    path, parsed = _repo(feed, repo), parse_digest(digest)
    auth.require_feed(principal, feed, Permission.DELETE)
    await services_of(request).manifests.delete(path, parsed)
    return {"result": "Deleted", "digest": digest}


class TagChangeOut(BaseModel):
    tag: str
    action: str
    oldDigest: str | None  # noqa: N815
    newDigest: str | None  # noqa: N815
    by: str
    at: datetime


@containers.get("/tags/history")
async def tag_history(
    request: Request, principal: PrincipalDep, feed: str, repo: str
) -> list[TagChangeOut]:
    """Explicit tag changes made through this API (retags, forced overwrites, deletions)."""
    auth.require_feed(principal, feed, Permission.VIEW)
    changes = await services_of(request).promotions.tag_history(_repo(feed, repo))
    return [
        TagChangeOut(
            tag=c.tag,
            action=c.action,
            oldDigest=str(c.old_digest) if c.old_digest else None,
            newDigest=str(c.new_digest) if c.new_digest else None,
            by=c.actor,
            at=c.at,
        )
        for c in changes
    ]
