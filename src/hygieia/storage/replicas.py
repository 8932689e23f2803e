"""``StoreSet``: one record, several copies — the stores a server pins records on.

The server talks to one ``BlobStore``; with several stores configured
(``HYGIEIA_IPFS_API=local,http://node-a:5001,…``) that store is a ``StoreSet``:

* a put builds the blob's UnixFS DAG once and streams its blocks into every member at
  once (:class:`~hygieia.storage._put.DagWriter`: one hashing pass, the same blocks
  sent to each Kubo node as a CAR and written to the embedded store): a member that
  fails is dropped and its blocks removed, and the put fails (nothing left anywhere)
  once fewer than ``min_copies`` members are still writing;
* :meth:`StoreSet.pin_copies` pins on every member holding the blob, side by side, and
  says which (the upload records them, and refuses the record below ``min_copies``);
* reads go to the first member that holds the blob and answers;
* unpins go to every member and every pinning service (a member that can't be reached
  raises after the others are done, so the caller keeps its intent for a retry).

Remote pinning services (:class:`~hygieia.storage.pinning.PinningService`) are
members too, but only as targets of the replicator: they fetch blocks themselves
from an IPFS node that holds them, so they never take part in a put.

Members have a stable id, from configuration and free of credentials, that the
database keeps per copy (``record_copies.store``): ``local``, ``kubo:host:port/path``,
``psa:host/path``. It is hand-written because it is the project's own policy, not a
protocol (IPFS Cluster does the same across Kubo nodes: docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlsplit, urlunsplit

from hygieia.errors import BlobNotFound, StorageUnavailable
from hygieia.storage._put import DagWriter
from hygieia.storage.base import BlobStore, BlobWriter, BlockSink, SupportsCarExport

if TYPE_CHECKING:
    from hygieia.config import Settings
    from hygieia.storage.pinning import PinningService

__all__ = ["Endpoint", "StoreSet", "parse_endpoints"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """One configured store: ``local``, or an HTTP API with its credentials split off."""

    id: str
    url: str  # without credentials; "" for the embedded store
    auth_header: str | None = None

    def __repr__(self) -> str:  # never print the credentials
        return f"Endpoint({self.id!r})"


def parse_endpoints(text: str, *, prefix: str, default_auth: str | None = None) -> list[Endpoint]:
    """Endpoints of a comma-separated list of URLs (``local`` for the embedded store).

    ``https://user:pass@host`` gives Basic auth, ``https://token@host`` a Bearer token,
    and a URL without credentials ``default_auth``. Ids are ``prefix:host:port/path``
    (``local`` for the embedded store), unique in the list.
    """
    import base64

    endpoints: list[Endpoint] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "local":
            endpoints.append(Endpoint("local", ""))
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL or 'local': {_safe(item)}")
        auth = default_auth
        if parts.username is not None or parts.password is not None:
            user, password = unquote(parts.username or ""), parts.password
            if password is None:
                auth = f"Bearer {user}"
            else:
                pair = f"{user}:{unquote(password)}".encode()
                auth = "Basic " + base64.b64encode(pair).decode("ascii")
        netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if ":" in (parts.hostname or "") and not netloc.startswith("["):
            netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
        url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        endpoints.append(Endpoint(f"{prefix}:{netloc}{parts.path.rstrip('/')}", url, auth))
    ids = [e.id for e in endpoints]
    if len(set(ids)) != len(ids):
        raise ValueError("the same store is listed twice")
    return endpoints


def _safe(url: str) -> str:
    """A URL for an error message, credentials removed."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()


class StoreSet(BlobStore):
    """Several named stores acting as one; see the module docstring."""

    def __init__(
        self,
        members: Sequence[tuple[str, BlobStore]],
        *,
        min_copies: int = 1,
        services: Sequence[tuple[str, PinningService]] = (),
    ) -> None:
        if not members:
            raise ValueError("no store configured")
        if min_copies > len(members):
            raise ValueError(
                f"HYGIEIA_MIN_COPIES={min_copies} but only {len(members)} store(s) "
                "can take a put (pinning services only receive copies later)"
            )
        self.members: dict[str, BlobStore] = dict(members)
        self.services: dict[str, PinningService] = dict(services)
        self.min_copies = min_copies

    @property
    def ids(self) -> list[str]:
        """Every copy a record should have, members first, in configured order."""
        return [*self.members, *self.services]

    # -- writing -----------------------------------------------------------------
    def writer(self) -> BlobWriter:
        sinks: dict[str, BlockSink] = {}
        for name, store in self.members.items():
            try:
                sinks[name] = store.block_sink()
            except StorageUnavailable:
                log.warning("store %s: unavailable for a put", name)
        if not sinks or len(sinks) < self.min_copies:
            for sink in sinks.values():
                sink.abort()
            raise StorageUnavailable(f"fewer than {self.min_copies} store(s) reachable")
        return DagWriter(sinks, need=self.min_copies)

    def pin_copies(self, cid: str, among: Sequence[str] | None = None) -> list[str]:
        """Pin on every member (of ``among``) holding the blob, side by side; the ids
        pinned, in configured order."""
        names = list(among if among is not None else self.members)

        def pin(name: str) -> bool:
            try:
                self.members[name].pin(cid)
            except (BlobNotFound, StorageUnavailable) as exc:
                log.warning("store %s: pin failed (%s)", name, type(exc).__name__)
                return False
            return True

        if len(names) < 2:
            return [name for name in names if pin(name)]
        # A node's pin walks the whole DAG: one thread per store, not one after another.
        with ThreadPoolExecutor(len(names), thread_name_prefix="hygieia-pin") as pool:
            done = list(pool.map(pin, names))
        return [name for name, ok in zip(names, done, strict=True) if ok]

    # -- BlobStore -----------------------------------------------------------------
    def get(self, cid: str) -> Iterator[bytes]:
        missing = False
        for name, store in self.members.items():
            try:
                return store.get(cid)
            except BlobNotFound:
                missing = True
            except StorageUnavailable:
                log.warning("store %s: unavailable for a read", name)
        if missing:
            raise BlobNotFound()
        raise StorageUnavailable("no store reachable")

    def has(self, cid: str) -> bool:
        reached = False
        for store in self.members.values():
            try:
                if store.has(cid):
                    return True
                reached = True
            except StorageUnavailable:
                continue
        if not reached:
            raise StorageUnavailable("no store reachable")
        return False

    def pin(self, cid: str) -> None:
        if not self.pin_copies(cid):
            raise BlobNotFound()

    def unpin(self, cid: str) -> None:
        failed: list[str] = []
        targets: list[tuple[str, BlobStore | PinningService]] = [
            *self.members.items(),
            *self.services.items(),
        ]
        for name, target in targets:
            try:
                target.unpin(cid)
            except StorageUnavailable:
                failed.append(name)
        if failed:
            raise StorageUnavailable(f"could not unpin on {len(failed)} store(s)")

    def pins(self) -> Iterator[str]:
        """Pins of every reachable member (a blob pinned anywhere counts)."""
        seen: set[str] = set()
        reached = False
        for name, store in self.members.items():
            try:
                found = list(store.pins())
            except StorageUnavailable:
                log.warning("store %s: unavailable for listing pins", name)
                continue
            reached = True
            seen.update(found)
        if not reached:
            raise StorageUnavailable("no store reachable")
        return iter(seen)

    def export_car(self, cid: str, out: BinaryIO) -> None:
        for store in self.members.values():
            if isinstance(store, SupportsCarExport):
                with contextlib.suppress(BlobNotFound, StorageUnavailable):
                    if store.has(cid):
                        store.export_car(cid, out)
                        return
        raise BlobNotFound()

    def collect_garbage(self, *, older_than: float) -> int:
        removed = 0
        for store in self.members.values():
            collect = getattr(store, "collect_garbage", None)
            if collect is not None:
                removed += int(collect(older_than=older_than))
        return removed

    def close(self) -> None:
        for store in self.members.values():
            store.close()
        for service in self.services.values():
            service.close()


def make_store_set(settings: Settings) -> StoreSet:
    """The stores ``settings`` configure (see :func:`hygieia.storage.make_store`)."""
    from hygieia.storage.local import LocalBlobStore

    members: list[tuple[str, BlobStore]] = []
    for endpoint in parse_endpoints(
        settings.ipfs_api, prefix="kubo", default_auth=settings.ipfs_api_auth or None
    ):
        if endpoint.id == "local":
            members.append(("local", LocalBlobStore(settings.data_dir / "blocks")))
            continue
        from hygieia.storage.kubo import KuboBlobStore

        members.append(
            (
                endpoint.id,
                KuboBlobStore(
                    endpoint.url, auth_header=endpoint.auth_header, timeout=settings.ipfs_timeout
                ),
            )
        )
    services: list[tuple[str, PinningService]] = []
    for endpoint in parse_endpoints(settings.pinning_services, prefix="psa"):
        from hygieia.storage.pinning import PinningService

        if endpoint.id == "local":
            raise ValueError("HYGIEIA_PINNING_SERVICES lists URLs only")
        services.append(
            (
                endpoint.id,
                PinningService(
                    endpoint.url, auth_header=endpoint.auth_header, timeout=settings.ipfs_timeout
                ),
            )
        )
    return StoreSet(members, min_copies=settings.min_copies, services=services)


def as_store_set(store: BlobStore, *, name: str = "store") -> StoreSet:
    """``store`` itself if it is a ``StoreSet``, else a set of that one store."""
    return store if isinstance(store, StoreSet) else StoreSet([(name, store)])
