"""The durable inbox: every accepted event, on disk before the receiver answers, stored once per userassignedid.

A directory of append-only segments (`000001.jsonl`, ...), one JSON line per event: `{"received_at": ...,
"event": <the envelope>}`. One receiver writes it at a time (it holds an exclusive lock on `.lock`); each start
opens a new segment, so a segment is written by one process's lifetime only.

Durability, by group commit: requests hand their event to one writer thread, which appends every event waiting,
fsyncs the segment once and only then answers them all. An acknowledged event is on disk; one that was being
written when the process died was never acknowledged, and the sender retries it. A start truncates the torn tail
of a segment whose writer died (after its last complete line) and never appends to that segment again, so a
reader whose position lies beyond the truncation simply moves on to the next segment.

Readers (the sensors) read complete lines only and never take the lock: a position is `<segment>:<byte offset>`.
The inbox holds the sessions as ServiceTitan sent them, customers' contact details included: its directory is
private to the platform's user (0700, files 0600), like the staging area.

Erasing a customer (`erase`) takes the lock too, so it refuses while a receiver runs, and overwrites each of their
events with a line of spaces as long as the event was: no byte of them is left, and no later event moves, so every
reader's position still points where it did. Readers and recovery step over such blank lines.
"""

from __future__ import annotations

import fcntl
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import orjson

SEGMENT_BYTES = 64 * 2**20  # a segment this large is closed and the next one opened
MAX_BATCH = 1024  # events one fsync may cover
ERASING = ".erasing"  # the suffix of a segment being rewritten without a customer
_POSITION = re.compile(r"([0-9]+):([0-9]+)")  # <segment>:<byte offset>


class InboxBroken(Exception):
    """An append or an fsync failed: what reached the disk is unknown, so the inbox accepts nothing more (every
    later request is answered 503 and retried by the sender) until the receiver is restarted."""


class InboxLocked(Exception):
    """Another receiver holds this inbox."""


class Writer(Protocol):
    """What the receiver needs of an inbox, whichever backend holds it (this directory, or PostgreSQL)."""

    broken: BaseException | None  # why the inbox accepts nothing now; None while it does

    def submit(self, userassignedid: str, event: dict) -> Future: ...

    def close(self) -> None: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Stored:
    position: str  # the reader's position after this event
    received_at: str
    event: dict


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("[0-9]" * 6 + ".jsonl"))


def _complete_lines(data: bytes) -> int:
    """Bytes of `data` up to and including its last newline."""
    return data.rfind(b"\n") + 1


def _records(data: bytes) -> Iterator[tuple[bytes, dict | None]]:
    """Each whole line of `data` and its record (None for an erased event's blank line), up to the first line that
    is not one: the torn tail a writer left when it died, which it never acknowledged."""
    for line in data[: _complete_lines(data)].splitlines(keepends=True):
        if not line.strip():
            yield line, None
            continue
        try:
            record = orjson.loads(line)
            record["event"]["userassignedid"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        yield line, record


def _lock(directory: Path) -> int:
    """The inbox's lock, held exclusively (by a receiver, or by an erasure) until its descriptor is closed."""
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InboxLocked(f"another process (a receiver, or an erasure) holds the inbox {directory}") from None
    return fd


class FileInbox:
    """The writing side, for one receiver process. `submit` returns a future set to True (stored), False (a
    duplicate, already stored) or an exception once the event is on disk."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = _lock(self.directory)
        self._ids: set[str] = set()
        segments = _segments(self.directory)
        for segment in segments:
            self._ids.update(self._recover(segment))
        self._number = int(segments[-1].stem) if segments else 0
        self._file: int | None = None
        self._size = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.broken: BaseException | None = None
        self.stored = 0
        self._thread = threading.Thread(target=self._write_forever, name="inbox-writer", daemon=True)
        self._thread.start()

    def _recover(self, segment: Path) -> Iterator[str]:
        """The ids stored in `segment`, truncating it after its last whole event (a torn write is never one that
        was acknowledged)."""
        data = segment.read_bytes()
        end = 0
        for line, record in _records(data):
            end += len(line)
            if record is not None:
                yield record["event"]["userassignedid"]
        if end < len(data):  # garbage after a crash: nothing from here on was acknowledged
            with open(segment, "r+b") as file:
                file.truncate(end)
                os.fsync(file.fileno())

    def _open_next(self) -> None:
        if self._file is not None:
            os.close(self._file)
        self._number += 1
        path = self.directory / f"{self._number:06d}.jsonl"
        self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._size = 0
        _fsync_directory(self.directory)  # the new segment's name is durable before any event in it is acknowledged

    def submit(self, userassignedid: str, event: dict) -> Future:
        future: Future = Future()
        if self.broken is not None:
            future.set_exception(InboxBroken(f"the inbox stopped accepting events ({type(self.broken).__name__})"))
        else:
            self._queue.put((userassignedid, event, future))
        return future

    def _write_forever(self) -> None:
        for batch in batches(self._queue):
            if self.broken is not None:
                for _, _, future in batch:
                    future.set_exception(InboxBroken("the inbox stopped accepting events"))
                continue
            self._write(batch)

    def _write(self, batch: list) -> None:
        fresh: dict[str, bytes] = {}
        received_at = received_now()
        for uid, event, _ in batch:
            if uid not in self._ids and uid not in fresh:
                fresh[uid] = orjson.dumps({"received_at": received_at, "event": event}) + b"\n"
        try:
            if fresh:
                if self._file is None or self._size >= SEGMENT_BYTES:
                    self._open_next()
                data = b"".join(fresh.values())
                view = memoryview(data)
                while view:
                    view = view[os.write(self._file, view) :]
                os.fdatasync(self._file)
                self._size += len(data)
        except OSError as err:
            self.broken = err
            for _, _, future in batch:
                future.set_exception(InboxBroken(f"writing the inbox failed ({type(err).__name__}: {err.strerror})"))
            return
        self._ids.update(fresh)
        self.stored += len(fresh)
        for uid, _, future in batch:
            # The first of duplicates within one batch is the one stored.
            future.set_result(fresh.pop(uid, None) is not None)

    def close(self) -> None:
        """Store what was submitted, then let the inbox go (its segment and its lock)."""
        self._queue.put(None)
        self._thread.join()
        if self._file is not None:
            os.close(self._file)
        os.close(self._lock)

    def __len__(self) -> int:
        return len(self._ids)


def batches(waiting: queue.SimpleQueue) -> Iterator[list]:
    """The submissions waiting, every one there is up to MAX_BATCH at a time (group commit: one fsync or COMMIT per
    batch), until `close` queues None."""
    while True:
        batch = [waiting.get()]
        while len(batch) < MAX_BATCH and batch[-1] is not None:
            try:
                batch.append(waiting.get_nowait())
            except queue.Empty:
                break
        if batch[-1] is not None:
            yield batch
            continue
        if len(batch) > 1:
            yield batch[:-1]
        return


def received_now() -> str:
    """The time an event is stored at, as each backend records it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(directory: str | Path, position: str | None, limit: int = 10_000) -> tuple[list[Stored], str | None]:
    """Up to `limit` events stored after `position` (None, or another backend's position: from the first), and the
    position after the last one returned (unchanged when there is none). Reads complete lines only, never waits for
    the writer."""
    segments = _segments(Path(directory))
    mine = _POSITION.fullmatch(position or "")
    number, offset = (int(mine[1]), int(mine[2])) if mine else (0, 0)
    found: list[Stored] = []
    for segment in segments:
        if int(segment.stem) < number or len(found) >= limit:
            continue
        start = offset if int(segment.stem) == number else 0
        with open(segment, "rb") as file:
            file.seek(start)
            data = file.read()
        # A torn tail its writer left when it died ends the segment: the next start truncates it and opens another.
        for line, record in _records(data):
            start += len(line)
            if record is None:
                continue  # an erased event
            found.append(Stored(f"{int(segment.stem)}:{start}", record["received_at"], record["event"]))
            if len(found) >= limit:
                break
    return found, (found[-1].position if found else position)


def erase(directory: str | Path, mentions: Callable[[dict], bool]) -> int:
    """Overwrite every stored event that `mentions` with spaces, segment by segment, and return how many. Refuses
    (InboxLocked) while a receiver holds the inbox: its writer may be appending to the newest segment.

    Each segment it changes is written whole to a temporary file, fsync'd and renamed over the old one, so a crash
    leaves either segment, never half of one; a reader holding the old one open finishes it as it was. Torn tails
    (which may hold the customer too) are cut off, as a receiver's start would. Temporary files of a killed erasure
    are removed first: they may hold anyone."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    try:
        lock = _lock(directory)
    except InboxLocked:
        raise InboxLocked(
            f"the webhook receiver (or another erasure) holds the inbox {directory}: stop the receiver, erase again, "
            "then start it"
        ) from None
    try:
        for stale in directory.glob(f".*{ERASING}"):
            stale.unlink()
        erased = 0
        for segment in _segments(directory):
            data = segment.read_bytes()
            kept, hits = bytearray(), 0
            for line, record in _records(data):
                if record is not None and mentions(record["event"]):
                    line, hits = b" " * (len(line) - 1) + b"\n", hits + 1
                kept += line
            if hits or len(kept) < len(data):
                _replace(segment, bytes(kept))
                erased += hits
        return erased
    finally:
        os.close(lock)


def _replace(segment: Path, data: bytes) -> None:
    temporary = segment.with_name(f".{segment.name}{ERASING}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, segment)
    _fsync_directory(segment.parent)
