"""The ``semreg`` command: ``serve``, ``config check`` and the client commands (``feed ...``).

Client commands talk to a running server over HTTP (``--url`` / ``SEMREG_URL``). This is a
composition root: it reads config and builds the app. Imports: config, api, httpx, typer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
import uvicorn
from pydantic import ValidationError

from semreg.config import (
    Settings,
    client_api_key,
    client_url,
    hand_down,
    load_settings,
    redact_url,
)

app = typer.Typer(
    help="semreg: a container registry that keeps tags trustworthy.", no_args_is_help=True
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
feed_app = typer.Typer(help="Manage feeds on a running server.", no_args_is_help=True)
app.add_typer(config_app, name="config")
release_app = typer.Typer(help="Releases of versioned feeds.", no_args_is_help=True)
key_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users and their feed permissions.", no_args_is_help=True)
tag_app = typer.Typer(help="Add and delete tags without moving bytes.", no_args_is_help=True)
image_app = typer.Typer(help="Delete images.", no_args_is_help=True)
app.add_typer(tag_app, name="tag")
app.add_typer(image_app, name="image")
app.add_typer(key_app, name="key")
app.add_typer(user_app, name="user")
app.add_typer(feed_app, name="feed")
app.add_typer(release_app, name="release")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (or SEMREG_CONFIG).")
]
UrlOption = Annotated[
    str | None, typer.Option("--url", help="Server URL (or SEMREG_URL).", show_default=False)
]


def _load(config: Path | None, **overrides: Any) -> Any:
    try:
        return load_settings(config, **overrides)
    except ValidationError as exc:
        # Without the input values: a refused value may be a secret (a short token secret).
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        typer.echo(f"invalid configuration:\n{problems}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    data: Annotated[Path | None, typer.Option(help="Data folder (database, blobs).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="Worker processes (all state is shared through the database)."),
    ] = 1,
    config: ConfigOption = None,
) -> None:
    """Run the registry server."""
    from semreg.api.app import create_app

    overrides: dict[str, Any] = {"data_dir": data, "server": {"host": host, "port": port}}
    settings = _load(config, **overrides)
    options: dict[str, Any] = {
        "host": settings.server.host,
        "port": settings.server.port,
        "access_log": False,
        "log_level": settings.log.level.lower(),
        "loop": "uvloop",
        "http": "semreg.api.protocol:GuardedHttpToolsProtocol",
        "limit_concurrency": settings.server.max_connections,
        "timeout_graceful_shutdown": 10,
        # Forwarded headers only from configured proxies (uvicorn trusts 127.0.0.1 by default).
        "proxy_headers": bool(settings.server.trusted_proxies),
        "forwarded_allow_ips": ",".join(settings.server.trusted_proxies) or "",
    }
    _migrate_aside(settings)
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    hand_down(config, **overrides)
    uvicorn.run(
        "semreg.api.app:create_app_from_environment", factory=True, workers=workers, **options
    )


def _migrate(url: str) -> None:
    import asyncio

    from semreg.metadata import migrate
    from semreg.metadata.engine import create_engine

    async def run() -> None:
        engine = create_engine(url)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())


def _migrate_aside(settings: Settings) -> None:
    """Bring the schema up to date in a short-lived child process, so that the serving
    processes never load Alembic (they find the schema current and skip it)."""
    import multiprocessing

    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Forked before any thread or event loop exists in this process.
    child = multiprocessing.get_context("fork").Process(
        target=_migrate, args=(settings.database_url,), name="semreg-migrate"
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        typer.echo("semreg: failed to migrate the database (see above)", err=True)
        raise typer.Exit(1)


@app.command()
def gc(
    data: Annotated[Path | None, typer.Option(help="Data folder (database, blobs).")] = None,
    config: ConfigOption = None,
    grace_minutes: Annotated[
        int, typer.Option(help="Keep unreferenced bytes younger than this (pushes in flight).")
    ] = 60,
    upload_ttl_hours: Annotated[
        int, typer.Option(help="Delete upload sessions idle for longer than this.")
    ] = 24,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report.")] = False,
) -> None:
    """Delete blob bytes nothing refers to any more, and abandoned uploads."""
    import asyncio
    from datetime import timedelta

    from semreg.metadata import migrate
    from semreg.metadata.engine import Database, create_engine
    from semreg.services.gc import GarbageCollector, GcReport
    from semreg.storage.factory import open_blob_store

    settings = _load(config, data_dir=data)
    if settings.testing.crash_point:
        from semreg import crashpoints

        crashpoints.arm(settings.testing.crash_point, settings.testing.crash_after)

    async def collect() -> GcReport:
        engine = create_engine(settings.database_url)
        try:
            await migrate.upgrade(engine)
            collector = GarbageCollector(Database(engine), open_blob_store(settings.storage_path))
            return await collector.run(
                timedelta(minutes=grace_minutes), timedelta(hours=upload_ttl_hours), dry_run
            )
        finally:
            await engine.dispose()

    report = asyncio.run(collect())
    verb = "would delete" if report.dry_run else "deleted"
    typer.echo(
        f"{verb} {report.blobs_deleted} blob(s), {report.bytes_freed} bytes, "
        f"and {report.uploads_deleted} abandoned upload(s)"
    )


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration and print it, secrets redacted."""
    settings = _load(config)
    effective = json.loads(settings.model_dump_json())
    effective["database"]["url"] = redact_url(settings.database.url)
    effective["database_url"] = redact_url(settings.database_url)
    typer.echo(json.dumps(effective, indent=2, default=str))


# --- client commands ---------------------------------------------------------------------------


def _client(url: str | None) -> httpx.Client:
    headers = {}
    key = client_api_key()
    if key:
        headers["X-ApiKey"] = key
    return httpx.Client(base_url=url or client_url(), headers=headers, timeout=60)


def _call(url: str | None, method: str, path: str, **kwargs: Any) -> Any:
    try:
        with _client(url) as client:
            response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the server: {exc}", err=True)
        raise typer.Exit(1) from exc
    if response.is_error:
        _fail(response)
    return response.json() if response.content else None


def _fail(response: httpx.Response) -> NoReturn:
    try:
        errors = response.json()["errors"]
        message = "; ".join(e["message"] for e in errors)
    except (ValueError, KeyError, TypeError):
        message = response.text or response.reason_phrase
    typer.echo(f"error {response.status_code}: {message}", err=True)
    raise typer.Exit(1)


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


PermitOption = Annotated[
    list[str] | None,
    typer.Option(
        "--permit",
        help="A tag allowed besides release versions (exact, '*' wildcard, '!' to exclude). "
        "Repeat for several.",
    ),
]


@feed_app.command("create")
def feed_create(
    name: str,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Create it switched off.")] = False,
    versioning: Annotated[
        bool, typer.Option("--versioning", help="Turn Container Versioning on.")
    ] = False,
    permit: PermitOption = None,
    anonymous_view: Annotated[
        bool, typer.Option("--anonymous-view", help="Let anyone pull without credentials.")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Create a feed."""
    body = {
        "name": name,
        "feedType": "docker",
        "active": not inactive,
        "description": description,
        "containerVersioning": versioning,
        "permittedTags": permit or [],
        "anonymousView": anonymous_view,
    }
    _print(_call(url, "POST", "/api/management/feeds/create", json=body))


@feed_app.command("list")
def feed_list(url: UrlOption = None) -> None:
    """List feeds."""
    for feed in _call(url, "GET", "/api/management/feeds/list"):
        state = "" if feed["active"] else "  (inactive)"
        typer.echo(f"{feed['name']}{state}")


@feed_app.command("get")
def feed_get(name: str, url: UrlOption = None) -> None:
    """Show one feed."""
    _print(_call(url, "GET", f"/api/management/feeds/get/{name}"))


@feed_app.command("update")
def feed_update(
    name: str,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Switch on or off.")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    versioning: Annotated[
        bool | None,
        typer.Option("--versioning/--no-versioning", help="Turn Container Versioning on or off."),
    ] = None,
    permit: PermitOption = None,
    clear_permitted: Annotated[
        bool, typer.Option("--clear-permitted", help="Remove every permitted tag.")
    ] = False,
    anonymous_view: Annotated[
        bool | None,
        typer.Option("--anonymous-view/--no-anonymous-view", help="Allow anonymous pulls."),
    ] = None,
    url: UrlOption = None,
) -> None:
    """Change a feed's settings; options not given keep their value."""
    permitted = [] if clear_permitted else permit
    body = {
        "active": active,
        "description": description,
        "containerVersioning": versioning,
        "permittedTags": permitted,
        "anonymousView": anonymous_view,
    }
    _print(_call(url, "POST", f"/api/management/feeds/update/{name}", json=body))


@feed_app.command("delete")
def feed_delete(
    name: str,
    force: Annotated[bool, typer.Option("--force", help="Delete even if it holds images.")] = False,
    url: UrlOption = None,
) -> None:
    """Delete a feed."""
    params = {"force": "true"} if force else {}
    _call(url, "DELETE", f"/api/management/feeds/delete/{name}", params=params)
    typer.echo(f"deleted feed {name}")


def _split_repo(name: str) -> tuple[str, str]:
    feed, sep, repo = name.partition("/")
    if not sep or not repo:
        typer.echo(f"expected <feed>/<repository>, got {name!r}", err=True)
        raise typer.Exit(2)
    return feed, repo


@release_app.command("list")
def release_list(
    name: Annotated[str, typer.Argument(help="<feed>/<repository>")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    url: UrlOption = None,
) -> None:
    """List a repository's releases, highest version first, with their virtual tags."""
    feed, repo = _split_repo(name)
    releases = _call(url, "GET", "/api/containers/releases", params={"feed": feed, "repo": repo})
    if as_json:
        _print(releases)
        return
    for release in releases:
        virtual = ", ".join(release["virtualTags"])
        typer.echo(
            f"{release['version']:<24} {release['digest'][:19]}  {release['size']:>8}  "
            f"{release['pushed']}  {virtual}"
        )


@release_app.command("purge")
def release_purge(
    name: Annotated[str, typer.Argument(help="<feed>/<repository>")],
    version: str,
    url: UrlOption = None,
) -> None:
    """Free a deleted release's version so it can be published again."""
    feed, repo = _split_repo(name)
    params = {"feed": feed, "repo": repo, "version": version}
    _call(url, "POST", "/api/containers/releases/purge", params=params)
    typer.echo(f"purged {name}:{version}")


PermissionOption = Annotated[
    list[str] | None,
    typer.Option("--permission", help="view, add, promote or delete. Repeat for several."),
]


@key_app.command("create")
def key_create(
    feed: Annotated[str | None, typer.Option(help="Feed of a feed key.")] = None,
    permission: PermissionOption = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    key_type: Annotated[
        str | None, typer.Option("--type", help="system, feed or personal (default: by options).")
    ] = None,
    system_api: Annotated[
        list[str] | None, typer.Option("--system-api", help="full-control or feeds.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="User of a personal key.")] = None,
    expires: Annotated[str | None, typer.Option(help="Expiry, ISO 8601 (UTC if no zone).")] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    url: UrlOption = None,
) -> None:
    """Create an API key and print it (it is shown this once)."""
    kind = key_type or ("feed" if feed else "personal" if user else "system")
    body = {
        "type": kind,
        "displayName": name,
        "description": description,
        "feed": feed,
        "packagePermissions": permission or [],
        "systemApis": system_api or [],
        "user": user,
        "expiration": expires,
    }
    try:
        with _client(url) as client:
            response = client.post("/api/api-keys/create", json=body)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the server: {exc}", err=True)
        raise typer.Exit(1) from exc
    if response.is_error:
        _fail(response)
    typer.echo(response.text)


@key_app.command("list")
def key_list(url: UrlOption = None) -> None:
    """List API keys (never their text)."""
    for key in _call(url, "GET", "/api/api-keys/list"):
        scope = key["feed"] or ",".join(key["systemApis"]) or key["user"] or ""
        permissions = ",".join(key["packagePermissions"])
        typer.echo(
            f"{key['id']:>5}  {key['type']:<8} {key['prefix']}…  {scope:<20} {permissions:<24} "
            f"{key['displayName'] or ''}  expires={key['expiration'] or 'never'}"
        )


@key_app.command("revoke")
def key_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id (see key list).")],
    url: UrlOption = None,
) -> None:
    """Revoke an API key."""
    _call(url, "POST", "/api/api-keys/delete", params={"id": key_id})
    typer.echo(f"revoked key {key_id}")


@user_app.command("create")
def user_create(
    name: str,
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Password.")
    ],
    system_api: Annotated[
        list[str] | None, typer.Option("--system-api", help="full-control or feeds.")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Create a user."""
    body = {"name": name, "password": password, "systemApis": system_api or []}
    _call(url, "POST", "/api/users/create", json=body)
    typer.echo(f"created user {name}")


@user_app.command("list")
def user_list(url: UrlOption = None) -> None:
    """List users with their permissions."""
    for user in _call(url, "GET", "/api/users/list"):
        grants = "; ".join(f"{f}: {','.join(p)}" for f, p in user["permissions"].items())
        typer.echo(f"{user['name']:<20} {','.join(user['systemApis']):<16} {grants}")


@user_app.command("delete")
def user_delete(name: str, url: UrlOption = None) -> None:
    """Delete a user and its personal keys."""
    _call(url, "POST", "/api/users/delete", params={"name": name})
    typer.echo(f"deleted user {name}")


@user_app.command("grant")
def user_grant(
    name: str,
    feed: Annotated[str | None, typer.Option(help="The feed; omit for every feed.")] = None,
    permission: PermissionOption = None,
    url: UrlOption = None,
) -> None:
    """Set a user's permissions on a feed (no --permission revokes them)."""
    body = {"user": name, "feed": feed, "permissions": permission or []}
    _print(_call(url, "POST", "/api/users/permissions", json=body))


def _split_reference(text: str, separator: str) -> tuple[str, str, str]:
    """``feed/repo<separator>ref`` -> (feed, repo, ref)."""
    name, sep, ref = text.rpartition(separator)
    if not sep or not ref:
        typer.echo(f"expected <feed>/<repository>{separator}<reference>, got {text!r}", err=True)
        raise typer.Exit(2)
    feed, repo = _split_repo(name)
    return feed, repo, ref


def _split_tagged(text: str) -> tuple[str, str, str]:
    return _split_reference(text, "@" if "@" in text else ":")


@app.command()
def promote(
    image: Annotated[
        str | None, typer.Argument(help="<feed>/<repository>:<version> to promote.")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Target feed.")] = None,
    to_version: Annotated[
        str | None, typer.Option("--to-version", help="Tag in the target (default: the same).")
    ] = None,
    comments: Annotated[str | None, typer.Option(help="Why; kept in the history.")] = None,
    history: Annotated[bool, typer.Option("--history", help="List past promotions.")] = False,
    feed: Annotated[str | None, typer.Option(help="--history: only this feed.")] = None,
    package: Annotated[str | None, typer.Option(help="--history: only this repository.")] = None,
    version: Annotated[str | None, typer.Option(help="--history: only this version.")] = None,
    url: UrlOption = None,
) -> None:
    """Promote an image to another feed (optionally retagging it), or show the history."""
    if history:
        params = {
            k: v for k, v in (("feed", feed), ("package", package), ("version", version)) if v
        }
        for record in _call(url, "GET", "/api/promotions/list", params=params):
            retag = f" as {record['toVersion']}" if record["toVersion"] != record["version"] else ""
            typer.echo(
                f"{record['promoted']}  {record['fromFeed']} -> {record['toFeed']}  "
                f"{record['packageName']}:{record['version']}{retag}  {record['digest'][:19]}  "
                f"by {record['promotedBy']}  {record['comments'] or ''}"
            )
        return
    if image is None or to is None:
        typer.echo("usage: semreg promote <feed>/<repository>:<version> --to <feed>", err=True)
        raise typer.Exit(2)
    source_feed, repo, source_version = _split_reference(image, ":")
    body = {
        "packageName": repo,
        "version": source_version,
        "fromFeed": source_feed,
        "toFeed": to,
        "comments": comments,
        "toVersion": to_version,
    }
    _print(_call(url, "POST", "/api/promotions/promote", json=body))


@tag_app.command("add")
def tag_add(
    image: Annotated[str, typer.Argument(help="<feed>/<repository>:<tag> or ...@<digest>")],
    name: Annotated[str, typer.Argument(help="The new tag.")],
    force: Annotated[bool, typer.Option("--force", help="Move the tag if it exists.")] = False,
    url: UrlOption = None,
) -> None:
    """Point a new tag at an existing image."""
    feed, repo, target = _split_tagged(image)
    params = {"feed": feed, "repo": repo, "target": target, "name": name}
    if force:
        params["force"] = "true"
    result = _call(url, "POST", "/api/containers/tags/create", params=params)
    typer.echo(f"{result['result']}: {feed}/{repo}:{name} -> {result['digest']}")


@tag_app.command("delete")
def tag_delete(
    image: Annotated[str, typer.Argument(help="<feed>/<repository>:<tag>")], url: UrlOption = None
) -> None:
    """Delete a tag (the image stays)."""
    feed, repo, tag = _split_reference(image, ":")
    _call(
        url, "POST", "/api/containers/tags/delete", params={"feed": feed, "repo": repo, "tag": tag}
    )
    typer.echo(f"deleted tag {image}")


@image_app.command("delete")
def image_delete(
    image: Annotated[str, typer.Argument(help="<feed>/<repository>@<digest>")],
    url: UrlOption = None,
) -> None:
    """Delete an image, with every tag on it."""
    feed, repo, digest = _split_reference(image, "@")
    params = {"feed": feed, "repo": repo, "digest": digest}
    _call(url, "POST", "/api/containers/images/delete", params=params)
    typer.echo(f"deleted image {image}")


if __name__ == "__main__":
    app()
