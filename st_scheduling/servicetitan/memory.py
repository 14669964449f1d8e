"""Where response bodies and the Arrow pages parsed from them live: one Arrow memory pool for the whole fetch."""

from __future__ import annotations

from typing import TypeAlias

import pyarrow as pa


def _pool() -> pa.MemoryPool:
    """jemalloc where Arrow has it, else the system allocator. Under the fetch's threads Arrow's default
    (mimalloc) kept far more memory and ran slower, and bodies read into Python bytearrays kept 60-70 MB more at
    1M sessions in glibc's per-thread arenas (measured in `make bench`, see the README)."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.system_memory_pool()


POOL = _pool()

# A body announced by Content-Length and not compressed is read into one buffer of POOL, of that size (a view of
# it); any other grows as a bytearray.
Body: TypeAlias = bytearray | memoryview
