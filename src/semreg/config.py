"""Settings: one frozen object, loaded once at startup.

Precedence: explicit arguments > environment (``SEMREG_`` prefix, ``__`` nesting) > TOML file
(``--config`` or ``SEMREG_CONFIG``) > defaults. The short names users meet (``SEMREG_DATABASE_URL``,
``SEMREG_ADMIN_API_KEY``, ``SEMREG_URL``, ``SEMREG_API_KEY``) are mapped here. This is the only
module that reads ``os.environ``. Imports: pydantic, pydantic-settings, stdlib.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# Environment names that predate the nested scheme and stay as documented aliases.
_SHORT_ENV = {
    "SEMREG_DATABASE_URL": ("database", "url"),
    "SEMREG_ADMIN_API_KEY": ("auth", "admin_api_key"),
    "SEMREG_DATA": ("data_dir",),
}


_toml_file: Path | None = None


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=0, le=65535)
    # The URL clients use to reach the server; derived from the request when unset.
    public_url: str | None = None
    # Manifests larger than this are refused (distribution-spec: registries SHOULD accept 4 MiB).
    max_manifest_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are
    # believed. None by default: a client cannot pick the address its sign-ins are counted for.
    trusted_proxies: tuple[str, ...] = ()
    # A request's headers must be complete this soon after its first byte, and this small.
    header_timeout_seconds: float = Field(default=20.0, gt=0, le=3600)
    max_header_bytes: int = Field(default=64 * 1024, ge=4096, le=16 * 1024 * 1024)
    # A request body (an upload too) that sends nothing for this long fails with 408.
    body_idle_seconds: float = Field(default=60.0, gt=0, le=3600)
    # Bodies of /api requests (JSON or forms) larger than this are refused with 413.
    max_api_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    # Connections (and requests in progress) per process beyond this get 503 at once.
    max_connections: int = Field(default=1024, ge=1)
    # Upload sessions one key or user may have in progress (written within the last hour).
    max_uploads_per_principal: int = Field(default=1000, ge=1)
    # --- limits on hostile input (issue 9); docs/configuration.md "Limits" ---------------------
    # Descriptors one manifest may list (config + layers) or one index (manifests); each is a
    # parameter of one query, and PostgreSQL takes at most 32,767.
    max_manifest_references: int = Field(default=4096, ge=1, le=10_000)
    # Entries of one page of /v2/_catalog and /v2/<name>/tags/list; a larger n gets this many
    # and a Link to the next page (the catalog pages by this when n is absent).
    max_page_size: int = Field(default=10_000, ge=1, le=100_000)
    # --- end of limits ----------------------------------------------------------------------


class DatabaseSettings(_Section):
    # Empty means SQLite in the data folder.
    url: str = ""
    echo: bool = False
    pool_size: int = Field(default=10, ge=1)


class FilesystemStorage(_Section):
    type: Literal["filesystem"] = "filesystem"
    # Empty means the data folder.
    path: str = ""


class StorageSettings(_Section):
    backend: FilesystemStorage = FilesystemStorage()
    # While a chunk streams in, its durable size is recorded every this many MiB: a crash loses
    # at most that much of an upload, which the client resumes at once.
    upload_checkpoint_mib: int = Field(default=8, ge=1, le=1024)
    # ...but at most once per this many seconds per chunk (each checkpoint is an fsync).
    upload_checkpoint_seconds: float = Field(default=1.0, ge=0, le=3600)


class AuthSettings(_Section):
    # Full-control key registered at start (automation, tests); else one is made on first start.
    admin_api_key: SecretStr | None = None
    # HMAC key for tokens; default: <data>/token-signing.key, created on first start. Set the
    # same value on every process when several share one database.
    token_secret: SecretStr | None = None
    token_ttl_seconds: int = Field(default=300, ge=30, le=86_400)
    # The token "service" (audience); default: host:port of public_url or of each request.
    service: str | None = None
    # Opt-in: a token on /v2 acts as the principal that obtained it (ProGet seed scripts reuse one
    # token across feeds and actions). Default: strictly the scopes of its access claim.
    token_acts_as_principal: bool = False
    # Accept user:password as Basic credentials on /api (keys are always accepted).
    api_basic_passwords: bool = True
    failure_limit: int = Field(default=10, ge=1)
    failure_window_seconds: int = Field(default=300, ge=1)
    # How long a process trusts what it looked up about a token's key or user: a revoked key, a
    # deleted user or a withdrawn permission ends that principal's tokens within this time.
    principal_cache_seconds: float = Field(default=5.0, ge=0, le=60)

    @field_validator("token_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("token_secret must be at least 32 bytes (e.g. openssl rand -hex 32)")
        return value


class TestingSettings(_Section):
    # Fault-injection tests only: die with SIGKILL at the crash_after-th visit of this point
    # (semreg.crashpoints.POINTS). Never set in production.
    crash_point: str | None = None
    crash_after: int = Field(default=1, ge=1)


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = True


class Settings(BaseSettings):
    """Every setting of a semreg server; see ``docs/configuration.md``."""

    model_config = SettingsConfigDict(
        env_prefix="SEMREG_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        toml_file=None,
    )

    data_dir: Path = Path("data")
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = StorageSettings()
    auth: AuthSettings = AuthSettings()
    log: LogSettings = LogSettings()
    testing: TestingSettings = TestingSettings()

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        object.__setattr__(self, "data_dir", self.data_dir.expanduser().resolve())
        return self

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL, defaulting to SQLite in the data folder."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.data_dir / 'semreg.db'}"

    @property
    def storage_path(self) -> Path:
        path = self.storage.backend.path
        return Path(path).expanduser().resolve() if path else self.data_dir

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = _toml_file or os.environ.get("SEMREG_CONFIG")
        if toml:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml)))
        return tuple(sources)


def _merge(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target.setdefault(path[-1], value)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if value:
                out[key] = value
        elif value is not None:
            out[key] = value
    return out


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load and validate settings once; ``overrides`` are nested dicts of explicit values.

    Raises:
        pydantic.ValidationError: a setting is invalid (reported before anything starts).
    """
    global _toml_file
    _toml_file = config_file
    explicit = _drop_none(overrides)
    for env_name, path in _SHORT_ENV.items():
        value = os.environ.get(env_name)
        if value:
            _merge(explicit, path, value)
    return Settings(**explicit)


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for output and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else f":***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def client_url() -> str:
    """The server URL for CLI commands (``SEMREG_URL``)."""
    return os.environ.get("SEMREG_URL", "http://127.0.0.1:5000")


def client_api_key() -> str | None:
    """The API key for CLI commands (``SEMREG_API_KEY``)."""
    return os.environ.get("SEMREG_API_KEY") or None


def hand_down(config_file: Path | None, **overrides: Any) -> None:
    """Put explicit settings into the environment, for worker processes that load their own.

    Environment outranks the TOML file, so the workers end up with what this process loaded.
    """
    if config_file is not None:
        os.environ["SEMREG_CONFIG"] = str(config_file)

    def flatten(prefix: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            name = f"{prefix}__{key.upper()}" if prefix != "SEMREG" else f"SEMREG_{key.upper()}"
            if isinstance(value, dict):
                flatten(name, value)
            else:
                os.environ[name] = str(value)

    flatten("SEMREG", _drop_none(overrides))
