"""The OCI distribution endpoints under /v2. Thin: parse, call one service, build the response.

Names contain slashes, so every route captures ``{name:path}`` and anchors on the fixed suffix
(``/manifests/<ref>``, ``/blobs/<digest>``...). Errors are raised, never caught: the handler in
``api/errors.py`` renders them. Imports: domain, services, starlette.
"""

from __future__ import annotations

import json
import re
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Match, Route

from semreg.api import auth
from semreg.api import responses as r
from semreg.api.state import max_page_size, services_of
from semreg.domain import mediatypes as mt
from semreg.domain.digest import DEFAULT_ALGORITHM, HEX_LENGTH, Digest, parse_digest
from semreg.domain.errors import (
    BlobUploadUnknown,
    DigestInvalid,
    DigestUnsupported,
    ManifestUnknown,
    NameInvalid,
    RouteUnknown,
    TagInvalid,
    Unsupported,
)
from semreg.domain.inventory import ManifestHead, StoredManifest
from semreg.domain.names import Reference, RepoPath, parse_reference, parse_repo_path, parse_tag

_ACCEPT_ANY: Final = frozenset({"*/*", "application/*", "application/json"})
# Upload ids are what services.blobs hands out (uuid4 text); nothing else reaches SQL or storage.
_UPLOAD_ID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _refuse_escaped_slash(request: Request) -> None:
    # The server decodes %2F into "/" before routing; no valid name needs escaping, so an
    # escaped slash can only be an attempt to reach another repository or endpoint.
    raw_path: bytes = request.scope.get("raw_path") or b""
    if b"%2f" in raw_path.lower():
        raise NameInvalid(
            "invalid repository name: escaped '/' (%2F) is not allowed",
            {"path": request.url.path[:200]},
        )


def _path(request: Request) -> RepoPath:
    _refuse_escaped_slash(request)
    return parse_repo_path(request.path_params["name"])


async def _authorized(request: Request) -> RepoPath:
    """The repository of the request, once the caller holds what the request's method needs."""
    path = _path(request)
    await auth.require(request, path)
    return path


def _upload_id(request: Request) -> str:
    """The upload id of the path.

    Raises:
        BlobUploadUnknown: not an id this registry makes, so no upload of it exists.
    """
    upload_id: str = request.path_params["upload_id"]
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise BlobUploadUnknown(
            f"upload {upload_id[:40]!r} is not known; start a new one", {"upload": upload_id[:40]}
        )
    return upload_id


def _digest_param(request: Request, key: str = "digest") -> Digest:
    value = request.query_params.get(key)
    if not value:
        raise DigestInvalid(f"the {key!r} query parameter is required and must be a digest")
    return parse_digest(value)


# --- base and catalog --------------------------------------------------------------------------


async def api_version(request: Request) -> Response:
    await auth.require_signed_in(request)
    return JSONResponse({})


async def catalog(request: Request) -> Response:
    principal = await auth.catalog_principal(request)
    n, last = r.parse_page(request)
    limit = max_page_size(request) if n is None else n
    page = await services_of(request).manifests.catalog(last, limit, principal.viewable_feeds())
    headers = {}
    if page.more and page.items:
        headers["Link"] = r.next_link("/v2/_catalog", limit, page.items[-1])
    return JSONResponse({"repositories": page.items}, headers=headers)


# --- manifests ---------------------------------------------------------------------------------


def _acceptable(request: Request, media_type: str) -> bool:
    # Clients send one Accept header per type (skopeo, containerd) or one comma-separated list.
    accept = ",".join(request.headers.getlist("accept"))
    if not accept.strip():
        return True
    offered = {part.split(";", 1)[0].strip() for part in accept.split(",")}
    return media_type in offered or bool(offered & _ACCEPT_ANY)


def manifest_headers(head: ManifestHead) -> dict[str, str]:
    return {
        "Content-Type": head.media_type,
        "Docker-Content-Digest": str(head.digest),
        "Content-Length": str(head.size),
        "ETag": f'"{head.digest}"',
    }


def _existing_reference(text: str) -> Reference:
    """The reference of a manifest GET or HEAD.

    Raises:
        ManifestUnknown: neither a valid tag nor a digest, so no such manifest exists (as in
            the reference registry; a PUT still answers TAG_INVALID or DIGEST_INVALID).
    """
    try:
        return parse_reference(text)
    except (TagInvalid, DigestInvalid) as exc:
        raise ManifestUnknown(
            f"manifest unknown: {exc.message}", {"reference": text[:140]}
        ) from exc


async def find_manifest(request: Request, path: RepoPath, text: str) -> tuple[ManifestHead, bytes]:
    """The manifest ``text`` names in ``path``, for a caller already allowed to pull.

    Raises:
        ManifestUnknown: no such manifest, or not of a type the Accept header allows.
        FeedUnknown, FeedInactive: see ``services.manifests.find``.
    """
    reference = _existing_reference(text)
    services = services_of(request)
    head = await services.manifests.find(path, reference)
    if not _acceptable(request, head.media_type):
        raise ManifestUnknown(
            f"manifest {reference} is {head.media_type}, which the request's Accept header "
            "does not allow",
            {"mediaType": head.media_type},
        )
    if request.method == "HEAD":
        return head, b""
    return head, await services.manifests.read(head)


async def get_manifest(request: Request) -> Response:
    path = await _authorized(request)
    head, body = await find_manifest(request, path, request.path_params["reference"])
    return Response(body, headers=manifest_headers(head))


async def put_manifest(request: Request) -> Response:
    path = await _authorized(request)
    reference = parse_reference(request.path_params["reference"])
    extra_tags = [parse_tag(t) for t in request.query_params.getlist("tag")]
    services = services_of(request)
    announced = r.announced_length(request)
    if announced is not None:
        services.manifests.check_size(announced)
    body = await r.read_limited(request, services.manifests.max_manifest_bytes)
    result = await services.manifests.put(
        path, reference, request.headers.get("content-type"), body, extra_tags
    )
    headers = [
        ("Location", f"/v2/{path}/manifests/{result.digest}"),
        ("Docker-Content-Digest", str(result.digest)),
    ]
    if result.subject is not None:
        headers.append(("OCI-Subject", str(result.subject)))
    if extra_tags:
        headers += [("OCI-Tag", tag.name) for tag in result.tags]
    response = Response(status_code=201)
    for key, value in headers:
        response.headers.append(key, value)
    return response


async def delete_manifest(request: Request) -> Response:
    path = await _authorized(request)
    reference = parse_reference(request.path_params["reference"])
    await services_of(request).manifests.delete(path, reference)
    return Response(status_code=202)


# --- blobs -------------------------------------------------------------------------------------


def blob_headers(digest: Digest, size: int) -> dict[str, str]:
    return {
        "Docker-Content-Digest": str(digest),
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
        "Cache-Control": "max-age=31536000",
        "Content-Length": str(size),
    }


async def get_blob(request: Request) -> Response:
    path = await _authorized(request)
    digest = parse_digest(request.path_params["digest"])
    services = services_of(request)
    size = await services.blobs.stat(path, digest)
    headers = blob_headers(digest, size)
    span = r.parse_range(request.headers.get("range"), size)
    status = 200
    start, end = 0, size
    if span is not None:
        start, end = span
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return StreamingResponse(services.blobs.read(digest, start, end), status, headers)


async def delete_blob(request: Request) -> Response:
    path = await _authorized(request)
    digest = parse_digest(request.path_params["digest"])
    await services_of(request).blobs.delete(path, digest)
    return Response(status_code=202)


# --- uploads -----------------------------------------------------------------------------------


def _blob_created(path: RepoPath, digest: Digest) -> Response:
    return Response(
        status_code=201,
        headers={"Location": f"/v2/{path}/blobs/{digest}", "Docker-Content-Digest": str(digest)},
    )


def _upload_status(path: RepoPath, upload_id: str, size: int, status: int) -> Response:
    return Response(
        status_code=status,
        headers={
            "Location": f"/v2/{path}/blobs/uploads/{upload_id}",
            "Range": r.upload_range(size),
            "Docker-Upload-UUID": upload_id,
        },
    )


async def start_upload(request: Request) -> Response:
    path, query = await _authorized(request), request.query_params
    blobs = services_of(request).blobs
    if "mount" in query:
        digest = _digest_param(request, "mount")
        source = parse_repo_path(query["from"]) if query.get("from") else None
        # distribution-spec: when the blob cannot be mounted, start an upload instead
        if (
            source is not None
            and await auth.may_read(request, source)
            and await blobs.mount(path, digest, source)
        ):
            return _blob_created(path, digest)
    elif "digest" in query:
        digest = _digest_param(request)
        await blobs.upload_whole(path, digest, r.body_chunks(request))
        return _blob_created(path, digest)
    # distribution-spec: ?digest-algorithm= announces the algorithm of the final digest
    algorithm = query.get("digest-algorithm") or DEFAULT_ALGORITHM
    if algorithm not in HEX_LENGTH:
        raise DigestUnsupported(
            f"unsupported digest algorithm {algorithm[:40]!r}: use sha256 or sha512",
            {"algorithm": algorithm[:40]},
        )
    upload_id = await blobs.start_upload(path, algorithm, await auth.owner(request))
    return _upload_status(path, upload_id, 0, 202)


async def upload_status(request: Request) -> Response:
    path, upload_id = await _authorized(request), _upload_id(request)
    session = await services_of(request).blobs.get_upload(path, upload_id)
    return _upload_status(path, upload_id, session.size, 204)


async def _chunk_span(
    request: Request, path: RepoPath, upload_id: str
) -> tuple[int | None, int | None]:
    """Start and length from ``Content-Range``; a malformed one is refused with the upload's
    size (the session is read for that only: the common case costs nothing more)."""
    header = request.headers.get("content-range")
    if header is None or r.is_content_range(header):
        return r.parse_content_range(header, 0)
    session = await services_of(request).blobs.get_upload(path, upload_id)
    return r.parse_content_range(header, session.size)


async def patch_upload(request: Request) -> Response:
    path, upload_id = await _authorized(request), _upload_id(request)
    start, length = await _chunk_span(request, path, upload_id)
    size = await services_of(request).blobs.append(
        path, upload_id, r.body_chunks(request), start, length
    )
    return _upload_status(path, upload_id, size, 202)


async def finish_upload(request: Request) -> Response:
    path, upload_id = await _authorized(request), _upload_id(request)
    digest = _digest_param(request)
    start, length = await _chunk_span(request, path, upload_id)
    has_body = r.announced_length(request) != 0 or "transfer-encoding" in request.headers
    chunks = r.body_chunks(request) if has_body else None
    await services_of(request).blobs.finish(path, upload_id, digest, chunks, start, length)
    return _blob_created(path, digest)


async def cancel_upload(request: Request) -> Response:
    path, upload_id = await _authorized(request), _upload_id(request)
    await services_of(request).blobs.cancel(path, upload_id)
    return Response(status_code=204)


# --- discovery ---------------------------------------------------------------------------------


async def list_tags(request: Request) -> Response:
    path = await _authorized(request)
    n, last = r.parse_page(request)
    page = await services_of(request).manifests.tags(path, last, n)
    headers = {}
    if n is not None and page.more and page.items:
        headers["Link"] = r.next_link(f"/v2/{path}/tags/list", n, page.items[-1])
    return JSONResponse({"name": str(path), "tags": page.items}, headers=headers)


async def referrers(request: Request) -> Response:
    path = await _authorized(request)
    subject = parse_digest(request.path_params["digest"])
    artifact_type = request.query_params.get("artifactType") or None
    # A filter that is no media type matches nothing (and never reaches SQL).
    found = (
        await services_of(request).manifests.referrers(path, subject, artifact_type)
        if artifact_type is None or mt.is_media_type(artifact_type)
        else []
    )
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [_referrer_descriptor(m) for m in found],
    }
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return Response(
        json.dumps(index, separators=(",", ":")), media_type=mt.OCI_INDEX, headers=headers
    )


def _referrer_descriptor(stored: StoredManifest) -> dict[str, object]:
    descriptor: dict[str, object] = {
        "mediaType": stored.media_type,
        "digest": str(stored.digest),
        "size": stored.size,
    }
    if stored.artifact_type:
        descriptor["artifactType"] = stored.artifact_type
    if stored.annotations:
        descriptor["annotations"] = dict(stored.annotations)
    return descriptor


async def unknown_route(request: Request) -> Response:
    _refuse_escaped_slash(request)
    # Starlette prefers this full match to a path-only match, so find the 405 case here.
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.endpoint is not unknown_route:
            match, _ = route.matches(request.scope)
            if match is Match.PARTIAL:
                raise Unsupported(
                    f"{request.method} is not supported on {request.url.path}",
                    {"method": request.method},
                )
    raise RouteUnknown(f"no endpoint at {request.url.path}", {"path": request.url.path[:200]})


_NAME = "/v2/{name:path}"
_UPLOAD = _NAME + "/blobs/uploads/{upload_id}"
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]

routes: list[BaseRoute] = [
    Route("/v2/", api_version, methods=["GET"]),
    Route("/v2/_catalog", catalog, methods=["GET"]),
    Route(_NAME + "/manifests/{reference}", get_manifest, methods=["GET", "HEAD"]),
    Route(_NAME + "/manifests/{reference}", put_manifest, methods=["PUT"]),
    Route(_NAME + "/manifests/{reference}", delete_manifest, methods=["DELETE"]),
    Route(_NAME + "/blobs/uploads/", start_upload, methods=["POST"]),
    Route(_NAME + "/blobs/uploads", start_upload, methods=["POST"]),
    Route(_UPLOAD, upload_status, methods=["GET"]),
    Route(_UPLOAD, patch_upload, methods=["PATCH"]),
    Route(_UPLOAD, finish_upload, methods=["PUT"]),
    Route(_UPLOAD, cancel_upload, methods=["DELETE"]),
    Route(_NAME + "/blobs/{digest}", get_blob, methods=["GET", "HEAD"]),
    Route(_NAME + "/blobs/{digest}", delete_blob, methods=["DELETE"]),
    Route(_NAME + "/tags/list", list_tags, methods=["GET"]),
    Route(_NAME + "/referrers/{digest}", referrers, methods=["GET"]),
    Route("/v2", api_version, methods=["GET"]),
    Route("/v2/{rest:path}", unknown_route, methods=_ALL_METHODS),
]
