"""Migrations on both databases: upgrade, idempotence, downgrade, and the head constant;
and migrations frozen in time: they import nothing of the application."""

from __future__ import annotations

import ast
import datetime as dt
import importlib.util
from types import ModuleType

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from hygieia.db.engine import (
    MIGRATIONS,
    SCHEMA_HEAD,
    alembic_config,
    current_revision,
    make_engine,
    migrate,
)
from hygieia.db.models import Base

VERSIONS = MIGRATIONS / "versions"


def test_head_constant_matches_alembic(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    assert ScriptDirectory.from_config(alembic_config(engine)).get_current_head() == SCHEMA_HEAD
    engine.dispose()


def test_upgrade_downgrade_round_trip(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
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


def test_models_match_migrations(empty_db_url: str) -> None:
    """Autogenerate finds nothing to do: the migration describes the models exactly."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(empty_db_url)
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_0002_renders_existing_records(empty_db_url: str) -> None:
    """Rows stored before 0002 get the same rendering the API gives them now."""
    import json
    import uuid

    from sqlalchemy import MetaData, insert, select

    from hygieia.db.models import Record
    from hygieia.services.records import RecordRow, render_public
    from tests.support.rendering import record_public

    engine = make_engine(empty_db_url)
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
        public = record_public(row).model_dump_json(exclude={"copies"})
        assert json.loads(stored[row.id]) == json.loads(public)
        assert stored[row.id] == render_public(row)  # byte for byte: the listing joins them


# -- frozen in time ------------------------------------------------------------------------


def _load_migration(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"migration_{name}", VERSIONS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Version 1 of a record's rendering, as 0002 must write it forever (whatever the API's
#: rendering becomes later): offsets become UTC with a ``Z``, strings ASCII-escaped.
V1_VECTORS = [
    (
        {
            "id": "0f5c1e2a-7d3b-4c1e-9a55-3b2c1d0e9f8a",
            "cid": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            "size": 1234567,
            "segments": 3,
            "created_at": dt.datetime(
                2026, 3, 1, 13, 30, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1))
            ),
            "owner_pkesk": bytes(range(10)),
            "sealed_metadata": b"\xff\xfe\x00meta",
            "session_key_envelope": b"env",
        },
        '{"id":"0f5c1e2a-7d3b-4c1e-9a55-3b2c1d0e9f8a",'
        '"cid":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",'
        '"size":1234567,"segments":3,"created_at":"2026-03-01T12:30:05.123456Z",'
        '"pkesk":"AAECAwQFBgcICQ==","sealed_metadata":"//4AbWV0YQ==","envelope":"ZW52"}',
    ),
    (
        {
            "id": 'a"\\\u00e9',
            "cid": "bafkrei0",
            "size": 0,
            "segments": 1,
            "created_at": dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC),
            "owner_pkesk": b"",
            "sealed_metadata": b"m",
            "session_key_envelope": b"ev",
        },
        '{"id":"a\\"\\\\\\u00e9","cid":"bafkrei0","size":0,"segments":1,'
        '"created_at":"2026-03-01T12:00:00Z","pkesk":"","sealed_metadata":"bQ==",'
        '"envelope":"ZXY="}',
    ),
]


@pytest.mark.parametrize(("row", "expected"), V1_VECTORS)
def test_0002_renders_version_1(row: dict[str, object], expected: str) -> None:
    assert _load_migration("0002_record_listing")._render_v1(row) == expected


def app_imports(source: str) -> list[str]:
    """The modules of the application (``hygieia``, or relative) that ``source`` imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = ["." * node.level + (node.module or "")]
        else:
            continue
        found += [n for n in names if n.startswith(".") or n.split(".")[0] == "hygieia"]
    return found


@pytest.mark.parametrize(
    "source",
    [
        "from hygieia.services.records import render_public",
        "import hygieia.api.schemas",
        "import sqlalchemy as sa, hygieia.services as s",
        "from hygieia import services",
        "def upgrade():\n    from hygieia.api import create_app",
        "from ..models import Record",
    ],
)
def test_app_imports_are_caught(source: str) -> None:
    assert app_imports(source)


def test_migrations_import_nothing_of_the_application() -> None:
    """A migration runs the same forever, so it must not import code that changes: not
    the services or the API, and not the models either (0001 spells its tables out)."""
    files = sorted(VERSIONS.glob("*.py"))
    assert len(files) >= 2
    offenders = {f.name: app_imports(f.read_text()) for f in files}
    assert {name: found for name, found in offenders.items() if found} == {}
