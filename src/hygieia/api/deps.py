"""FastAPI dependencies: DB session, settings, current user, client address.

Dependencies that never block are ``async def`` so that FastAPI calls them on the event
loop instead of hopping to the thread pool for each one; only the DB lookup of the
session token and the route itself run in worker threads.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Annotated, TypedDict

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from hygieia.config import Settings
from hygieia.db.models import AuthSession, User
from hygieia.errors import InvalidToken, Unauthorized
from hygieia.services import accounts
from hygieia.services.accounts import Limits
from hygieia.services.audit import ClientInfo
from hygieia.services.common import Clock
from hygieia.services.ratelimit import HOUR, Policy
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


async def get_clock(request: Request) -> Clock:
    """The app's clock (``create_app(clock=…)``; the real time unless a test passed one)."""
    clock: Clock = request.app.state.clock
    return clock


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_limits(request: Request) -> Limits:
    # Read per request (cheap): tests adjust the settings of a running app.
    s: Settings = request.app.state.settings

    def per(free: int, window: int) -> Policy:
        return Policy(free=free, delay_seconds=s.login_delay_seconds, window_seconds=window)

    return Limits(
        session_ttl_seconds=s.session_ttl_seconds,
        login=per(s.login_max_failures, s.login_window_seconds),
        login_address=per(s.login_address_max_failures, s.login_window_seconds),
        signup=per(s.signup_max_per_address, HOUR),
        key_lookup=per(s.key_lookup_max, HOUR),
        hashing=request.app.state.hash_limiter,
        kdf_floor=s.kdf_floor(),
    )


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    # Some proxies (Azure Application Gateway, IIS ARR) append the client's port:
    # "192.0.2.1:5678", "[2001:db8::1]:5678". Unparsed, such an entry would end the walk
    # at the proxy and put every client in the proxy's buckets.
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def resolve_client_address(
    peer: str, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> str:
    """The client's address: the peer's, or what trusted proxies say it is.

    ``X-Forwarded-For`` is only believed from a peer in ``trusted``. Each proxy appends
    the address it saw, so the list is read from the right: the first address that is
    not a trusted proxy is the client (anything left of it was written by the client
    and proves nothing). If every hop is trusted the left-most is the client; an entry
    that is not an address ends the walk at the last hop that is known to be honest.
    """

    def is_trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return ip is not None and any(ip in net for net in trusted)

    current = _ip(peer)
    if not is_trusted(current):
        return str(current) if current is not None else peer
    hops = [h for header in forwarded_for for h in header.split(",") if h.strip()]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            break
        current = ip
        if not is_trusted(ip):
            break
    return str(current)


async def client_address(request: Request) -> str:
    """The client address for rate limits and the audit trail (HYGIEIA_TRUSTED_PROXIES)."""
    peer = request.client.host if request.client else "unknown"
    trusted: Sequence[Network] = request.app.state.trusted_proxies
    if not trusted:
        return peer
    return resolve_client_address(peer, request.headers.getlist("x-forwarded-for"), trusted)


async def client_info(request: Request) -> ClientInfo:
    """Which client is asking, as it says (``X-Hygieia-Client``, ``User-Agent``): for the
    owner's list of sessions and the audit trail only, never for a decision."""
    return ClientInfo.from_headers(
        request.headers.get("x-hygieia-client"), request.headers.get("user-agent")
    )


SessionDep = Annotated[Session, Depends(get_db)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[BlobStore, Depends(get_store)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
AddressDep = Annotated[str, Depends(client_address)]
ClientDep = Annotated[ClientInfo, Depends(client_info)]


class Throttle(TypedDict):
    """Who is asking and the limits they are held to: the keyword arguments every
    throttled account service takes (``accounts.login(db, ..., **throttle)``). The
    client goes into the sessions it opens and the events it records."""

    address: str
    limits: Limits
    client: ClientInfo


async def get_throttle(address: AddressDep, limits: LimitsDep, client: ClientDep) -> Throttle:
    return Throttle(address=address, limits=limits, client=client)


ThrottleDep = Annotated[Throttle, Depends(get_throttle)]


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
