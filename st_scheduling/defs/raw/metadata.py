"""Materialization metadata for raw tables: row counts, column schema, API calls. No PII, no secrets."""

from __future__ import annotations

import time
from datetime import datetime

import dagster as dg
import duckdb

from st_scheduling.servicetitan import CallStats
from st_scheduling.warehouse.raw_tables import RawTable


def column_schema(table: RawTable) -> dg.TableSchema:
    return dg.TableSchema(columns=[
        dg.TableColumn(c.name, c.duckdb_type, description=c.description) for c in table.columns])


def table_metadata(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    stats: CallStats,
    started: float,
    *,
    window: tuple[datetime, datetime] | None = None,
    per_tenant: dict | None = None,
) -> dict:
    total = con.execute(f"SELECT count(*) FROM {table.qualified}").fetchone()[0]
    metadata: dict = {
        "dagster/row_count": dg.MetadataValue.int(total),
        "api_calls": dg.MetadataValue.int(stats.calls),
        "api_retries": dg.MetadataValue.int(stats.retries),
        "api_token_fetches": dg.MetadataValue.int(stats.token_fetches),
        "api_refetched_windows": dg.MetadataValue.int(stats.refetched_windows),
        "duration_seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
    }
    if window is not None and table.window_column:
        in_window = con.execute(
            f"SELECT count(*) FROM {table.qualified} WHERE {table.window_column} >= ? AND {table.window_column} < ?",
            list(window)).fetchone()[0]
        metadata["dagster/partition_row_count"] = dg.MetadataValue.int(in_window)
        metadata["window"] = dg.MetadataValue.text(f"[{window[0].isoformat()}, {window[1].isoformat()})")
    if per_tenant:
        metadata["rows_per_tenant"] = dg.MetadataValue.json({str(k): v for k, v in per_tenant.items()})
    if stats.problems:
        metadata["api_problems"] = dg.MetadataValue.json(dict(stats.problems))
    return metadata
