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


def test_0002_renders_existing_records(db_url: str) -> None:
    """Rows stored before 0002 get the same rendering the API gives them now."""
    import datetime as dt
    import json
    import uuid

    from sqlalchemy import MetaData, insert, select

    from hygieia.db.models import Record
    from hygieia.services.records import RecordRow
    from tests.support.rendering import record_public

    engine = make_engine(db_url)
    migrate(engine, "0001")
    meta = MetaData()
    meta.reflect(engine)
    user_id = str(uuid.uuid4())
    filler = {
        "id": user_id,
        "email": "old@example.org",
        "created_at": dt.datetime.now(dt.UTC),
        "kdf": {},
        "fingerprint": "F" * 40,
    }
    users = meta.tables["users"]
    user = {
        c.name: filler.get(c.name, b"x" if c.type.python_type is bytes else "x")
        for c in users.columns
        if not c.nullable
    }
    rows = [
        RecordRow(
            id=str(uuid.uuid4()),
            cid=f"bafkrei{i}",
            size=10 + i,
            segments=1,
            created_at=dt.datetime(2026, 3, 1, 12, 0, i, 1000 * i, tzinfo=dt.UTC),
            owner_pkesk=bytes([i]) * 90,
            sealed_metadata=bytes([i + 1]) * 1000,
            session_key_envelope=bytes([i + 2]) * 400,
        )
        for i in range(3)
    ]
    with engine.begin() as conn:
        conn.execute(insert(users).values(**user))
        conn.execute(
            insert(meta.tables["records"]), [{"owner_id": user_id, **r._asdict()} for r in rows]
        )
    migrate(engine)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(Record.id, Record.listing)).all())
    engine.dispose()
    for row in rows:
        assert json.loads(stored[row.id]) == json.loads(record_public(row).model_dump_json())
