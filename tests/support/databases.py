"""Throwaway databases: a SQLite file, or a fresh PostgreSQL database per use.

Most tests want a database already at the schema head. Migrating one per test costs
Alembic's start-up plus the DDL (most of a second on PostgreSQL), so
:class:`MigratedTemplates` migrates one template per backend once per session (per
xdist worker) and each test gets a copy: the file copied for SQLite,
``CREATE DATABASE … TEMPLATE`` for PostgreSQL. Every test still has its own database;
PostgreSQL ones are dropped by a background thread (a drop waits on the disk for most
of a second, time the next test need not spend waiting).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from hygieia.db.engine import make_engine, migrate

PG_ADMIN_URL = os.environ.get(
    "HYGIEIA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip locally; in CI a missing service is a failure, never a skip."""
    if in_ci():
        pytest.fail(f"required service unavailable in CI: {reason}")
    pytest.skip(reason)


def _create_postgres(template: str | None = None) -> str:
    """Create a database (a copy of ``template`` if given); return its name."""
    name = f"hyg_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    except OperationalError as exc:
        unavailable(f"PostgreSQL at {PG_ADMIN_URL}: {type(exc).__name__}")
    finally:
        admin.dispose()
    return name


def _drop_postgres(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _postgres_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def postgres_database(template: str | None = None) -> Iterator[str]:
    name = _create_postgres(template)
    try:
        yield _postgres_url(name)
    finally:
        _drop_postgres(name)


@contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema) of ``kind`` (``sqlite`` or ``postgres``)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        with postgres_database() as url:
            yield url


def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        # No connection may stay open: PostgreSQL copies a template only when nobody
        # is connected to it, and SQLite folds its WAL back into the file on close.
        engine.dispose()


class MigratedTemplates:
    """One migrated database per backend, made on first use and copied for each test."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._sqlite: Path | None = None
        self._postgres: str | None = None
        self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-db")
        self._drops: list[Future[None]] = []

    def _sqlite_template(self) -> Path:
        if self._sqlite is None:
            path = self._workdir / "template.db"
            _migrate(f"sqlite:///{path}")
            assert not path.with_name(path.name + "-wal").exists(), "template WAL not folded in"
            self._sqlite = path
        return self._sqlite

    def _postgres_template(self) -> str:
        if self._postgres is None:
            name = _create_postgres()
            try:
                _migrate(_postgres_url(name))
            except BaseException:
                _drop_postgres(name)
                raise
            self._postgres = name
        return self._postgres

    @contextmanager
    def database(self, kind: str, tmp_path: Path) -> Iterator[str]:
        """A database of ``kind`` at the schema head, this test's alone."""
        if kind == "sqlite":
            path = tmp_path / "test.db"
            shutil.copyfile(self._sqlite_template(), path)
            yield f"sqlite:///{path}"
        else:
            name = _create_postgres(self._postgres_template())
            try:
                yield _postgres_url(name)
            finally:
                self._drops.append(self._dropper.submit(_drop_postgres, name))

    def close(self) -> None:
        """Wait for every drop (re-raising the first failure), then drop the template."""
        self._dropper.shutdown(wait=True)
        try:
            for drop in self._drops:
                drop.result()
        finally:
            if self._postgres is not None:
                _drop_postgres(self._postgres)
                self._postgres = None
