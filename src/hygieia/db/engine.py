"""The server's database: ``open_database(settings)``, the engine and session factory,
and migrations through Alembic (``migrate``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from hygieia.datadir import prepare_data_dir

if TYPE_CHECKING:
    from alembic.config import Config

    from hygieia.config import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest migration; a test checks it against Alembic's head.
SCHEMA_HEAD = "0011"


def open_database(settings: Settings) -> Engine:
    """The database ``settings`` name, its schema brought to the head: how every server
    command (``serve``, ``db upgrade``, ``admin …``) and ``create_app`` open it.

    The caller disposes of the engine. The data directory is made private first (it
    holds the default SQLite file; see :mod:`hygieia.datadir`).
    """
    prepare_data_dir(settings)
    engine = make_engine(settings.resolved_database_url())
    try:
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # Pool as large as the server's worker threads, so connections (and the PRAGMAs
        # below) are not set up again under load.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent; safe on every start).

    When the schema is already at the head, Alembic (and the Mako/Pygments stack it
    imports, ~10 MB of RSS for the server's lifetime) is not even loaded.
    """
    if revision == "head" and current_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)
