"""Staging: an owner-window's pages written to a local Parquet file as they arrive, and its load report.

Staged files hold every field of the API's records, customers' names, emails and phones included, so they live
in a private directory (`.staging/` beside the warehouse file, 0700; each run's own area 0700, each file 0600),
never in the shared temp directory. A run removes its area when it ends; a run killed meanwhile (SIGKILL, out of
memory, a lost machine) cannot, so every run first removes the areas whose run is gone. Each area is locked
(flock) by its run for as long as it lives, and the kernel drops the lock when the process dies, however it dies:
an area that can be locked has no run left. Sweeping and creating an area happen under the lock of the directory
itself, so a run's new area is locked before any other run can look at it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, overload

import pyarrow as pa
import pyarrow.parquet as pq

from st_scheduling.ingest.arrow_pages import TablePage
from st_scheduling.servicetitan.memory import POOL
from st_scheduling.servicetitan.paging import DistinctIds
from st_scheduling.warehouse.store import Removal


@dataclass
class OwnerLoad:
    """The load report of one owner-window: what was read, staged and finally stored."""

    tenant_id: int
    owner: str  # scheduler or router id; the tenant id for the scheduler list
    rows: int = 0  # rows staged, over every pass of the window
    distinct_ids: int = 0
    total_count: int | None = None  # the API's totalCount on the last pass's first page
    pages: int = 0
    bytes: int = 0
    retries: int = 0
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)
    error: str | None = None  # why it was not read in full
    stored: int | None = None  # rows stored after the commit
    refused: Removal | None = None  # the stored ids the API no longer lists, when the guard kept them

    def summary(self) -> dict[str, object]:
        """Numbers only, for metadata: no file paths, no values."""
        fields = ("rows", "distinct_ids", "total_count", "pages", "bytes", "retries", "stored")
        found = {name: getattr(self, name) for name in fields}
        found["seconds"] = round(self.seconds, 3)
        if self.refused:
            found["refused_missing_ids_by_day"] = self.refused.missing_by_day
        if self.error:
            found["error"] = self.error
        return found


def stage(pages: Iterable[TablePage], path: Path, schema: pa.Schema, report: OwnerLoad) -> OwnerLoad:
    """Write every page's Arrow records to `path` as they come; fills `report`. Memory stays one page deep."""
    started = time.monotonic()
    ids = DistinctIds()
    path.touch(mode=0o600)  # the writer truncates it and keeps its mode: readable by this user alone
    with pq.ParquetWriter(path, schema, compression="zstd", memory_pool=POOL) as writer:
        for page in pages:
            writer.write_table(page.records)
            if page.number == 1:
                report.total_count = page.total_count
            ids.add(page.ids)
            report.rows += page.records.num_rows
            report.pages += 1
            report.bytes += page.size_bytes
            report.retries += page.retries
    report.files.append(str(path))
    report.distinct_ids = ids.count() if "id" in schema.names else report.rows
    report.seconds = time.monotonic() - started
    return report


AREA_PREFIX = "run-"


def default_root(warehouse_path: str) -> Path:
    """`.staging/` beside a local warehouse file; for MotherDuck (`md:`), which has none, the user's cache."""
    if warehouse_path.startswith("md:") or warehouse_path == ":memory:":
        return Path.home() / ".cache" / "st_scheduling" / "staging"
    return Path(warehouse_path).parent / ".staging"


@contextmanager
def staging_area(root: Path) -> Iterator[Path]:
    """A new directory in `root` for one run's staged files, only this user can read, removed on exit; the areas
    of runs that died are removed first. `root` is created private when missing (a directory given in the run
    config keeps its own mode: each area is private either way)."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    root_lock = _lock(root, wait=True)
    try:
        _sweep(root)
        area = Path(tempfile.mkdtemp(prefix=f"{AREA_PREFIX}{os.getpid()}-", dir=root))  # mode 0700
        area_lock = _lock(area, wait=True)
    finally:
        os.close(root_lock)
    try:
        yield area
    finally:
        shutil.rmtree(area, ignore_errors=True)
        os.close(area_lock)


def sweep(root: Path) -> int:
    """Remove the areas in `root` whose run is gone; returns how many. Safe while runs stage."""
    if not root.is_dir():
        return 0
    root_lock = _lock(root, wait=True)
    try:
        return _sweep(root)
    finally:
        os.close(root_lock)


def _sweep(root: Path) -> int:
    """`sweep`, for a caller holding `root`'s lock."""
    swept = 0
    for area in root.glob(f"{AREA_PREFIX}*"):
        try:
            held = _lock(area, wait=False)
        except FileNotFoundError:
            continue  # its run has just removed it
        if held is None:
            continue  # its run is alive
        try:
            if area.exists():  # not removed by its own run just before it let go
                shutil.rmtree(area)
                swept += 1
        finally:
            os.close(held)
    return swept


@overload
def _lock(directory: Path, *, wait: Literal[True]) -> int: ...
@overload
def _lock(directory: Path, *, wait: Literal[False]) -> int | None: ...
def _lock(directory: Path, *, wait: bool) -> int | None:
    """An exclusive flock on `directory`, held until the returned descriptor is closed; None when `wait` is
    false and another process holds it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
