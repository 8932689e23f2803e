"""The client never loads server code: importing any client module, and running the
``hygieia`` client commands against a live server, loads nothing of the database,
services, API, blob stores or server settings.

Each check runs in a fresh interpreter that records every module it imports (an audit
hook, so a module imported and dropped again still counts) and every module loaded at
exit, and writes them to a file. The server's own commands are the positive control:
they must show up as server code, or the probe would prove nothing.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import hygieia.client
from tests.support.server import running_server

SERVER_PACKAGES = (
    "hygieia.db",
    "hygieia.services",
    "hygieia.api",
    "hygieia.storage",
    "hygieia.config",
    "hygieia.server",
)
CLIENT_MODULES = sorted(
    f"hygieia.client.{m.name}" for m in pkgutil.iter_modules(hygieia.client.__path__)
)
PW = "boundary test password"

# Runs before anything of Hygieia: records imports, writes them to $PROBE at exit.
PROBE = """
import atexit, json, os, sys
_seen = set()
def _on_audit(event, args):
    if event == "import":
        _seen.add(args[0])
sys.addaudithook(_on_audit)
def _report():
    with open(os.environ["PROBE"], "w") as fh:
        json.dump(sorted(_seen | set(sys.modules)), fh)
atexit.register(_report)
"""


def loaded_modules(tmp_path: Path, code: str, **env: str) -> tuple[list[str], str]:
    """Every module a fresh ``python -c CODE`` imported (the probe runs first), and
    its standard output."""
    report = tmp_path / "modules.json"
    report.unlink(missing_ok=True)
    child = {k: v for k, v in os.environ.items() if not k.startswith("HYGIEIA_")}
    child.update(env, PROBE=str(report))
    proc = subprocess.run(
        [sys.executable, "-c", PROBE + code],
        env=child,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert proc.returncode == 0, (code, proc.stdout, proc.stderr)
    modules: list[str] = json.loads(report.read_text())
    assert "hygieia" in modules, "the probe saw no import of hygieia at all"
    return modules, proc.stdout


def run_hygieia(tmp_path: Path, *args: str, **env: str) -> tuple[list[str], str]:
    """``hygieia ARGS`` exactly as ``python -m hygieia`` runs it: the modules it loaded
    and its standard output."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['hygieia', *{list(args)!r}]\n"
        "runpy.run_module('hygieia', run_name='__main__', alter_sys=True)\n"
    )
    return loaded_modules(tmp_path, code, **env)


def server_code(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in SERVER_PACKAGES)]


def test_client_modules_are_found() -> None:
    assert {"hygieia.client.cli", "hygieia.client.sdk", "hygieia.client.records"} <= set(
        CLIENT_MODULES
    )


@pytest.mark.parametrize("module", ["hygieia.client", "hygieia.ipfs", *CLIENT_MODULES])
def test_importing_the_client_loads_no_server_code(module: str, tmp_path: Path) -> None:
    loaded, _ = loaded_modules(tmp_path, f"import {module}")
    assert module in loaded
    assert server_code(loaded) == []


def test_client_commands_against_a_live_server_load_no_server_code(tmp_path: Path) -> None:
    record = tmp_path / "note.txt"
    record.write_text("a small record")
    with running_server(tmp_path / "server") as url:
        env = {
            "HYGIEIA_HOME": str(tmp_path / "home"),
            "HYGIEIA_SERVER": url,
            "HYGIEIA_PASSWORD": PW,
        }
        for args in (
            ("signup", "boundary@example.org"),
            ("put", str(record), "--title", "a boundary note"),
            ("ls", "--json"),
        ):
            loaded, out = run_hygieia(tmp_path, *args, **env)
            assert "hygieia.client.cli" in loaded, args
            assert server_code(loaded) == [], args
    # `ls` went all the way: it fetched and decrypted the record put above.
    assert [r["title"] for r in json.loads(out)] == ["a boundary note"]


def test_the_probe_sees_server_code(tmp_path: Path) -> None:
    """Positive control: a server command run through the same probe is caught."""
    data = tmp_path / "data"
    loaded, out = run_hygieia(tmp_path, "db", "upgrade", HYGIEIA_DATA_DIR=str(data))
    assert out == "database is up to date\n" and (data / "hygieia.db").is_file()
    assert {"hygieia.server", "hygieia.config", "hygieia.db.engine"} <= set(server_code(loaded))
    # The other way round: the server's commands load none of the client's CLI stack.
    assert not {"hygieia.client", "typer", "rich"} & set(loaded)
