"""The CLI's saved session: ``$HYGIEIA_HOME/session.json`` (mode 0600).

It holds the server URL, the email and the opaque session token — never a password,
a vault key or an unlocked key.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from hygieia.client.private_files import write_private_json


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
    write_private_json(_path(), asdict(session))


def clear() -> None:
    _path().unlink(missing_ok=True)
