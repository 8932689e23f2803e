from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from hygieia.api import create_app
from hygieia.client.sdk import HygieiaClient
from hygieia.config import Settings
from hygieia.storage.memory import MemoryBlobStore
from tests.support.server import threaded_server


@dataclass
class LiveApp:
    url: str
    settings: Settings
    engine: Engine
    app: FastAPI

    def client(self, token: str | None = None) -> HygieiaClient:
        return HygieiaClient(self.url, token=token)


@pytest.fixture
def app_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, store="memory")


@pytest.fixture
def live(app_settings: Settings) -> Iterator[LiveApp]:
    app = create_app(app_settings, store=MemoryBlobStore())
    with threaded_server(app) as url:
        yield LiveApp(url=url, settings=app_settings, engine=app.state.engine, app=app)
