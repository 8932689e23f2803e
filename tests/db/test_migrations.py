"""Migrations on both databases: upgrade, idempotence, downgrade, and the head constant."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from hygieia.db.engine import SCHEMA_HEAD, alembic_config, current_revision, make_engine, migrate
from hygieia.db.models import Base


def test_head_constant_matches_alembic(db_url: str) -> None:
    engine = make_engine(db_url)
    assert ScriptDirectory.from_config(alembic_config(engine)).get_current_head() == SCHEMA_HEAD
    engine.dispose()


def test_upgrade_downgrade_round_trip(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    migrate(engine)
    migrate(engine)  # idempotent
    assert current_revision(engine) == SCHEMA_HEAD
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    command.downgrade(alembic_config(engine), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate(engine)
    assert current_revision(engine) == SCHEMA_HEAD
    engine.dispose()


def test_models_match_migrations(db_url: str) -> None:
    """Autogenerate finds nothing to do: the migration describes the models exactly."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(db_url)
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
