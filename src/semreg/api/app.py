"""Composition root of the HTTP server: ``create_app(settings)``.

The lifespan opens the database (running migrations), the blob store and the services; a small
ASGI middleware stamps every response with the API version and a request id and writes the
access log. Imports: config, services, api; metadata and storage only to build them here.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from semreg import crashpoints
from semreg.api import (
    errors,
    routes_api,
    routes_keys,
    routes_promotion,
    routes_token,
    routes_v2,
)
from semreg.api.fastpath import FastPath
from semreg.api.limits import RequestLimits
from semreg.api.logs import configure_logging, request_id
from semreg.api.protocol import GuardedHttpToolsProtocol
from semreg.config import Settings, load_settings
from semreg.domain.errors import ErrorCode, RegistryError
from semreg.metadata import migrate
from semreg.metadata.engine import Database, create_engine
from semreg.metadata.hot import open_hot_reads
from semreg.services.container import Services
from semreg.services.tokens import AuthConfig
from semreg.storage.factory import open_blob_store

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("semreg.access")


class RegistryHeaders:
    """Adds ``Docker-Distribution-API-Version`` and ``X-Request-Id``; logs each request."""

    def __init__(self, app: ASGIApp, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex[:16]
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"docker-distribution-api-version", b"registry/2.0"))
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:  # noqa: BLE001 - the one place unexpected errors end
            # Logged once here; re-raising would make the server log it a second time.
            errors.log_unexpected(scope, exc)
            if status == 0:
                await errors.internal_error_response()(scope, receive, send_with_headers)
        finally:
            if self.access_log:
                access_logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id.reset(token)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(p) for p in err["loc"][1:]), "problem": err["msg"]}
        for err in exc.errors()
    ]
    message = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in problems)
    return JSONResponse(
        errors.envelope(
            ErrorCode.REQUEST_INVALID, f"invalid request: {message}", {"fields": problems}
        ),
        status_code=400,
    )


BOOTSTRAP_KEY_FILE = "admin-api-key"
SIGNING_KEY_FILE = "token-signing.key"


def _write_private(path: Path, data: bytes) -> bool:
    """Create ``path``, readable by its owner only, with ``data``; False if it already exists.

    Written aside and linked into place, so a process starting at the same moment never reads
    a half-written file.
    """
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(scratch, path)
    except FileExistsError:
        return False
    finally:
        scratch.unlink(missing_ok=True)
    return True


def _auth_config(settings: Settings) -> AuthConfig:
    auth = settings.auth
    if auth.token_secret is not None:
        secret = auth.token_secret.get_secret_value().encode()
    else:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = settings.data_dir / SIGNING_KEY_FILE
        _write_private(path, secrets.token_hex(32).encode())
        secret = path.read_bytes().strip()
    return AuthConfig(
        token_secret=secret,
        token_ttl=timedelta(seconds=auth.token_ttl_seconds),
        failure_limit=auth.failure_limit,
        failure_window=timedelta(seconds=auth.failure_window_seconds),
        principal_cache=timedelta(seconds=auth.principal_cache_seconds),
    )


def _announce_bootstrap_key(path: Path, key: str) -> None:
    path.unlink(missing_ok=True)
    _write_private(path, key.encode() + b"\n")
    # Printed once, on purpose, to the console of whoever started the first server.
    print(
        f"semreg: created a full-control API key (shown once; also in {path}, mode 600):\n"
        f"  {key}\n",
        flush=True,
    )


def create_app_from_environment() -> FastAPI:
    """The app of one worker process of ``semreg serve --workers N`` (settings from env)."""
    return create_app(load_settings())


def create_app(settings: Settings) -> FastAPI:
    """The semreg ASGI application for ``settings``."""
    configure_logging(settings.log.level)
    if settings.testing.crash_point:
        crashpoints.arm(settings.testing.crash_point, settings.testing.crash_after)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        engine = create_engine(
            settings.database_url,
            echo=settings.database.echo,
            pool_size=settings.database.pool_size,
        )
        await migrate.upgrade(engine)
        db = Database(engine, await open_hot_reads(engine))
        store = open_blob_store(settings.storage_path)
        services = Services.build(
            db,
            store,
            settings.server.max_manifest_bytes,
            _auth_config(settings),
            settings.storage.upload_checkpoint_mib * 1024 * 1024,
            max_manifest_references=settings.server.max_manifest_references,
            max_uploads_per_principal=settings.server.max_uploads_per_principal,
            checkpoint_seconds=settings.storage.upload_checkpoint_seconds,
        )
        app.state.services = services
        admin = settings.auth.admin_api_key
        created = await services.principals.ensure_bootstrap_key(
            admin.get_secret_value() if admin else None
        )
        if created is not None:
            _announce_bootstrap_key(settings.data_dir / BOOTSTRAP_KEY_FILE, created)
        logger.info("semreg started", extra={"database": engine.dialect.name})
        try:
            yield
        finally:
            await db.dispose()

    app = FastAPI(
        title="semreg",
        summary="A container registry that enforces semantic versioning of tags",
        version="0.1.0",
        lifespan=lifespan,
        exception_handlers={
            RegistryError: errors.registry_error_handler,
            HTTPException: errors.http_exception_handler,
            ClientDisconnect: errors.client_disconnect_handler,
            RequestValidationError: _validation_error,
        },
    )
    app.state.public_url = settings.server.public_url
    app.state.auth_service_name = settings.auth.service
    app.state.token_acts_as_principal = settings.auth.token_acts_as_principal
    app.state.api_passwords = settings.auth.api_basic_passwords
    app.state.max_page_size = settings.server.max_page_size
    app.router.routes.extend(routes_token.routes)
    app.router.routes.extend(routes_v2.routes)
    app.include_router(routes_api.router)
    app.include_router(routes_api.containers)
    app.include_router(routes_keys.keys)
    app.include_router(routes_promotion.promotions)
    app.include_router(routes_promotion.containers)
    app.include_router(routes_keys.users)
    app.add_middleware(FastPath)
    app.add_middleware(
        RequestLimits,
        body_idle_seconds=settings.server.body_idle_seconds,
        max_api_body_bytes=settings.server.max_api_body_bytes,
    )
    app.add_middleware(RegistryHeaders, access_log=settings.log.access_log)
    # The protocol class is chosen by ``semreg serve``; its limits come from the settings here,
    # in the process (each worker) that serves.
    GuardedHttpToolsProtocol.header_timeout = settings.server.header_timeout_seconds
    GuardedHttpToolsProtocol.max_header_bytes = settings.server.max_header_bytes
    return app
