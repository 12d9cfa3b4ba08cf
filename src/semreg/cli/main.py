"""The ``semreg`` command: ``serve``, ``config check`` and the client commands (``feed ...``).

Client commands talk to a running server over HTTP (``--url`` / ``SEMREG_URL``). This is a
composition root: it reads config and builds the app. Imports: config, api, httpx, typer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import uvicorn
from pydantic import ValidationError

from semreg.config import client_api_key, client_url, load_settings

app = typer.Typer(
    help="semreg: a container registry that keeps tags trustworthy.", no_args_is_help=True
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
feed_app = typer.Typer(help="Manage feeds on a running server.", no_args_is_help=True)
app.add_typer(config_app, name="config")
release_app = typer.Typer(help="Releases of versioned feeds.", no_args_is_help=True)
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
        typer.echo(f"invalid configuration:\n{exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    data: Annotated[Path | None, typer.Option(help="Data folder (database, blobs).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the registry server."""
    from semreg.api.app import create_app

    settings = _load(config, data_dir=data, server={"host": host, "port": port})
    uvicorn.run(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        access_log=False,
        log_level=settings.log.level.lower(),
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
    )


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration and print it, secrets redacted."""
    settings = _load(config)
    effective = json.loads(settings.model_dump_json())
    effective["database_url"] = settings.database_url
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
        try:
            errors = response.json()["errors"]
            message = "; ".join(e["message"] for e in errors)
        except (ValueError, KeyError, TypeError):
            message = response.text or response.reason_phrase
        typer.echo(f"error {response.status_code}: {message}", err=True)
        raise typer.Exit(1)
    return response.json() if response.content else None


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
    url: UrlOption = None,
) -> None:
    """Change a feed's settings; options not given keep their value."""
    permitted = [] if clear_permitted else permit
    body = {
        "active": active,
        "description": description,
        "containerVersioning": versioning,
        "permittedTags": permitted,
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


if __name__ == "__main__":
    app()
