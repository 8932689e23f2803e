"""``hygieia serve``: logging set-up and uvicorn around ``create_app``."""

from __future__ import annotations

import logging

import uvicorn

from hygieia._memory import limit_malloc_arenas
from hygieia.api import create_app
from hygieia.config import Settings


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run(*, host: str | None = None, port: int | None = None) -> None:
    settings = Settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    configure_logging(settings.log_level)
    limit_malloc_arenas()
    app = create_app(settings)
    # uvicorn's own access log prints query strings (prelogin carries an email): ours doesn't.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
    )
