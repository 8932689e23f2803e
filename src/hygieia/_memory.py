"""Process-wide memory tuning shared by the server and the CLI."""

from __future__ import annotations

import ctypes


def limit_malloc_arenas() -> None:
    """Keep glibc from hoarding freed memory.

    glibc's mmap threshold grows after each large free (Argon2's work area, a 4 MiB
    record segment), after which such buffers come from the heap and fragment it
    instead of going back to the OS; and the server's worker threads each get an arena
    of their own. A fixed 1 MiB threshold and two arenas keep RSS close to what is in
    use, which keeps memory flat across multi-GB transfers. No-op off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 2)  # M_ARENA_MAX
        libc.mallopt(-3, 1024 * 1024)  # M_MMAP_THRESHOLD (fixed: disables the dynamic one)
    except (OSError, AttributeError):
        pass
