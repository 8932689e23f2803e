"""A port that records every connection made to it: proof that a command never called.

Point a client's server URL at :attr:`Tripwire.url`; afterwards :attr:`Tripwire.hits`
counts the TCP connections accepted (each is closed at once, so a client that did call
fails fast instead of hanging).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Tripwire:
    url: str
    hits: int = 0


@contextmanager
def tripwire() -> Iterator[Tripwire]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    wire = Tripwire(url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            wire.hits += 1
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield wire
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()
