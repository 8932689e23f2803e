"""The app under test served over real HTTP in this process (uvicorn in a thread)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy import Engine

from hygieia.api import create_app
from hygieia.client.sdk import HygieiaClient
from hygieia.config import Settings
from hygieia.storage.memory import MemoryBlobStore
from tests.support.clock import FakeClock
from tests.support.server import threaded_server


@dataclass
class LiveApp:
    url: str
    settings: Settings
    engine: Engine
    app: FastAPI
    #: The app's clock (emergency access waits by it): ``clock.advance(days=7)``.
    clock: FakeClock

    def client(self, token: str | None = None) -> HygieiaClient:
        return HygieiaClient(self.url, token=token)


@contextmanager
def live_app(settings: Settings) -> Iterator[LiveApp]:
    """``create_app(settings)`` with an in-memory blob store and a :class:`FakeClock`,
    served until the block ends."""
    clock = FakeClock()
    app = create_app(settings, store=MemoryBlobStore(), clock=clock)
    with threaded_server(app) as url:
        yield LiveApp(url=url, settings=settings, engine=app.state.engine, app=app, clock=clock)
