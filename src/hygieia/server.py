"""``hygieia serve``: logging set-up and uvicorn around ``create_app``."""

from __future__ import annotations

import argparse
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


def serve_main(argv: list[str]) -> None:
    """``hygieia serve [--host H] [--port P]`` (same options as the Typer command)."""
    parser = argparse.ArgumentParser(prog="hygieia serve", description="Run the Hygieia server.")
    parser.add_argument("--host", help="Bind address (HYGIEIA_HOST)")
    parser.add_argument("--port", type=int, help="Port (HYGIEIA_PORT)")
    args = parser.parse_args(argv)
    run(host=args.host, port=args.port)
