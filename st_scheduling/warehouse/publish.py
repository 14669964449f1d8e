"""Published marts: Parquet snapshots analysts and BI tools read, so nobody but a run opens the DuckDB file.

After each mart build, the mart is written to `<name>.parquet.<run>.tmp` beside the snapshot and renamed
over it (`os.replace`, atomic on one file system): a reader sees the old file or the new one, never half
of one, and a reader holding the old file open keeps reading it while the run goes on.

Each snapshot carries, in its Parquet metadata, the build of the mart it holds. Publishing follows that state,
not what one run wrote: a run that crashed between the table's commit and the rename, or found the disk full,
leaves a snapshot of an older build, which the mart's next run republishes; it also sweeps the temporary
files a crashed run left.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

BUILD_KEY = b"st_scheduling_build"


def default_directory(duckdb_path: str) -> str | None:
    """`published/<warehouse name>/` beside a local warehouse file; none for MotherDuck (`md:`)."""
    if duckdb_path.startswith("md:") or duckdb_path == ":memory:":
        return None
    path = Path(duckdb_path)
    return str(path.parent / "published" / path.stem)


def snapshot_path(directory: str, name: str) -> Path:
    return Path(directory) / f"{name}.parquet"


def publish(con: duckdb.DuckDBPyConnection, table: str, name: str, directory: str, run_id: str, build: int) -> Path:
    """Write `table`, as of mart build `build`, to `directory/<name>.parquet`, atomically replacing the previous
    snapshot."""
    target = snapshot_path(directory, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f"{target.name}.{run_id}.tmp")
    try:
        con.execute(
            f"COPY {table} TO '{_literal(staging)}' (FORMAT parquet, COMPRESSION zstd, "
            f"KV_METADATA {{{BUILD_KEY.decode()}: '{int(build)}'}})"
        )
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def published_build(directory: str, name: str) -> int | None:
    """The mart build the snapshot holds; None when there is none, or it is unreadable or unlabelled."""
    try:
        value = (pq.read_metadata(snapshot_path(directory, name)).metadata or {}).get(BUILD_KEY)
        return int(value) if value is not None else None
    except (OSError, ValueError):
        return None


def sweep(directory: str, name: str, run_id: str) -> int:
    """Remove the temporary files of `name` that other runs left (one run writes a mart at a time: those runs
    crashed); how many."""
    leftovers = [p for p in Path(directory).glob(f"{name}.parquet.*.tmp") if p.name != f"{name}.parquet.{run_id}.tmp"]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)


def withdraw(directory: str, name: str) -> None:
    """Remove a snapshot that must no longer be published (a PII mart once publishing it is turned off)."""
    snapshot_path(directory, name).unlink(missing_ok=True)


def reader(directory: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per published mart (`marts.<name>`), for notebooks and `make sql`."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    for snapshot in sorted(Path(directory).glob("*.parquet")):
        view = snapshot.stem.replace('"', '""')
        con.execute(f"CREATE VIEW marts.\"{view}\" AS SELECT * FROM read_parquet('{_literal(snapshot)}')")
    return con


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")
