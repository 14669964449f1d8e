"""Moving API records into the raw tables: one tenant and one window per call, atomically.

Plain functions over a `ServiceTitanClient` and a DuckDB connection, so they are testable without Dagster.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import duckdb
import pyarrow as pa

from st_scheduling.servicetitan import ServiceTitanClient
from st_scheduling.warehouse.raw_tables import (
    ROUTER_PERFORMANCE,
    ROUTER_SESSIONS,
    SCHEDULER_PERFORMANCE,
    SCHEDULER_SESSIONS,
    SCHEDULERS,
)
from st_scheduling.warehouse.store import Scope, replace_window

Window = tuple[datetime, datetime]


def list_scheduler_ids(client: ServiceTitanClient, tenant_id: int) -> list[str]:
    return [record["id"] for batch in client.schedulers(tenant_id) for record in batch]


def ingest_schedulers(client: ServiceTitanClient, con: duckdb.DuckDBPyConnection, tenant_id: int, run_id: str) -> int:
    batches = (SCHEDULERS.to_arrow(batch, {"tenant_id": tenant_id}) for batch in client.schedulers(tenant_id))
    return replace_window(con, SCHEDULERS, Scope(tenant_id), batches, run_id=run_id)


def ingest_scheduler_sessions(
    client: ServiceTitanClient, con: duckdb.DuckDBPyConnection, tenant_id: int, window: Window, run_id: str
) -> dict[str, int]:
    """Replace a tenant's sessions created in `window` with what every scheduler lists; rows per scheduler."""
    start, end = window
    scheduler_ids = list_scheduler_ids(client, tenant_id)

    def batches() -> Iterator[pa.Table]:
        for scheduler_id in scheduler_ids:
            for batch in client.scheduler_sessions(tenant_id, scheduler_id, created_from=start, created_before=end):
                yield SCHEDULER_SESSIONS.to_arrow(batch, {"tenant_id": tenant_id, "listed_by_id": scheduler_id})

    replace_window(con, SCHEDULER_SESSIONS, Scope(tenant_id, start, end), batches(), run_id=run_id)
    return _rows_by_owner(con, SCHEDULER_SESSIONS.qualified, tenant_id, window, scheduler_ids)


def ingest_router_sessions(
    client: ServiceTitanClient, con: duckdb.DuckDBPyConnection, tenant_id: int, router_id: str, window: Window,
    run_id: str,
) -> int:
    start, end = window
    batches = (
        ROUTER_SESSIONS.to_arrow(batch, {"tenant_id": tenant_id, "listed_by_id": router_id})
        for batch in client.router_sessions(tenant_id, router_id, created_from=start, created_before=end)
    )
    return replace_window(con, ROUTER_SESSIONS, Scope(tenant_id, start, end, ("listed_by_id", router_id)), batches, run_id=run_id)


def ingest_scheduler_performance(
    client: ServiceTitanClient, con: duckdb.DuckDBPyConnection, tenant_id: int, days: list[Window], run_id: str
) -> int:
    """The API's numbers for every scheduler of the tenant and every day window; replaces those days."""
    scheduler_ids = list_scheduler_ids(client, tenant_id)

    def batches() -> Iterator[pa.Table]:
        for start, end in days:
            rows = [client.scheduler_performance(tenant_id, sid, start, end) for sid in scheduler_ids]
            yield SCHEDULER_PERFORMANCE.to_arrow(rows, {"tenant_id": tenant_id, "window_start": _iso(start),
                                                        "window_end": _iso(end)})

    scope = Scope(tenant_id, days[0][0], days[-1][1])
    return replace_window(con, SCHEDULER_PERFORMANCE, scope, batches(), run_id=run_id)


def ingest_router_performance(
    client: ServiceTitanClient, con: duckdb.DuckDBPyConnection, tenant_id: int, router_id: str, days: list[Window],
    run_id: str,
) -> int:
    batches = (
        ROUTER_PERFORMANCE.to_arrow([client.router_performance(tenant_id, router_id, start, end)],
                                    {"tenant_id": tenant_id, "window_start": _iso(start), "window_end": _iso(end)})
        for start, end in days
    )
    scope = Scope(tenant_id, days[0][0], days[-1][1], ("id", router_id))
    return replace_window(con, ROUTER_PERFORMANCE, scope, batches, run_id=run_id)


def _rows_by_owner(con, table: str, tenant_id: int, window: Window, owners: list[str]) -> dict[str, int]:
    rows = dict(con.execute(
        f"SELECT listed_by_id, count(*) FROM {table} WHERE tenant_id = ? AND created_on >= ? AND created_on < ? "
        "GROUP BY ALL", [tenant_id, *window]).fetchall())
    return {owner: rows.get(owner, 0) for owner in owners}


def _iso(moment: datetime) -> str:
    return moment.isoformat()
