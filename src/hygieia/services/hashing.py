"""A bound on the server's own Argon2id work (login, sign-up, recovery, password change).

Every check of an ``auth_key`` or recovery verifier costs the server one Argon2id run,
and every sign-up two: left unbounded, a burst of such requests takes every core and
every worker thread (20 concurrent sign-ups cost 32 s of CPU in the security review).
A :class:`HashLimiter` lets ``slots`` hashes run at once and ``queue`` more requests
wait for a slot; past that, or after ``wait_seconds`` in the queue, the request is
answered ``503 server_busy`` at once, so the threads the rest of the API needs stay free.

This state is per process on purpose: it bounds this machine's CPU, which no other
replica shares.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from hygieia.errors import ServerBusy


def default_slots() -> int:
    return max(1, os.cpu_count() or 1)


class HashLimiter:
    def __init__(self, *, slots: int, queue: int, wait_seconds: float = 10.0) -> None:
        if slots < 1 or queue < 0:
            raise ValueError("slots must be >= 1 and queue >= 0")
        self._slots = threading.BoundedSemaphore(slots)
        self._admitted = 0  # running + waiting
        self._capacity = slots + queue
        self._lock = threading.Lock()
        self._wait_seconds = wait_seconds

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one hashing slot for the block, or raise :class:`ServerBusy`."""
        with self._lock:
            if self._admitted >= self._capacity:
                raise ServerBusy()
            self._admitted += 1
        try:
            if not self._slots.acquire(timeout=self._wait_seconds):
                raise ServerBusy()
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._admitted -= 1
