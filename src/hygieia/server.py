"""The server's commands: ``hygieia serve``, ``hygieia db upgrade``, ``hygieia admin …``.

``hygieia.__main__`` hands these commands here, so the client CLI never imports server
code, and the server never imports the client's UI libraries (Typer, Rich: ~11 MB of
RSS for the server's lifetime); hence plain ``argparse``. Every command opens the
database through :func:`hygieia.db.engine.open_database` (``serve`` through
``create_app``), so they all migrate it the same way.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import timedelta
from typing import Any

from hygieia._memory import tune_glibc_malloc
from hygieia.config import Settings
from hygieia.db.engine import open_database, session_factory


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def serve(*, host: str | None = None, port: int | None = None) -> None:
    """Run the server until it is stopped (SIGINT/SIGTERM)."""
    import uvicorn

    from hygieia.api import create_app

    settings = Settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    configure_logging(settings.log_level)
    tune_glibc_malloc()
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, **uvicorn_options(settings))


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves the app: deadlines for connections that stall (see
    :mod:`hygieia.http_protocol`), and no access log of its own (it prints query
    strings, and prelogin carries an email: ours doesn't)."""
    from hygieia.http_protocol import header_timeout_protocol

    return {
        "http": header_timeout_protocol(settings.header_timeout),
        "timeout_keep_alive": settings.keep_alive_timeout,
        "access_log": False,
        "log_config": None,
        "proxy_headers": False,
        "server_header": False,
    }


def db_upgrade() -> None:
    """Apply the database migrations, and nothing else."""
    open_database(Settings()).dispose()
    print("database is up to date")


def admin_reconcile(*, grace: int | None = None) -> int:
    """Release orphan pins and report records whose content is missing; the exit code."""
    from hygieia.services import records
    from hygieia.storage import make_store

    settings = Settings()
    seconds = settings.reconcile_grace_seconds if grace is None else grace
    engine = open_database(settings)
    try:
        with session_factory(engine)() as db, make_store(settings) as store:
            report = records.reconcile(
                db, store, grace=timedelta(seconds=seconds), check_content=True
            )
    finally:
        engine.dispose()
    print(f"released {len(report.unpinned)} orphan pin(s)")
    for cid in report.repinned:
        print(f"  pinned again {cid} (its pin was lost)")
    print(f"deleted {report.collected} unreferenced block file(s)")
    for cid in report.unpinned:
        print(f"  unpinned {cid}")
    if report.missing:
        for record_id in report.missing:
            print(f"record {record_id}: content missing from the store", file=sys.stderr)
        return 1
    print("every record's content is present")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hygieia", description="Hygieia server commands (see `hygieia --help` for the rest)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_cmd = commands.add_parser("serve", help="Run the Hygieia server.")
    serve_cmd.add_argument("--host", help="Bind address (HYGIEIA_HOST)")
    serve_cmd.add_argument("--port", type=int, help="Port (HYGIEIA_PORT)")

    db_cmd = commands.add_parser("db", help="Database maintenance")
    db_commands = db_cmd.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_commands.add_parser("upgrade", help="Apply database migrations.")

    admin_cmd = commands.add_parser("admin", help="Server administration")
    admin_commands = admin_cmd.add_subparsers(
        dest="admin_command", required=True, metavar="COMMAND"
    )
    reconcile = admin_commands.add_parser(
        "reconcile", help="Release orphan pins and report records whose content is missing."
    )
    reconcile.add_argument(
        "--grace", type=int, help="Seconds an orphan pin is left alone (default: config)"
    )
    return parser


def main(argv: list[str]) -> None:
    """Run the server command in ``argv`` (without the program name)."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        serve(host=args.host, port=args.port)
    elif args.command == "db":
        db_upgrade()
    else:
        sys.exit(admin_reconcile(grace=args.grace))
