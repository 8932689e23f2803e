"""Server settings, read once from ``HYGIEIA_*`` environment variables and passed around.

Nothing reads the environment at import time: ``Settings()`` is built by the caller
(``hygieia serve``, a test) and handed to ``create_app``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HYGIEIA_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path(".hygieia")
    #: SQLAlchemy URL; empty means SQLite at ``data_dir/hygieia.db``.
    database_url: str = ""
    #: Blob store: ``local`` (embedded, the default), ``kubo`` or ``memory``.
    store: Literal["local", "kubo", "memory"] = "local"
    #: Kubo RPC API base URL, e.g. ``http://127.0.0.1:5001``. Setting it selects ``kubo``.
    ipfs_api: str = ""
    #: Optional value of the ``Authorization`` header for Kubo's API authorisation.
    ipfs_api_auth: str = ""
    ipfs_timeout: float = Field(default=30.0, gt=0)

    #: Largest record (ciphertext bytes) accepted by an upload.
    max_record_bytes: int = Field(default=2 * 1024**3, gt=0)
    #: Largest JSON request body.
    max_json_bytes: int = Field(default=256 * 1024, gt=0)

    session_ttl_seconds: int = Field(default=12 * 3600, gt=0)
    #: Failed logins allowed per window, per account and per client address.
    login_max_failures: int = Field(default=10, gt=0)
    login_window_seconds: int = Field(default=900, gt=0)
    #: Browser auto-lock after this many seconds without activity.
    idle_lock_seconds: int = Field(default=900, gt=0)

    #: Reconcile orphan pins on start-up.
    reconcile_on_start: bool = True
    #: Orphan pins younger than this are left alone (an upload on another replica may
    #: be between its pin and its commit). Pin-to-commit takes milliseconds.
    reconcile_grace_seconds: int = Field(default=300, ge=0)
    log_level: str = "info"
    #: Worker threads for blocking work (DB, storage). Each running upload holds one;
    #: fewer threads contend less for the GIL under load.
    worker_threads: int = Field(default=40, ge=2, le=1000)
    #: Threads that may serve the listing (the hot read path) at once. Its work is
    #: short and mostly holds the GIL, so more threads only hand the GIL back and forth
    #: (SQLite's driver drops it for every column of every row): under load, two serve
    #: ~1.8x the requests of forty, with a third of the p99 (bench list_vs_bare).
    read_threads: int = Field(default=2, ge=1, le=1000)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hygieia.db').resolve()}"

    def resolved_store(self) -> str:
        if self.ipfs_api and self.store == "local":
            return "kubo"
        return self.store
