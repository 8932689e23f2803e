"""The server's data directory, private to the user the server runs as.

It holds the SQLite database (wrapped vault keys, salts, sealed metadata) and the
embedded block store: the directory is 0700 and the database files 0600, whatever the
umask, and a directory made by an older version (0755, a 0644 database) is tightened
whenever the server or an admin command opens the database (``open_database``). The
block store sets its own modes (:mod:`hygieia.storage.local`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from hygieia.config import Settings

__all__ = ["prepare_data_dir", "sqlite_path"]

#: SQLite's database file and the files it keeps beside it.
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite database URL; None for other databases and in-memory ones."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        return None
    name = url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def prepare_data_dir(settings: Settings) -> None:
    """Create (or tighten) ``data_dir`` and the SQLite database file."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)  # mkdir's mode is cut by the umask, and may be old
    db = sqlite_path(settings.resolved_database_url())
    if db is None:
        return
    # SQLite creates its file with 0644 under the usual umask, and its -wal and -shm
    # files with the database file's mode: so the database file is made first, 0600.
    os.close(os.open(db, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in _SQLITE_SUFFIXES:
        path = db.with_name(db.name + suffix)
        if path.exists():
            path.chmod(0o600)
