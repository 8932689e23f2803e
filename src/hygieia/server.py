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
    from hygieia.storage import open_stores

    settings = Settings()
    seconds = settings.reconcile_grace_seconds if grace is None else grace
    engine = open_database(settings)
    try:
        with session_factory(engine)() as db, open_stores(settings) as store:
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


def admin_scrub(*, repair: bool, budget: int = 0) -> int:
    """Check every copy of every record, repair bad ones with ``repair``; the exit code
    (1 when a record has no good copy left, or a store could not be reached)."""
    from hygieia.services import maintenance
    from hygieia.services.copies import ScrubReport
    from hygieia.storage import open_stores

    settings = Settings()
    engine = open_database(settings)
    try:
        with open_stores(settings) as stores:
            outcome = maintenance.scrub(
                engine, session_factory(engine), stores, repair=repair, budget_bytes=budget
            )
    finally:
        engine.dispose()
    if not outcome.ran:
        print("another server process is replicating or scrubbing; try again", file=sys.stderr)
        return 2
    report = outcome.report
    assert isinstance(report, ScrubReport)
    print(f"checked {report.checked} copie(s), {report.bytes_read} byte(s) read")
    for record_id, store, what in report.damaged:
        print(f"record {record_id} on {store}: {what}")
    for record_id, store in report.repaired:
        print(f"  repaired record {record_id} on {store}")
    for store in report.unreachable:
        print(f"store {store}: unreachable, its copies were not checked", file=sys.stderr)
    if report.unfinished:
        print("stopped at the byte budget; the next run goes on from there")
    for record_id in report.lost:
        print(f"record {record_id}: no good copy left on any store", file=sys.stderr)
    if report.lost or report.unreachable:
        return 1
    if report.damaged and not repair:
        print("run with --repair to re-make the bad copies")
        return 1
    print("every copy checked is whole" if not report.damaged else "every bad copy repaired")
    return 0


def admin_replicate() -> int:
    """Make the copies records lack, once; the exit code (1 if some failed)."""
    from hygieia.services import maintenance
    from hygieia.services.copies import ReplicationReport
    from hygieia.storage import open_stores

    settings = Settings()
    engine = open_database(settings)
    try:
        with open_stores(settings) as stores:
            outcome = maintenance.replicate(engine, session_factory(engine), stores, limit=10_000)
    finally:
        engine.dispose()
    if not outcome.ran:
        print("another server process is replicating or scrubbing; try again", file=sys.stderr)
        return 2
    report = outcome.report
    assert isinstance(report, ReplicationReport)
    print(
        f"made {len(report.copied)} copie(s), {len(report.requested)} pin request(s) sent, "
        f"{report.waiting} waiting, {len(report.failed)} failed (retried later)"
    )
    return 1 if report.failed else 0


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
    scrub = admin_commands.add_parser(
        "scrub", help="Check every block of every copy of every record against its CID."
    )
    scrub.add_argument(
        "--repair", action="store_true", help="Re-make bad or missing copies from good ones."
    )
    scrub.add_argument(
        "--budget", type=int, default=0, help="Stop after reading this many bytes (0: all)."
    )
    admin_commands.add_parser("replicate", help="Make the copies records lack, now.")
    return parser


def main(argv: list[str]) -> None:
    """Run the server command in ``argv`` (without the program name)."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        serve(host=args.host, port=args.port)
    elif args.command == "db":
        db_upgrade()
    elif args.admin_command == "scrub":
        sys.exit(admin_scrub(repair=args.repair, budget=args.budget))
    elif args.admin_command == "replicate":
        sys.exit(admin_replicate())
    else:
        sys.exit(admin_reconcile(grace=args.grace))
