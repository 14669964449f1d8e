"""Read ahead: the next item of an iterator is produced in a background thread while the caller works."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


def ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield what `items` yields, keeping up to `depth` items produced ahead of the caller.

    An error in the producer is raised in the caller; when the caller stops early, the producer stops after
    its current item (whose own deadline bounds the wait).
    """
    # An item travels as a 1-tuple, so any value (None too) is an item; the producer ends with None, or with the
    # exception that stopped it.
    slots: queue.Queue[tuple[T] | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[T] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item,)):
                    return
            put(None)
        except BaseException as err:
            put(err)
        finally:
            close = getattr(items, "close", None)
            if close:
                close()

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            entry = slots.get()
            if entry is None:
                return
            if isinstance(entry, BaseException):
                raise entry
            yield entry[0]
    finally:
        stop.set()
        thread.join()
