"""Blob storage: a ``BlobStore`` interface with kubo, local and memory backends.

``make_store(settings)`` picks the backend from configuration. See
:mod:`hygieia.storage.base` for the contract every backend keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hygieia.errors import StorageUnavailable
from hygieia.storage.base import (
    BlobNotFound,
    BlobSource,
    BlobStore,
    BlobWriter,
    SupportsBlocks,
    SupportsCarExport,
    SupportsGarbageCollection,
)
from hygieia.storage.local import LocalBlobStore
from hygieia.storage.memory import MemoryBlobStore
from hygieia.storage.replicas import StoreSet, as_store_set, parse_endpoints

if TYPE_CHECKING:
    from hygieia.config import Settings
    from hygieia.storage.kubo import KuboBlobStore


def __getattr__(name: str) -> object:
    # httpx (for Kubo) imports its own CLI stack (click, rich, pygments): a server on
    # the embedded store never needs it, so it is loaded on first use.
    if name == "KuboBlobStore":
        from hygieia.storage.kubo import KuboBlobStore

        return KuboBlobStore
    raise AttributeError(name)


__all__ = [
    "BlobNotFound",
    "BlobSource",
    "BlobStore",
    "BlobWriter",
    "KuboBlobStore",
    "LocalBlobStore",
    "MemoryBlobStore",
    "StorageUnavailable",
    "StoreSet",
    "SupportsBlocks",
    "SupportsCarExport",
    "SupportsGarbageCollection",
    "as_store_set",
    "default_store_id",
    "make_store",
    "open_stores",
]


def _several(settings: Settings) -> bool:
    endpoints = parse_endpoints(settings.ipfs_api, prefix="kubo")
    return (
        len(endpoints) > 1
        or any(e.id == "local" for e in endpoints)
        or bool(settings.pinning_services.strip())
        or settings.min_copies > 1
    )


def default_store_id(settings: Settings) -> str:
    """The id of the one store a single-store configuration names (its copies' rows)."""
    kind = settings.resolved_store()
    if kind == "kubo":
        return parse_endpoints(settings.ipfs_api, prefix="kubo")[0].id
    return kind


def make_store(settings: Settings) -> BlobStore:
    """The backend ``settings`` ask for: local (``data_dir/blocks``), kubo or memory;
    a :class:`StoreSet` when they name several stores or pinning services."""
    kind = settings.resolved_store()
    if kind == "kubo" and _several(settings):
        from hygieia.storage.replicas import make_store_set

        return make_store_set(settings)
    if kind == "kubo":
        from hygieia.storage.kubo import KuboBlobStore

        (endpoint,) = parse_endpoints(
            settings.ipfs_api, prefix="kubo", default_auth=settings.ipfs_api_auth or None
        )
        return KuboBlobStore(
            endpoint.url, auth_header=endpoint.auth_header, timeout=settings.ipfs_timeout
        )
    if settings.pinning_services.strip() or settings.min_copies > 1:
        raise ValueError(
            "HYGIEIA_MIN_COPIES above 1 and HYGIEIA_PINNING_SERVICES need HYGIEIA_IPFS_API"
        )
    if kind == "memory":
        return MemoryBlobStore()
    return LocalBlobStore(settings.data_dir / "blocks")


def open_stores(settings: Settings, store: BlobStore | None = None) -> StoreSet:
    """Every store ``settings`` configure, as a :class:`StoreSet` (one member for a
    single store, named as :func:`default_store_id` says). ``store`` overrides the
    configured one (tests)."""
    chosen = make_store(settings) if store is None else store
    return as_store_set(chosen, name=default_store_id(settings))
