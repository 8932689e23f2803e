"""Zero-knowledge inspection: look for secrets in everything the server got or kept.

A secret is searched in every encoding a careless client or server might use: raw bytes,
hex (both cases), base64 (standard and URL-safe, at the three byte alignments, so it is
found even inside a longer base64 string) and, for text secrets, UTF-8.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import MetaData, create_engine, select


def encodings(secret: bytes) -> set[bytes]:
    forms = {secret, secret.hex().encode(), secret.hex().upper().encode()}
    for k in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            full = enc(b"\0" * k + secret)
            # Keep only the characters made of secret bytes alone: skip the group the
            # alignment prefix touches and the last (possibly partial) group.
            core = full[4 if k else 0 : len(full) - 4]
            if len(core) >= 12:
                forms.add(core)
    return {f for f in forms if len(f) >= 8}


@dataclass
class Secrets:
    named: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, value: bytes | str) -> None:
        raw = value.encode("utf-8") if isinstance(value, str) else value
        assert len(raw) >= 8, f"secret {name} too short to search for"
        self.named[name] = raw

    def find_in(self, blob: bytes) -> list[str]:
        hits = []
        for name, secret in self.named.items():
            if any(form in blob for form in encodings(secret)):
                hits.append(name)
        return hits


class RecordingTransport(httpx.BaseTransport):
    """Wraps a real transport and keeps every request's URL, headers' names and body."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.bodies: list[bytes] = []
        self.urls: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.bodies.append(body)
        self.urls.append(str(request.url))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def database_dump(url: str) -> list[tuple[str, bytes]]:
    """(table, row bytes) for every row of every table."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    meta = MetaData()
    meta.reflect(engine)
    rows: list[tuple[str, bytes]] = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                parts = []
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        parts.append(bytes(value))
                    elif isinstance(value, dict | list):
                        parts.append(json.dumps(value).encode())
                    else:
                        parts.append(str(value).encode("utf-8"))
                rows.append((table.name, b"\x1f".join(parts)))
    engine.dispose()
    return rows


def files_under(root: Path) -> Iterable[tuple[Path, bytes]]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()


def assert_nothing_leaks(
    secrets: Secrets,
    *,
    bodies: Iterable[bytes] = (),
    urls: Iterable[str] = (),
    db_url: str | None = None,
    files: Iterable[tuple[Path, bytes]] = (),
) -> int:
    """Fail on the first place a secret shows up; return how many items were scanned."""
    scanned = 0
    for i, body in enumerate(bodies):
        scanned += 1
        assert not secrets.find_in(body), f"request body {i} leaks {secrets.find_in(body)}"
    for url in urls:
        scanned += 1
        assert not secrets.find_in(url.encode()), f"URL leaks {secrets.find_in(url.encode())}"
    if db_url:
        for table, row in database_dump(db_url):
            scanned += 1
            assert not secrets.find_in(row), f"table {table} leaks {secrets.find_in(row)}"
    for path, data in files:
        scanned += 1
        assert not secrets.find_in(data), f"{path} leaks {secrets.find_in(data)}"
    return scanned
