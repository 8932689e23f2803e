"""Application factory: ``create_app(settings)`` wires DB, blob store, routes and errors."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hygieia import __version__
from hygieia.api.error_handlers import install_error_handlers
from hygieia.api.hosts import AllowedHostsMiddleware
from hygieia.api.middleware import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    PublicCorsMiddleware,
    SecurityHeadersMiddleware,
    content_security_policy,
)
from hygieia.api.routes import auth, emergency, factors, links, meta, passkeys, rotation, sharing
from hygieia.api.routes import records as record_routes
from hygieia.api.uploads import UploadSlots
from hygieia.config import Settings
from hygieia.db.engine import open_database, session_factory
from hygieia.services import maintenance, ratelimit
from hygieia.services.common import Clock, utcnow
from hygieia.services.hashing import HashLimiter
from hygieia.web import STATIC_DIR

log = logging.getLogger("hygieia")

API = "/api/v1"
#: The SMART Health Link routes anyone may call (services.links; CORS for viewers).
SHL_PREFIXES = (f"{API}/shl/", f"{API}/shl-files/")


def create_app(
    settings: Settings, *, store: Any | None = None, clock: Clock | None = None
) -> FastAPI:
    """Build the app. ``store`` overrides the configured blob store (tests).

    ``clock`` (default: the real UTC time) is what emergency access measures its
    waiting periods with, and share links their expiry and location URLs. Only code
    can pass another (tests advance a fake one instead of sleeping for days): no
    setting or environment variable reaches it, so a deployed server always runs on
    the real time.

    Nothing is opened here: the database (migrated on the way) and the blob store are
    opened when the server starts (the lifespan) and closed when it stops.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        app.state.read_limiter = anyio.CapacityLimiter(settings.read_threads)
        engine = open_database(settings)
        app.state.engine = engine
        # Reads that need no transaction (the listing): no BEGIN, and nothing to roll
        # back when the connection goes back to the pool (a round trip each on PostgreSQL).
        app.state.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        app.state.sessionmaker = session_factory(engine)
        try:
            app.state.store = _open_stores(settings, store)
            if settings.reconcile_on_start:
                _maintain(app)
            loops = []
            if settings.reconcile_interval_seconds:
                loops.append(
                    _every(settings.reconcile_interval_seconds, _maintain, app, "maintenance")
                )
            if settings.replicate_interval_seconds:
                loops.append(
                    _every(settings.replicate_interval_seconds, _replicate, app, "replication")
                )
            if settings.scrub_interval:
                loops.append(_every(settings.scrub_interval, _scrub, app, "scrub"))
            tasks = [asyncio.create_task(loop) for loop in loops]
            yield
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            close = getattr(app.state.store, "close", None)
            if close is not None:
                close()
        finally:
            engine.dispose()

    app = FastAPI(
        title="Hygieia",
        version=__version__,
        summary="End-to-end encrypted vault for personal medical records",
        openapi_url=f"{API}/openapi.json",
        docs_url=f"{API}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock or utcnow
    app.state.trusted_proxies = [ipaddress.ip_network(n) for n in settings.trusted_proxies]
    # Server-side Argon2id work of every account route shares these slots (per process:
    # they bound this machine's CPU).
    app.state.hash_limiter = HashLimiter(slots=settings.hash_concurrency, queue=settings.hash_queue)
    app.state.upload_slots = UploadSlots(
        total=settings.max_uploads, per_account=settings.max_uploads_per_account
    )
    install_error_handlers(app)
    app.include_router(meta.router, prefix=API)
    app.include_router(auth.router, prefix=API)
    app.include_router(factors.router, prefix=API)
    app.include_router(passkeys.router, prefix=API)
    app.include_router(record_routes.router, prefix=API)
    app.include_router(sharing.router, prefix=API)
    app.include_router(emergency.router, prefix=API)
    app.include_router(links.router, prefix=API)
    app.include_router(links.public, prefix=API)
    app.include_router(rotation.router, prefix=API)

    def limit_for(path: str) -> int:
        if path.rstrip("/") == f"{API}/records":
            # The meta part (≤ 256 KiB) and multipart framing ride on top of the record.
            return settings.max_record_bytes + 512 * 1024
        if path.rstrip("/") == f"{API}/links":
            # The link's files (JWEs, bounded by HYGIEIA_MAX_LINK_BYTES) + meta + framing.
            return settings.max_link_bytes + 512 * 1024
        if path.startswith(SHL_PREFIXES):
            return 16 * 1024  # a manifest request is a few hundred bytes
        return settings.max_json_bytes

    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="web")
    app.add_middleware(
        BodyLimitMiddleware, limit_for=limit_for, idle_timeout=settings.body_idle_timeout
    )
    # Before anything reads the request; inside the headers and access-log middleware,
    # so a refused host is logged and gets the usual hardening headers.
    app.add_middleware(AllowedHostsMiddleware, allowed_hosts=settings.resolved_allowed_hosts())
    app.add_middleware(
        SecurityHeadersMiddleware, csp=content_security_policy(settings.gateway_origins)
    )
    app.add_middleware(PublicCorsMiddleware, prefixes=SHL_PREFIXES)
    app.add_middleware(AccessLogMiddleware)  # last added is outermost: it sees every answer
    return app


def _maintain(app: FastAPI) -> maintenance.Outcome:
    """Prune stale throttle rows, reconcile store and index (see services.maintenance)."""
    settings: Settings = app.state.settings
    return maintenance.run(
        app.state.engine,
        app.state.sessionmaker,
        app.state.store,
        grace=timedelta(seconds=settings.reconcile_grace_seconds),
        # Throttle buckets untouched for longer than any window count for nothing.
        prune_older_than_seconds=max(settings.login_window_seconds, ratelimit.HOUR),
    )


def _replicate(app: FastAPI) -> maintenance.Outcome:
    """Make the copies records lack (see services.copies)."""
    return maintenance.replicate(app.state.engine, app.state.sessionmaker, app.state.store)


def _scrub(app: FastAPI) -> maintenance.Outcome:
    """Check a budget's worth of copies and repair the bad ones (see services.copies)."""
    return maintenance.scrub(
        app.state.engine,
        app.state.sessionmaker,
        app.state.store,
        repair=True,
        budget_bytes=app.state.settings.scrub_budget_bytes,
    )


async def _every(interval: int, work: Callable[[FastAPI], object], app: FastAPI, name: str) -> None:
    """``work`` every ``interval`` seconds, in a worker thread."""
    while True:
        await asyncio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(work, app)
        except Exception as exc:  # the next turn tries again; serving goes on
            log.warning("%s failed: %s", name, type(exc).__name__)


def _open_stores(settings: Settings, store: Any | None) -> Any:
    from hygieia.storage import open_stores

    return open_stores(settings, store)
