"""The `meta` schema, the platform's own bookkeeping beside the data: every table of it is defined here, with
the layout's version and how a warehouse written by an older release is brought up to this one.

- `raw_commit_numbers`: raw commits numbered in the order they happen (one writing process at a time), so what
  is new to a mart never depends on a worker's clock;
- `raw_replaced`: which rows each raw commit replaced, how many it removed and stored: an incremental mart build
  finds the sessions a commit removed for good, and tells a change made by hand from the commits' own;
- `read_marks`: per raw table and tenant, the API's clock when the last read of its changes (the hourly refresh)
  began: the next reads the sessions modified since, less an overlap;
- `customer_key_salt`: the warehouse's own salt for customer keys (never in a mart, a snapshot or metadata);
- `mart_builds`, `session_build_numbers`, `mart_content_numbers`, `session_changes`: what each mart's last
  build read and changed (`st_scheduling.transform.build`);
- `campaign_catalogue`: the campaign catalogue as marts/sessions last read it (its columns are the model's,
  `transform/sql/campaign_catalogue.sql`, so the sessions build writes it);
- `layout`: the version of this layout the warehouse holds.
"""

from __future__ import annotations

import re
import secrets

import duckdb

from st_scheduling.warehouse.raw_tables import RAW_TABLES

# 1: the release before commits were numbered (raw rows and mart build state marked by a worker's clock).
# 2: commits numbered; mart builds record the raw commit they read and the build that last changed their rows.
VERSION = 2

TABLES = (
    "CREATE SEQUENCE IF NOT EXISTS meta.raw_commit_numbers",
    """CREATE TABLE IF NOT EXISTS meta.raw_replaced (
        table_name VARCHAR NOT NULL, tenant_id BIGINT NOT NULL, window_start TIMESTAMPTZ, window_end TIMESTAMPTZ,
        ingested_at TIMESTAMPTZ NOT NULL, rows_removed BIGINT NOT NULL, rows_stored BIGINT NOT NULL,
        commit_number BIGINT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS meta.customer_key_salt (salt VARCHAR NOT NULL)",
    """CREATE TABLE IF NOT EXISTS meta.read_marks (
        table_name VARCHAR NOT NULL, tenant_id BIGINT NOT NULL, read_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (table_name, tenant_id))""",
    "CREATE SEQUENCE IF NOT EXISTS meta.session_build_numbers",
    "CREATE SEQUENCE IF NOT EXISTS meta.mart_content_numbers",
    """CREATE TABLE IF NOT EXISTS meta.mart_builds (
        mart VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL, sessions_build BIGINT NOT NULL,
        full_build BIGINT NOT NULL, raw_commit BIGINT, raw_rows BIGINT NOT NULL, content BIGINT NOT NULL,
        built_at TIMESTAMPTZ NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS meta.session_changes (
        build BIGINT NOT NULL, tenant_id BIGINT, session_id VARCHAR, scheduler_id VARCHAR, customer_key VARCHAR,
        created_at TIMESTAMPTZ, session_date DATE, timeslot_date DATE, booked_date DATE)""",
    "CREATE TABLE IF NOT EXISTS meta.layout (version INTEGER NOT NULL)",
)
MART_BUILD_COLUMNS = [
    "mart",
    "fingerprint",
    "sessions_build",
    "full_build",
    "raw_commit",
    "raw_rows",
    "content",
    "built_at",
]


class NewerLayoutError(RuntimeError):
    """The warehouse was written by a newer release of the platform than this one."""


SCHEMAS = ("raw", "marts", "meta")
_LAYOUT = (*TABLES, *(table.ddl() for table in RAW_TABLES))


def _created(ddl: str) -> str:
    [name] = re.findall(r"IF NOT EXISTS (\w+\.\w+)", ddl)
    return str(name)


_OBJECTS = frozenset({*SCHEMAS, *map(_created, _LAYOUT)})  # what _LAYOUT creates, as schema.name


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """The schemas and tables in place, an older layout migrated first (in the caller's transaction)."""
    if _in_place(con):
        return
    for schema in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    found = version(con)
    if found is not None and found > VERSION:
        raise NewerLayoutError(
            f"the warehouse holds layout {found}, written by a newer release of st_scheduling than this one "
            f"(layout {VERSION}): upgrade st_scheduling"
        )
    if found is None and _has_raw_tables(con):
        _migrate_from_1(con)
    for ddl in _LAYOUT:
        con.execute(ddl)
    if found != VERSION:
        con.execute("DELETE FROM meta.layout")
        con.execute("INSERT INTO meta.layout VALUES (?)", [VERSION])


def _in_place(con: duckdb.DuckDBPyConnection) -> bool:
    """This release's layout is there whole: every schema, table and sequence, at this version. Every connection
    asks, so it is one read of the catalogue, not a statement per table."""
    found = {
        name
        for (name,) in con.execute(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database() UNION ALL "
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "UNION ALL SELECT schema_name || '.' || sequence_name FROM duckdb_sequences() "
            "WHERE database_name = current_database()"
        ).fetchall()
    }
    return _OBJECTS <= found and con.execute("SELECT max(version) FROM meta.layout").fetchone() == (VERSION,)


def version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The layout version the warehouse holds (None: a new warehouse, or one of release 1, which kept none)."""
    if not _exists(con, "layout"):
        return None
    row = con.execute("SELECT max(version) FROM meta.layout").fetchone()
    return row[0] if row else None


def _migrate_from_1(con: duckdb.DuckDBPyConnection) -> None:
    """Release 1 marked what a mart build read by a worker's clock: its raw rows count as commit 0, and its mart
    build state is dropped, so that each mart rebuilds in full once."""
    for schema, table in (*(("raw", t.name) for t in RAW_TABLES), ("meta", "raw_replaced")):
        if _exists(con, table, schema):
            con.execute(f"ALTER TABLE {schema}.{table} ADD COLUMN IF NOT EXISTS commit_number BIGINT DEFAULT 0")
    columns = [
        c
        for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'meta' AND table_name = 'mart_builds' "
            "ORDER BY column_index"
        ).fetchall()
    ]
    if columns and columns != MART_BUILD_COLUMNS:
        con.execute("DROP TABLE meta.mart_builds")


def salt(con: duckdb.DuckDBPyConnection) -> str:
    """The warehouse's customer-key salt, generated at random on first use."""
    if row := con.execute("SELECT salt FROM meta.customer_key_salt").fetchone():
        return row[0]
    new = secrets.token_hex(32)
    con.execute("INSERT INTO meta.customer_key_salt VALUES (?)", [new])
    return new


def _has_raw_tables(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name IN ('raw', 'meta')").fetchone()[0] > 0


def _exists(con: duckdb.DuckDBPyConnection, table: str, schema: str = "meta") -> bool:
    return (
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [schema, table]
        ).fetchone()[0]
        > 0
    )
