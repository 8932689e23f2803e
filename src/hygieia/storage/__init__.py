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
    SupportsCarExport,
    SupportsGarbageCollection,
)
from hygieia.storage.local import LocalBlobStore
from hygieia.storage.memory import MemoryBlobStore

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
    "SupportsCarExport",
    "SupportsGarbageCollection",
    "make_store",
]


def make_store(settings: Settings) -> BlobStore:
    """The backend ``settings`` ask for: local (``data_dir/blocks``), kubo or memory."""
    kind = settings.resolved_store()
    if kind == "kubo":
        from hygieia.storage.kubo import KuboBlobStore

        if not settings.ipfs_api:
            raise ValueError("store 'kubo' needs HYGIEIA_IPFS_API")
        return KuboBlobStore(
            settings.ipfs_api,
            auth_header=settings.ipfs_api_auth or None,
            timeout=settings.ipfs_timeout,
        )
    if kind == "memory":
        return MemoryBlobStore()
    return LocalBlobStore(settings.data_dir / "blocks")
