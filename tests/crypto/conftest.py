"""Fixtures for the crypto tests: identities (made once per module) and a throwaway gpg."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hygieia import crypto


@dataclass(frozen=True)
class Person:
    identity: crypto.Identity
    vault_key: bytes
    key: crypto.UnlockedKey


def make_person(email: str) -> Person:
    vault_key = crypto.new_vault_key()
    identity = crypto.generate_identity(email, vault_key)
    return Person(identity, vault_key, crypto.unlock(identity.locked_secret_key, vault_key))


@pytest.fixture(scope="module")
def alice() -> Person:
    return make_person("alice@example.org")


@pytest.fixture(scope="module")
def bob() -> Person:
    return make_person("bob@example.org")


class Gpg:
    """Stock gpg in its own GNUPGHOME (short path: gpg-agent sockets have a length limit)."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def run(
        self, *args: str, input: bytes | None = None, passphrase: str | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        cmd = ["gpg", "--homedir", str(self.home), "--batch", "--no-tty", "--status-fd", "2"]
        if passphrase is not None:
            cmd += ["--pinentry-mode", "loopback", "--passphrase", passphrase]
        return subprocess.run([*cmd, *args], input=input, capture_output=True, timeout=120)

    def ok(self, *args: str, input: bytes | None = None, passphrase: str | None = None) -> bytes:
        result = self.run(*args, input=input, passphrase=passphrase)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout


@pytest.fixture
def gpg_factory() -> Iterator[Callable[[], Gpg]]:
    if shutil.which("gpg") is None:
        pytest.skip("gpg not installed")
    homes: list[Path] = []

    def make() -> Gpg:
        home = Path(tempfile.mkdtemp(prefix="hyg-gpg-", dir="/tmp"))
        os.chmod(home, 0o700)
        homes.append(home)
        return Gpg(home)

    yield make
    for home in homes:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def gpg(gpg_factory: Callable[[], Gpg]) -> Gpg:
    return gpg_factory()
