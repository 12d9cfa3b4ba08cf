"""Composition root of the HTTP server: ``create_app(settings)``.

The lifespan opens the database (running migrations), the blob store and the services; a small
ASGI middleware stamps every response with the API version and a request id and writes the
access log. Imports: config, services, api; metadata and storage only to build them here.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from semreg.api import errors, routes_api, routes_v2
from semreg.api.logs import configure_logging, request_id
from semreg.config import Settings
from semreg.domain.errors import ErrorCode, RegistryError
from semreg.metadata import migrate
from semreg.metadata.engine import Database, create_engine
from semreg.services.container import Services
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


def create_app(settings: Settings) -> FastAPI:
    """The semreg ASGI application for ``settings``."""
    configure_logging(settings.log.level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            settings.database_url,
            echo=settings.database.echo,
            pool_size=settings.database.pool_size,
        )
        await migrate.upgrade(engine)
        db = Database(engine)
        store = open_blob_store(settings.storage_path)
        app.state.services = Services.build(db, store, settings.server.max_manifest_bytes)
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
            RequestValidationError: _validation_error,
            Exception: errors.unexpected_error_handler,
        },
    )
    app.router.routes.extend(routes_v2.routes)
    app.include_router(routes_api.router)
    app.include_router(routes_api.containers)
    app.add_middleware(RegistryHeaders, access_log=settings.log.access_log)
    return app
