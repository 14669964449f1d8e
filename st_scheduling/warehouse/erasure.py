"""Erasing one customer on request: their rows out of every table and published snapshot, and no byte of them
left in the warehouse file.

Deleting rows is not enough. DuckDB marks the blocks that held them free and reuses them only as later writes
need room, so the bytes stay in the file through a CHECKPOINT, a FORCE CHECKPOINT and a VACUUM. So once the rows
are gone, the warehouse is copied into a fresh file (`COPY FROM DATABASE` writes live rows only) that takes the
old file's place. All of it happens on one connection holding the warehouse's write lock, the lock every run
takes, and the lock is let go only after the fresh file is in place.

A customer is their normalised email (trimmed, lower case) or phone (its digits), as the marts identify them.
Their sessions are the raw sessions carrying either; what the marts and `meta` hold of them is found through
those sessions' ids and customer keys, so a mart added later is covered by the same rules.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from st_scheduling.warehouse import publish
from st_scheduling.warehouse.store import LOCK_WAIT_SECONDS, WarehouseSettings, connect

SCHEMAS = ("raw", "marts", "meta")
RUN_ID = "erasure"  # in the names of the temporary files it writes
EMAIL_COLUMNS = ("customer_email", "email")
PHONE_COLUMNS = ("customer_phone", "phone")


@dataclass(frozen=True)
class Customer:
    email: str | None  # normalised: trimmed, lower case
    phone: str | None  # digits only

    @classmethod
    def of(cls, email: str | None, phone: str | None) -> Customer:
        """Raises ValueError, without quoting either value, when neither identifies anyone."""
        email = (email or "").strip().lower() or None
        digits = re.sub(r"[^0-9]", "", phone or "") or None
        if phone and not digits:
            raise ValueError("--phone has no digits")
        if not (email or digits):
            raise ValueError("give --email, --phone or both")
        return cls(email, digits)


@dataclass
class Erasure:
    """What erasing did: numbers and names of tables and files, never the customer."""

    rows: dict[str, int]  # table -> rows deleted
    snapshots: list[str]  # published snapshots rewritten without the customer
    leftovers: int  # half-written snapshots of killed runs, removed
    rewritten: bool  # the warehouse is a fresh file (not for MotherDuck, which keeps its own storage)
    bytes_before: int
    bytes_after: int


def erase(
    settings: WarehouseSettings,
    customer: Customer,
    publish_dir: str | None,
    *,
    lock_wait: float = LOCK_WAIT_SECONDS,
    on_wait: Callable[[str], None] | None = None,
) -> Erasure:
    """Delete the customer's rows, rewrite the published snapshots and put a fresh copy of the warehouse in place
    of its file, holding the write lock throughout (waiting for it, bounded, as a run does)."""
    local = not settings.path.startswith("md:")
    path = Path(settings.path)
    if local and not path.is_file():
        raise FileNotFoundError(f"no DuckDB file at {path}")
    before = path.stat().st_size if local else 0
    with connect(settings, lock_wait=lock_wait, on_wait=on_wait) as con:
        rows = erase_rows(con, customer)
        snapshots, leftovers = republish(con, Path(publish_dir)) if publish_dir else ([], 0)
        if local:
            rewrite(con, path)
    return Erasure(rows, snapshots, leftovers, local, before, path.stat().st_size if local else 0)


def erase_rows(con: duckdb.DuckDBPyConnection, customer: Customer) -> dict[str, int]:
    """Delete every row of `customer` from the raw, marts and meta tables, in one transaction; table -> rows."""
    con.execute("SET VARIABLE erase_email = ?", [customer.email])
    con.execute("SET VARIABLE erase_phone = ?", [customer.phone])
    columns: dict[str, set[str]] = {}
    for schema, table, column in con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() JOIN duckdb_tables() "
        "USING (database_name, schema_name, table_name) WHERE database_name = current_database() "
        "AND schema_name IN (SELECT unnest(?))",
        [list(SCHEMAS)],
    ).fetchall():
        columns.setdefault(f"{schema}.{table}", set()).add(column)
    deleted = {}
    con.execute("BEGIN TRANSACTION")
    try:
        # The customer's sessions and keys, gathered before anything is deleted.
        con.execute("CREATE OR REPLACE TEMP TABLE erased_sessions (tenant_id BIGINT, session_id VARCHAR)")
        con.execute("CREATE OR REPLACE TEMP TABLE erased_keys (customer_key VARCHAR)")
        for table, has in columns.items():
            if _sessions_table(has):
                con.execute(f"INSERT INTO erased_sessions SELECT tenant_id, id FROM {table} AS t WHERE {_contact(has)}")
        for table, has in columns.items():
            if "customer_key" in has and (where := _any(_contact(has), _of_sessions(has))):
                con.execute(f"INSERT INTO erased_keys SELECT customer_key FROM {table} AS t WHERE {where}")
        for table, has in columns.items():
            where = _any(_contact(has), _of_sessions(has), _of_keys(has))
            if where and (n := con.execute(f"DELETE FROM {table} AS t WHERE {where}").fetchone()[0]):
                deleted[table] = n
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return deleted


# Each rule below is a condition on a row of a table with the given columns, or None when the table has none
# of the columns it reads.


def _sessions_table(has: set[str]) -> bool:
    """A raw sessions table: one row per session (`id`) with the customer's contact fields."""
    return {"tenant_id", "id", "customer_email"} <= has


def _contact(has: set[str]) -> str | None:
    """The row carries the customer's email or phone."""
    return _any(
        *(f"lower(trim({c})) = getvariable('erase_email')" for c in EMAIL_COLUMNS if c in has),
        *(f"regexp_replace({c}, '[^0-9]', '', 'g') = getvariable('erase_phone')" for c in PHONE_COLUMNS if c in has),
    )


def _of_sessions(has: set[str]) -> str | None:
    """The row is about one of the customer's sessions."""
    session = "id" if _sessions_table(has) else "session_id" if "session_id" in has else None
    if session is None or "tenant_id" not in has:
        return None
    return f"EXISTS (SELECT 1 FROM erased_sessions AS e WHERE e.tenant_id = t.tenant_id AND e.session_id = t.{session})"


def _of_keys(has: set[str]) -> str | None:
    """The row is about the customer by their hashed key."""
    return "customer_key IN (SELECT customer_key FROM erased_keys)" if "customer_key" in has else None


def _any(*conditions: str | None) -> str | None:
    found = [c for c in conditions if c]
    return " OR ".join(f"({c})" for c in found) if found else None


def republish(con: duckdb.DuckDBPyConnection, directory: Path) -> tuple[list[str], int]:
    """Rewrite every published snapshot from its mart, the customer's rows gone, labelled with the build it held
    (the mart's next run, a full rebuild after rows deleted by hand, publishes a new one), and remove the
    half-written snapshots of killed runs (they may hold anyone). Returns (snapshots, leftovers removed). With the
    warehouse's lock held no run is publishing: a run publishes before it lets the file go."""
    if not directory.is_dir():
        return [], 0
    marts = [
        name
        for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'marts' ORDER BY 1"
        ).fetchall()
    ]
    leftovers = sum(publish.sweep(str(directory), name, RUN_ID) for name in marts)
    snapshots = [name for name in marts if publish.snapshot_path(str(directory), name).is_file()]
    for name in snapshots:
        publish.publish(
            con, f"marts.{name}", name, str(directory), RUN_ID, publish.published_build(str(directory), name) or 0
        )
    return snapshots, leftovers


def rewrite(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Copy the warehouse `con` has open (and locked) into a fresh file that replaces `path`. `con` must stay open
    until this returns and be closed right after: it keeps the old file locked, so a run waiting for the lock
    opens the fresh file."""
    fresh = path.with_name(f".{path.name}.{RUN_ID}.tmp")  # the same directory: os.replace is then atomic
    for stale in (fresh, fresh.with_name(fresh.name + ".wal")):
        stale.unlink(missing_ok=True)
    con.execute("CHECKPOINT")  # nothing left in the old file's write-ahead log to fold in at close
    database = con.execute("SELECT current_database()").fetchone()[0]
    con.execute(f"ATTACH '{_literal(fresh)}' AS erasure_copy")
    try:
        con.execute(f'COPY FROM DATABASE "{database}" TO erasure_copy')
        con.execute("DETACH erasure_copy")  # checkpoints the copy: no write-ahead log of its own
        shutil.copymode(path, fresh)
        os.replace(fresh, path)
    finally:
        con.execute("DETACH DATABASE IF EXISTS erasure_copy")
        fresh.unlink(missing_ok=True)


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")
