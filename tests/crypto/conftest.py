"""Fixtures for the crypto tests: identities (made once per module) and a throwaway gpg."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hygieia import crypto
from tests.support.gpg import Gpg


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


@pytest.fixture
def gpg_factory() -> Iterator[Callable[[], Gpg]]:
    if shutil.which("gpg") is None:
        pytest.skip("gpg not installed")
    made: list[Gpg] = []

    def make() -> Gpg:
        made.append(Gpg(Path(tempfile.mkdtemp(prefix="hyg-gpg-", dir="/tmp"))))
        return made[-1]

    yield make
    for gpg in made:
        gpg.close(remove=True)


@pytest.fixture
def gpg(gpg_factory: Callable[[], Gpg]) -> Gpg:
    return gpg_factory()
