"""Published marts: Parquet snapshots analysts and BI tools read, so nobody but a run opens the DuckDB file.

After each mart build, the mart is written to `<name>.parquet.<run>.tmp` beside the snapshot and renamed
over it (`os.replace`, atomic on one file system): a reader sees the old file or the new one, never half
of one, and a reader holding the old file open keeps reading it while the run goes on.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb


def default_directory(duckdb_path: str) -> str | None:
    """`published/<warehouse name>/` beside a local warehouse file; none for MotherDuck (`md:`)."""
    if duckdb_path.startswith("md:") or duckdb_path == ":memory:":
        return None
    path = Path(duckdb_path)
    return str(path.parent / "published" / path.stem)


def snapshot_path(directory: str, name: str) -> Path:
    return Path(directory) / f"{name}.parquet"


def publish(con: duckdb.DuckDBPyConnection, table: str, name: str, directory: str, run_id: str) -> Path:
    """Write `table` to `directory/<name>.parquet`, atomically replacing the previous snapshot."""
    target = snapshot_path(directory, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f"{target.name}.{run_id}.tmp")
    try:
        con.execute(f"COPY {table} TO '{_literal(staging)}' (FORMAT parquet, COMPRESSION zstd)")
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def withdraw(directory: str, name: str) -> None:
    """Remove a snapshot that must no longer be published (a PII mart once publishing it is turned off)."""
    snapshot_path(directory, name).unlink(missing_ok=True)


def reader(directory: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per published mart (`marts.<name>`), for notebooks and `make sql`."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    for snapshot in sorted(Path(directory).glob("*.parquet")):
        view = snapshot.stem.replace('"', '""')
        con.execute(f'CREATE VIEW marts."{view}" AS SELECT * FROM read_parquet(\'{_literal(snapshot)}\')')
    return con


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")
