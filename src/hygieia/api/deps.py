"""FastAPI dependencies: DB session, settings, current user, client address.

Dependencies that never block are ``async def`` so that FastAPI calls them on the event
loop instead of hopping to the thread pool for each one; only the DB lookup of the
session token and the route itself run in worker threads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from hygieia.config import Settings
from hygieia.db.models import AuthSession, User
from hygieia.errors import InvalidToken, Unauthorized
from hygieia.services import accounts
from hygieia.services.accounts import Limits
from hygieia.storage import BlobStore


async def get_db(request: Request) -> AsyncIterator[Session]:
    # Creating a Session does no I/O (it connects on first use); closing it may return
    # a connection to the pool, so that happens in a worker thread.
    db: Session = request.app.state.sessionmaker()
    try:
        yield db
    finally:
        await run_in_threadpool(db.close)


async def get_store(request: Request) -> BlobStore:
    store: BlobStore = request.app.state.store
    return store


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_limits(request: Request) -> Limits:
    s: Settings = request.app.state.settings
    return Limits(
        session_ttl_seconds=s.session_ttl_seconds,
        login_max_failures=s.login_max_failures,
        login_window_seconds=s.login_window_seconds,
    )


async def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


SessionDep = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[BlobStore, Depends(get_store)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
AddressDep = Annotated[str, Depends(client_address)]


async def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized()
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 256:
        raise InvalidToken()
    return token


BearerDep = Annotated[str, Depends(bearer_token)]


def current_session(
    db: SessionDep, token: Annotated[str, Depends(bearer_token)]
) -> tuple[User, AuthSession]:
    return accounts.authenticate(db, token=token)


async def current_user(
    auth: Annotated[tuple[User, AuthSession], Depends(current_session)],
) -> User:
    return auth[0]


AuthDep = Annotated[tuple[User, AuthSession], Depends(current_session)]
CurrentUser = Annotated[User, Depends(current_user)]
