"""Process-wide memory tuning shared by the server and the CLI."""

from __future__ import annotations

import ctypes

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

#: Above the 1 MiB chunks and ~1 MiB receive batches that every transfer allocates and
#: frees in a loop, below the 4 MiB record segments.
MMAP_THRESHOLD = 2 * 1024 * 1024
#: Free memory an arena keeps before giving it back to the OS.
TRIM_THRESHOLD = 8 * 1024 * 1024


def tune_glibc_malloc() -> None:
    """Fix glibc malloc's mmap and trim thresholds and cap it at two arenas.

    Left to itself, glibc raises its mmap threshold after each large free (Argon2's
    work area, a 4 MiB record segment); such buffers then come from the heap and
    fragment it instead of going back to the OS, and every worker thread of the server
    gets an arena of its own. A fixed threshold and two arenas keep RSS close to what
    is in use, flat across multi-GB transfers.

    The threshold sits at 2 MiB, not 1: at 1 MiB every chunk and receive batch of a
    transfer was a fresh mmap, page-faulted in, zeroed and unmapped again (a fifth of
    the server's ingest CPU in ``perf``); from the heap they are reused, and the trim
    threshold keeps the top of the heap from being handed back and faulted in again
    each time. ``make bench`` measures the effect (``ingest_vs_store``,
    ``server_rss_mb``, ``client_rss_mb``). A no-op off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, 2)
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)  # fixed: disables the dynamic one
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):
        pass
