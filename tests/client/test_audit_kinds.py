"""The one table of audit event descriptions (hygieia/client/audit_kinds.json, read by
the CLI and bundled into the web app) names every kind the server records."""

from __future__ import annotations

import ast
from pathlib import Path

from hygieia.client import activity

SRC = Path(__file__).resolve().parents[2] / "src" / "hygieia"
FAMILIES = ("account", "auth", "record", "records", "share", "emergency", "link")


def _recorded_kinds() -> set[str]:
    """Every string literal of the server's code shaped like an event kind."""
    found = set()
    for path in [*(SRC / "services").glob("*.py"), *(SRC / "api").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                family, dot, rest = node.value.partition(".")
                if dot and family in FAMILIES and rest.replace("_", "").isalpha():
                    found.add(node.value)
    return found


def test_every_recorded_kind_is_described() -> None:
    recorded = _recorded_kinds()
    assert {"auth.login", "record.read", "records.listed", "auth.session_revoked"} <= recorded
    assert recorded - set(activity.kinds()) == set()


def test_table_is_well_formed() -> None:
    kinds, families = activity.kinds(), activity.families()
    assert {k.partition(".")[0] for k in kinds} <= set(families)
    assert all(v and v[0].isupper() and not v.endswith(".") for v in kinds.values())
    assert activity.describe("auth.login") == "Logged in"
    assert activity.describe("future.kind") == "future.kind"
