"""DuckDB access: connections with explicit settings, the schema, and atomic window replacement."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from st_scheduling.warehouse.raw_tables import RAW_TABLES, RawTable

LOCK_WAIT_SECONDS = 120.0


class EmptyWindowError(RuntimeError):
    """The API returned nothing for a window that holds rows: refuse to wipe them."""


class WarehouseUnavailableError(RuntimeError):
    """The DuckDB file cannot be opened for writing: locked by another process, or not writable."""


@dataclass(frozen=True)
class WarehouseSettings:
    path: str
    threads: int = 2
    memory_limit: str = "2GB"


@contextmanager
def connect(settings: WarehouseSettings, *, lock_wait: float = LOCK_WAIT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection with the schema in place, closed on exit.

    DuckDB lets one process write a file at a time; a run that finds the file locked by another waits
    (bounded) instead of failing at once.
    """
    try:
        if not settings.path.startswith("md:"):
            Path(settings.path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WarehouseUnavailableError(f"cannot create the folder of the DuckDB file {settings.path}: {err}") from err
    deadline = time.monotonic() + lock_wait
    delay = 0.2
    while True:
        try:
            con = duckdb.connect(settings.path, config={"threads": settings.threads,
                                                         "memory_limit": settings.memory_limit})
            break
        except duckdb.IOException as err:
            locked = "lock" in str(err).lower()
            if locked and time.monotonic() + delay <= deadline:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            problem = f"is locked by another process (waited {lock_wait:.0f} s)" if locked else "cannot be opened"
            raise WarehouseUnavailableError(f"the DuckDB file {settings.path} {problem}: {err}") from err
    try:
        ensure_schema(con)
        yield con
    finally:
        con.close()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    for table in RAW_TABLES:
        con.execute(table.ddl())


@dataclass(frozen=True)
class Scope:
    """Which stored rows a write replaces: a tenant, optionally one owner (column, value), and a time window."""

    tenant_id: int
    start: datetime | None = None
    end: datetime | None = None
    owner: tuple[str, str] | None = None

    def predicate(self, table: RawTable) -> tuple[str, list]:
        clauses, params = ["tenant_id = ?"], [self.tenant_id]
        if self.owner is not None:
            clauses.append(f"{self.owner[0]} = ?")
            params.append(self.owner[1])
        if self.start is not None and self.end is not None and table.window_column:
            clauses.append(f"{table.window_column} >= ? AND {table.window_column} < ?")
            params += [self.start, self.end]
        return " AND ".join(clauses), params


def replace_window(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    scope: Scope,
    batches: Iterable[pa.Table],
    *,
    run_id: str,
) -> int:
    """Replace the rows of `scope` with `batches` in one transaction; returns the rows now stored.

    Batches are staged first (bulk Arrow inserts into a temporary table), so a failure while reading the
    API leaves the stored window untouched. Rows are deduplicated on the table's key, keeping the greatest
    modified_on; rows outside the window are dropped rather than stored twice.
    """
    stage = f"stage_{table.name}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS SELECT * FROM {table.qualified} LIMIT 0")
    try:
        for batch in batches:
            con.register("incoming_batch", batch)
            try:
                con.execute(f"INSERT INTO {stage} BY NAME SELECT * FROM incoming_batch")
            finally:
                con.unregister("incoming_batch")
        where, params = scope.predicate(table)
        order = "modified_on DESC NULLS LAST" if any(c.name == "modified_on" for c in table.columns) else "1"
        con.execute("BEGIN TRANSACTION")
        try:
            staged = con.execute(f"SELECT count(*) FROM {stage} WHERE {where}", params).fetchone()[0]
            if staged == 0:
                existing = con.execute(f"SELECT count(*) FROM {table.qualified} WHERE {where}", params).fetchone()[0]
                if existing:
                    raise EmptyWindowError(
                        f"the API returned no {table.name} for tenant {scope.tenant_id}"
                        f"{_window_text(scope)}, where {existing} rows are stored; refusing to wipe them"
                    )
            con.execute(f"DELETE FROM {table.qualified} WHERE {where}", params)
            con.execute(
                f"""INSERT INTO {table.qualified} BY NAME
                SELECT * EXCLUDE (ingested_at, run_id), ? AS ingested_at, ? AS run_id FROM {stage}
                WHERE {where}
                QUALIFY row_number() OVER (PARTITION BY {', '.join(table.key)} ORDER BY {order}) = 1""",
                [datetime.now(UTC), run_id, *params],
            )
            stored = con.execute(f"SELECT count(*) FROM {table.qualified} WHERE {where}", params).fetchone()[0]
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return stored
    finally:
        con.execute(f"DROP TABLE IF EXISTS {stage}")


def _window_text(scope: Scope) -> str:
    if scope.start is None:
        return ""
    return f" in [{scope.start.isoformat()}, {scope.end.isoformat()})"
