"""The client's own files: private, and whole or not at all.

Every file the CLI keeps under ``$HYGIEIA_HOME`` (the session, remembered KDF parameters,
contacts' key fingerprints, the rotation journal, the emergency selection, the cached
recovery kit) and every kit it exports is written the same way: mode 0600, to a
temporary file beside it that is fsynced and then renamed over the old one, so a crash
leaves the old file or the new one, never half of either, and never a moment when
another user could read it.

:class:`RememberedJson` is the memory behind trust on first use and downgrade checks:
entries per (server, name) in one JSON file, or in memory only (``path=None``). Such
memory must never read as "nothing known" when it is merely unreadable (every key would
look new, every KDF would pass), so an unreadable or damaged file raises the subclass's
``error`` instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8, 0600) atomically; the directory is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_private_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` (0600, in a directory made private: 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    write_private(path, json.dumps(data, indent=1, sort_keys=True))


class RememberedJson:
    """Entries per (server, name), kept in a private JSON file or in memory."""

    #: What an unreadable or damaged file raises (a subclass's own refusal).
    error: ClassVar[type[Exception]] = ValueError

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._memory: dict[str, Any] = {}

    @staticmethod
    def _key(server: str, name: str) -> str:
        return f"{server.rstrip('/')} {name.strip().lower()}"

    def _load(self) -> dict[str, Any]:
        if self.path is None:
            return self._memory
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise self.error(f"cannot read {self.path}: {exc}") from exc
        if not isinstance(data, dict):
            raise self.error(f"{self.path} is damaged")
        return data

    def _entry(self, server: str, name: str) -> Any:
        """The raw entry for ``name`` on ``server`` (None if there is none)."""
        return self._load().get(self._key(server, name))

    def _store(self, server: str, name: str, entry: Any) -> None:
        """Remember ``entry`` for ``name`` on ``server``; None forgets it."""
        data = self._load()
        key = self._key(server, name)
        if entry is None:
            data.pop(key, None)
        else:
            data[key] = entry
        if self.path is not None:
            write_private_json(self.path, data)
