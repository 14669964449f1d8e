"""Where response bodies and the Arrow pages parsed from them live: one Arrow memory pool for the whole fetch."""

from __future__ import annotations

from typing import TypeAlias

import pyarrow as pa


def _pool() -> pa.MemoryPool:
    """jemalloc where Arrow has it, else the system allocator. Under the fetch's threads Arrow's default
    (mimalloc) kept far more memory and ran slower (measured in `make bench`, see the README)."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.system_memory_pool()


POOL = _pool()

# A response body: a view of the bytes read into a buffer of POOL.
Body: TypeAlias = memoryview


class PooledBytes:
    """Bytes appended into one buffer of POOL, which doubles when full. A bytearray grown the same way left 60-70
    MB more at 1M sessions in glibc's per-thread arenas (see the README's performance section)."""

    def __init__(self, capacity: int):
        self._buffer, self.size = pa.allocate_buffer(capacity, memory_pool=POOL, resizable=True), 0

    def append(self, data: bytes) -> None:
        end = self.size + len(data)
        if end > self._buffer.size:
            self._buffer.resize(max(end, 2 * self._buffer.size))
        memoryview(self._buffer).cast("B")[self.size : end] = data
        self.size = end

    def view(self) -> Body:
        return memoryview(self._buffer).cast("B")[: self.size]
