"""Staging: an owner-window's pages written to a local Parquet file as they arrive, and its load report."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from st_scheduling.ingest.arrow_pages import POOL
from st_scheduling.servicetitan import Page
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

    def summary(self) -> dict:
        """Numbers only, for metadata: no file paths, no values."""
        fields = ("rows", "distinct_ids", "total_count", "pages", "bytes", "retries", "stored")
        found = {name: getattr(self, name) for name in fields}
        found["seconds"] = round(self.seconds, 3)
        if self.refused:
            found["refused_missing_ids_by_day"] = self.refused.missing_by_day
        if self.error:
            found["error"] = self.error
        return found


def stage(pages: Iterable[Page], path: Path, schema: pa.Schema, report: OwnerLoad) -> OwnerLoad:
    """Write every page's Arrow records to `path` as they come; fills `report`. Memory stays one page deep."""
    started = time.monotonic()
    ids: set = set()
    with pq.ParquetWriter(path, schema, compression="zstd", memory_pool=POOL) as writer:
        for page in pages:
            writer.write_table(page.records)
            if page.number == 1:
                report.total_count = page.total_count
            ids.update(page.ids)
            report.rows += page.records.num_rows
            report.pages += 1
            report.bytes += page.size_bytes
            report.retries += page.retries
    report.files.append(str(path))
    report.distinct_ids = len(ids) if ids else report.rows
    report.seconds = time.monotonic() - started
    return report
