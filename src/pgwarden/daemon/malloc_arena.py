"""One malloc arena for the agent's process, asked of glibc before any thread starts.

glibc gives each new thread that calls malloc an arena of its own (up to 8 per core), and an arena
keeps what its thread allocated and freed. Python's own objects go to its process-wide object
arenas whatever the thread, so this is about the larger blocks (> 512 bytes) and the native code's
(OpenSSL, libpq): a running agent's 9-11 threads held 0.24-0.40 MB in their arenas, and the API
worker that answers the first ``GET /metrics`` (importing prometheus_client there) 1.05 MB more,
which one shared arena reuses from freed space instead (docs/benchmarks.md, issue 16's memory
part: ``python -m bench.agent_memory pid``). The agent's threads allocate mostly under the GIL, so
one arena's lock is rarely contended. ``MALLOC_ARENA_MAX`` or a glibc tunable set by the user wins.
"""

from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8  # glibc's malloc.h


def use_one_arena() -> bool:
    """``mallopt(M_ARENA_MAX, 1)``; True when glibc took it. False, and nothing changed, where the
    user set the arena count (``MALLOC_ARENA_MAX``, ``GLIBC_TUNABLES``) or the C library has no
    such setting (not glibc). Call it before the process starts a thread: an arena already
    created stays."""
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, 1) == 1)
