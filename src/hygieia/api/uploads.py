"""How many uploads run at once: in all, and per account, in this server process.

An upload holds buffers, a parser, a put into the store (on Kubo, a thread streaming
to the node) and a database connection at its end, for as long as its client takes.
Past the caps an upload is refused before a byte of its body is read, with a code the
client can act on, instead of queueing behind the others. The counts live in the
process: they bound this process's resources (replicas each have their own).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from hygieia.errors import TooManyUploads, UploadsBusy


class UploadSlots:
    """Counts running uploads; used on the event loop only, so it needs no lock."""

    def __init__(self, *, total: int, per_account: int) -> None:
        self._total = total
        self._per_account = per_account
        self._running: Counter[str] = Counter()

    @property
    def running(self) -> int:
        return self._running.total()

    @contextmanager
    def take(self, account_id: str) -> Iterator[None]:
        if self._running[account_id] >= self._per_account:
            raise TooManyUploads(retry_after=10)
        if self.running >= self._total:
            raise UploadsBusy(retry_after=10)
        self._running[account_id] += 1
        try:
            yield
        finally:
            self._running[account_id] -= 1
            if not self._running[account_id]:
                del self._running[account_id]
