"""The ``hygieia`` CLI run as a subprocess against a test server, with its own home."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hygieia.client import account as acct
from hygieia.client.sdk import HygieiaClient
from tests.support.accounts import TEST_KDF
from tests.support.kdf import CLIENT_ENV


@dataclass
class Cli:
    server: str
    home: Path
    data_dir: Path
    store_env: dict[str, str] | None = None

    def run(
        self, *args: str, password: str | None = None, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        child = {k: v for k, v in os.environ.items() if not k.startswith("HYGIEIA_")}
        child.update({"HYGIEIA_HOME": str(self.home), "HYGIEIA_SERVER": self.server})
        child.update(CLIENT_ENV)  # the CLI accepts TEST_KDF accounts (tests/support/kdf.py)
        if password is not None:
            child["HYGIEIA_PASSWORD"] = password
        child.update(env)
        proc = subprocess.run(
            [sys.executable, "-m", "hygieia", *args],
            env=child,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=600,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"hygieia {' '.join(args)} failed: {proc.stdout}\n{proc.stderr}")
        return proc

    def new_account(self, email: str, password: str) -> None:
        """An account made through the SDK with the cheap test KDF, then ``hygieia login``.

        Every later CLI command that unlocks the vault derives with the account's stored
        parameters, so it pays for TEST_KDF, not for the default. ``hygieia signup``
        itself (default KDF) is covered by tests/client/test_cli_accounts.py.
        """
        with HygieiaClient(self.server) as api:
            acct.signup(api, email, password, kdf=TEST_KDF)
        self.run("login", email, password=password)
