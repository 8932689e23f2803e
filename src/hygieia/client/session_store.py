"""The CLI's saved session: ``$HYGIEIA_HOME/session.json`` (mode 0600).

It holds the server URL, the email and the opaque session token — never a password,
a vault key or an unlocked key.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


def home() -> Path:
    env = os.environ.get("HYGIEIA_HOME")
    return Path(env) if env else Path.home() / ".config" / "hygieia"


@dataclass
class SavedSession:
    server: str
    email: str
    token: str
    expires_at: str


def _path() -> Path:
    return home() / "session.json"


def load() -> SavedSession | None:
    try:
        data = json.loads(_path().read_text("utf-8"))
        return SavedSession(**data)
    except (OSError, ValueError, TypeError):
        return None


def save(session: SavedSession) -> None:
    directory = home()
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    tmp = directory / "session.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(session), fh)
    os.chmod(tmp, 0o600)
    os.replace(tmp, _path())


def clear() -> None:
    _path().unlink(missing_ok=True)
