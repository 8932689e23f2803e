"""API fixtures: the app served over real HTTP on each database, with a memory store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hygieia.config import Settings
from tests.support.kdf import TEST_KDF_FLOOR
from tests.support.live import LiveApp, live_app


@pytest.fixture
def app_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        store="memory",
        kdf_min_memory_kib=TEST_KDF_FLOOR.m,  # accepts TEST_KDF accounts
        kdf_min_passes=TEST_KDF_FLOOR.t,
    )


@pytest.fixture
def live(app_settings: Settings) -> Iterator[LiveApp]:
    with live_app(app_settings) as app:
        yield app
