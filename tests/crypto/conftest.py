"""Fixtures for the crypto tests: identities (made once per module) and a throwaway gpg."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.gpg import Gpg
from tests.support.identities import Person, make_person


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
