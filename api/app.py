"""The FastAPI application: `create_app(settings)`; `steel serve` runs it under uvicorn."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import re
import signal
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from steel_data import __version__

from api.datasets import DatasetCatalog
from api.deps import AppContext
from api.paths import PathPolicy
from api.routers import datasets, health, jobs, ops
from api.runner import JobRunner
from api.settings import Settings
from api.store import JobStore

log = logging.getLogger("steel.api")

DESCRIPTION = """Submit cleaning jobs, watch them, inspect why each operator dropped what it dropped, and
stream packed token samples into training.

Writes need `Authorization: Bearer <STEEL_API_TOKEN>` (reads too when the server sets STEEL_AUTH_READS=1).
Paths in requests are relative to the server's first data root, or absolute inside a data root."""


class BodyTooLarge(HTTPException):
    """Raised from inside `receive`: an HTTPException, so FastAPI's body parsing passes it on as a 413."""

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body over {max_bytes} bytes")


class BodyLimit:
    """Refuses request bodies over `max_bytes` with 413, by Content-Length or while they arrive."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return await _send_json(send, 400, "bad Content-Length")
                if length > self.max_bytes:
                    return await _send_json(send, 413, f"request body over {self.max_bytes} bytes")
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, f"request body over {self.max_bytes} bytes")


async def _send_json(send, status: int, detail: str) -> None:
    import orjson

    body = orjson.dumps({"detail": detail})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


DIE_WITH_PARENT_ENV = "STEEL_SERVE_DIE_WITH_PARENT"


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except OSError:
        log.warning("cannot tie this server process to its supervisor (no prctl)")


def create_app(settings: Settings | None = None, start_runner: bool = True) -> FastAPI:
    settings = settings or Settings.from_env()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.database_url)
    policy = PathPolicy(settings.data_roots, settings.state_dir)
    ctx = AppContext(settings=settings, store=store, runner=JobRunner(settings, store), policy=policy,
                     datasets=DatasetCatalog(settings.datasets_dir))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if os.environ.get(DIE_WITH_PARENT_ENV):  # a worker of `steel serve --workers N`: go when the supervisor goes
            _die_with_parent()
        if start_runner:
            ctx.runner.start()
        # Everything built so far (the app, its routes and models, the imported modules) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it. The samples fast path
        # allocates hundreds of buffer views per request, which set collections off; each full one walked the
        # whole app (about 4 % of the server's CPU under a stream client, in perf).
        gc.freeze()
        try:
            yield
        finally:
            if start_runner:
                ctx.runner.stop()

    app = FastAPI(title="Steel API", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.ctx = ctx
    for r in (health.router, jobs.router, ops.router, datasets.router):
        app.include_router(r)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # list every method of the path, not only the first matching route's
            methods = set()
            for template, item in app.openapi().get("paths", {}).items():
                pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
                if re.match(pattern, request.url.path):
                    methods |= {m.upper() for m in item}
            headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RecursionError)
    async def too_deep(request: Request, exc: RecursionError):
        return JSONResponse({"detail": "request nested too deeply"}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = []
        for e in exc.errors():
            e = {k: v for k, v in e.items() if k in ("loc", "msg", "type")}
            errors.append(e)
        return JSONResponse({"detail": errors}, status_code=422)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _document_auth(app, settings)
    return app


def _document_auth(app: FastAPI, settings: Settings) -> None:
    """The OpenAPI document says what this server enforces: the bearer scheme on writes, on reads only with
    STEEL_AUTH_READS, nowhere without a token."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            for item in schema.get("paths", {}).values():
                for method, op in item.items():
                    if settings.token is None or (method == "get" and not settings.auth_reads):
                        op.pop("security", None)
                        op.get("responses", {}).pop("401", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def serving_app(settings: Settings | None = None, start_runner: bool = True):
    """What `steel serve` runs: the FastAPI app of `create_app`, with the samples fast path in front of it (unless
    STEEL_FAST_SAMPLES=0). In front of everything, so that the fast path gets uvicorn's own `send` and can hand a
    response's buffers to the connection without joining them (`api.routers.datasets.SamplesFastPath`); a
    request with a body never takes the fast path, so BodyLimit has nothing to check there."""
    app = create_app(settings, start_runner)
    ctx = app.state.ctx
    return datasets.SamplesFastPath(app, ctx) if ctx.settings.fast_samples else app


def app_from_env():
    """uvicorn factory: `uvicorn --factory api.app:app_from_env`."""
    return serving_app(Settings.from_env())
