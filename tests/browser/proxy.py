"""A TCP relay in front of the test server that keeps every byte the browser sends.

The page is loaded through the relay, so what it records is exactly what left the
browser on the wire: request lines, headers and whole bodies (multipart uploads of
disk-backed files included, which Playwright's request events do not hand over).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit


class RecordingRelay:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sent: list[bytearray] = []
        self._lock = threading.Lock()
        self._closed = False
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def sent(self) -> list[bytes]:
        """Everything the browser sent, one bytes object per connection."""
        with self._lock:
            return [bytes(b) for b in self._sent]

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            record = bytearray()
            with self._lock:
                self._sent.append(record)
            for src, dst, keep in ((client, upstream, record), (upstream, client, None)):
                t = threading.Thread(target=self._pump, args=(src, dst, keep), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, keep: bytearray | None) -> None:
        try:
            while data := src.recv(1 << 16):
                if keep is not None:
                    with self._lock:
                        keep += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()


@contextmanager
def recording_relay(upstream: str) -> Iterator[RecordingRelay]:
    relay = RecordingRelay(upstream)
    try:
        yield relay
    finally:
        relay.close()
