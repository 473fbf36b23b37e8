"""Freed chunk buffers go back to the operating system, so peak memory does not creep up with the recording.

fluoxr's chunks (about 16 MB, option ``chunk_mb``) are smaller than the 32 MB
up to which glibc's ``malloc`` raises its *dynamic* mmap threshold: after the
first chunk-sized array is freed, later ones are carved out of the malloc
arenas (one per dask thread) instead of being mapped on their own. Freed
arena memory is kept by the process, and with arrays of mixed sizes allocated
and freed from several threads it fragments, so the resident set grows with
the number of chunks processed (measured: SOFI moments of a 6,000-frame
256 x 256 recording peaked at 479 MB where 1,500 frames peaked at 405 MB, with
the same chunks and at most a few chunks alive in dask's cache).

:func:`return_freed_chunks` fixes glibc's mmap threshold at 1 MiB, which also
turns the dynamic adjustment off: every chunk-sized array is then mapped on
its own and unmapped when freed, and peak RSS stays flat (405 -> 342 MB and
479 -> 348 MB above). Small objects still come from the arenas. It runs once
per process, when the first video's chunks are chosen, and does nothing on
other C libraries or when the user set the threshold (``MALLOC_MMAP_THRESHOLD_``
or ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...``), which is also the way
to keep glibc's default.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading

logger = logging.getLogger(__name__)

__all__ = ["return_freed_chunks"]

#: arrays at least this large are mapped (and unmapped when freed) on their own
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)

_lock = threading.Lock()
_done = False


def _user_set_threshold() -> bool:
    return "MALLOC_MMAP_THRESHOLD_" in os.environ or "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", "")


def return_freed_chunks() -> bool:
    """Have glibc return freed chunk-sized arrays to the OS (once per process); True if set.

    Examples
    --------
    >>> from fluoxr._memory import return_freed_chunks
    >>> isinstance(return_freed_chunks(), bool)
    True
    """
    global _done
    if _done:
        return False
    with _lock:
        if _done:
            return False
        _done = True
        if not sys.platform.startswith("linux") or _user_set_threshold():
            return False
        try:
            libc = ctypes.CDLL(None)
            libc.gnu_get_libc_version  # glibc only (musl has no mallopt parameters to set)
            ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        except (OSError, AttributeError):
            return False
        logger.debug("glibc mmap threshold fixed at %d bytes: %s", MMAP_THRESHOLD, "set" if ok else "refused")
        return ok
