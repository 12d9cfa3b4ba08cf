"""The ``semreg`` CLI's client commands against a running server, and ``config check``."""

from __future__ import annotations

import json
import os
import subprocess

import httpx

from tests.conftest import unique
from tests.factories import make_image
from tests.registry_client import assert_error, push_image
from tests.server import semreg_command


def semreg(registry, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMREG_")}
    env |= {"SEMREG_URL": registry.url, "SEMREG_API_KEY": key or registry.admin_key}
    return subprocess.run(
        [*semreg_command(), *args], capture_output=True, text=True, env=env, timeout=120
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_key_commands(registry, client, feed):
    push_image(client, f"{feed}/app", make_image(1, seed="cli-key"), "1.0.0")
    name = unique("ci")
    key = ok(
        semreg(
            registry,
            "key",
            "create",
            "--feed",
            feed,
            "--permission",
            "view",
            "--permission",
            "add",
            "--name",
            name,
        )
    ).strip()
    assert key.startswith("semreg_")
    with httpx.Client(base_url=registry.url, auth=("api", key)) as as_key:
        assert as_key.get(f"/v2/{feed}/app/manifests/1.0.0").status_code == 200
        assert_error(as_key.delete(f"/v2/{feed}/app/manifests/1.0.0"), 403, "DENIED")

    listing = ok(semreg(registry, "key", "list"))
    line = next(line for line in listing.splitlines() if name in line)
    assert key not in listing
    assert "feed" in line
    assert "add,view" in line
    key_id = line.split()[0]
    assert ok(semreg(registry, "key", "revoke", key_id)).startswith("revoked")
    with httpx.Client(base_url=registry.url, auth=("api", key)) as as_key:
        assert_error(as_key.get(f"/v2/{feed}/app/manifests/1.0.0"), 401, "UNAUTHORIZED")
    refused = semreg(registry, "key", "revoke", key_id)
    assert refused.returncode == 1
    assert "error 404" in refused.stderr


def test_user_commands(registry, feed):
    name = unique("alice")
    ok(semreg(registry, "user", "create", name, "--password", "correct horse battery"))
    ok(semreg(registry, "user", "grant", name, "--feed", feed, "--permission", "view"))
    listing = ok(semreg(registry, "user", "list"))
    assert f"{feed}: view" in next(line for line in listing.splitlines() if name in line)
    with httpx.Client(base_url=registry.url, auth=(name, "correct horse battery")) as user:
        assert_error(
            user.get(f"/v2/{feed}/app/tags/list"), 404, "NAME_UNKNOWN"
        )  # allowed, just empty
    ok(semreg(registry, "user", "delete", name))
    assert name not in ok(semreg(registry, "user", "list"))


def test_feed_versioning_and_release_commands(registry, client):
    feed = unique("clirel")
    created = json.loads(
        ok(
            semreg(
                registry,
                "feed",
                "create",
                feed,
                "--versioning",
                "--permit",
                "stable",
                "--permit",
                "nightly-*",
                "--anonymous-view",
            )
        )
    )
    assert created["containerVersioning"] is True
    assert created["permittedTags"] == ["stable", "nightly-*"]
    assert created["anonymousView"] is True
    images = {v: make_image(1, seed=f"cli-{v}") for v in ("1.0.0", "1.1.0")}
    for version, image in images.items():
        push_image(client, f"{feed}/app", image, version)

    releases = json.loads(ok(semreg(registry, "release", "list", f"{feed}/app", "--json")))
    assert [r["version"] for r in releases] == ["1.1.0", "1.0.0"]
    assert releases[0]["virtualTags"] == ["1", "1.1", "latest"]
    table = ok(semreg(registry, "release", "list", f"{feed}/app"))
    assert table.splitlines()[0].startswith("1.1.0")

    assert client.delete(f"/v2/{feed}/app/manifests/1.1.0").status_code == 202
    ok(semreg(registry, "release", "purge", f"{feed}/app", "1.1.0"))
    other = make_image(1, seed="cli-other")
    push_image(client, f"{feed}/app", other, "1.1.0")  # the purged version is free again

    updated = json.loads(ok(semreg(registry, "feed", "update", feed, "--no-versioning")))
    assert updated["containerVersioning"] is False
    assert updated["permittedTags"] == ["stable", "nightly-*"]
    cleared = json.loads(ok(semreg(registry, "feed", "update", feed, "--clear-permitted")))
    assert cleared["permittedTags"] == []


def config_check(tmp_path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*semreg_command(), "config", "check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )


def test_config_check_redacts_secrets(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMREG_")}
    env |= {
        "SEMREG_ADMIN_API_KEY": "semreg_do-not-print-me",
        "SEMREG_AUTH__TOKEN_SECRET": "also-secret-also-secret-also-secret",
        "SEMREG_DATABASE_URL": "postgresql+asyncpg://semreg:db-password-here@db.internal/semreg",
    }
    result = config_check(tmp_path, env)
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["auth"]["admin_api_key"] == "**********"
    for secret in ("do-not-print-me", "also-secret", "db-password-here"):
        assert secret not in result.stdout
        assert secret not in result.stderr
    assert effective["database_url"] == "postgresql+asyncpg://semreg:***@db.internal/semreg"
    assert effective["database"]["url"] == effective["database_url"]

    sqlite = config_check(tmp_path, {k: v for k, v in env.items() if k != "SEMREG_DATABASE_URL"})
    assert json.loads(sqlite.stdout)["database_url"].startswith("sqlite+aiosqlite:///")

    # A short token secret is refused, and the refusal does not print it either.
    short = config_check(tmp_path, env | {"SEMREG_AUTH__TOKEN_SECRET": "short-but-secret"})
    assert short.returncode == 2
    assert "at least 32 bytes" in short.stderr
    assert "short-but-secret" not in short.stderr + short.stdout

    bad = subprocess.run(
        [*semreg_command(), "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env | {"SEMREG_SERVER__PORT": "not-a-port"},
    )
    assert bad.returncode == 2
    assert "invalid configuration" in bad.stderr
