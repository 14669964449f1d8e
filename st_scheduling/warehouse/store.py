"""DuckDB access: connections with explicit settings, the schema, and atomic commits of staged files."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from st_scheduling.warehouse import meta
from st_scheduling.warehouse.raw_tables import RawTable

LOCK_WAIT_SECONDS = 120.0
LOCK_NOTICE_SECONDS = 5.0


class WarehouseUnavailableError(RuntimeError):
    """The DuckDB file cannot be opened for writing: locked by another process, or not writable."""


@dataclass(frozen=True)
class WarehouseSettings:
    path: str
    threads: int = 2
    memory_limit: str = "8GB"  # mart builds: at 10M sessions 2GB spills the attribution to disk (1.5x slower)
    # Raw commits stream from staged files; 256MB lets the insert compress on both threads (64MB: commit 15% slower at
    # 1M sessions), and stays under the fetch's own peak (make bench).
    bulk_memory_limit: str = "256MB"
    config: dict[str, object] = field(default_factory=dict)  # more DuckDB settings (the resource's connection_config)


@contextmanager
def connect(
    settings: WarehouseSettings,
    *,
    lock_wait: float = LOCK_WAIT_SECONDS,
    on_wait: Callable[[str], None] | None = None,
    bulk: bool = False,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection with the schema in place, closed on exit; `bulk` for raw commits (little memory, rows
    in any order).

    DuckDB lets one process write a file at a time; a run that finds the file locked by another waits
    (bounded) instead of failing at once, and tells `on_wait` who holds it and for how long it has waited.
    """
    ensure_folder(settings)
    started = time.monotonic()
    deadline, delay, noticed = started + lock_wait, 0.2, started
    while True:
        try:
            config = {**settings.config, "threads": settings.threads, "memory_limit": settings.memory_limit}
            if bulk:  # no checkpoint in a raw commit, not even on closing: the next mart build runs it
                config.update(
                    memory_limit=settings.bulk_memory_limit, preserve_insertion_order=False, checkpoint_threshold="1TB"
                )
            con = duckdb.connect(settings.path, config=config)
            if bulk:
                con.execute("PRAGMA disable_checkpoint_on_shutdown")
            break
        except duckdb.IOException as err:
            locked = "lock" in str(err).lower()
            now = time.monotonic()
            if locked and now + delay <= deadline:
                if on_wait and now - noticed >= LOCK_NOTICE_SECONDS:
                    on_wait(
                        f"waiting {now - started:.0f} s of {lock_wait:.0f} s for the DuckDB file "
                        f"{settings.path}: {lock_holder(err)}"
                    )
                    noticed = now
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            problem = f"is locked by another process (waited {lock_wait:.0f} s)" if locked else "cannot be opened"
            raise WarehouseUnavailableError(f"the DuckDB file {settings.path} {problem}: {err}") from err
    try:
        meta.ensure(con)
        if not bulk:
            # Raw commits leave their log unfolded, so the lock they hold does not grow with the table: the first
            # connection to build marts folds it, with the full memory limit (rewriting row groups after deletes
            # needs more than a streaming insert does).
            con.execute("CHECKPOINT")
        yield con
    finally:
        con.close()


def ensure_folder(settings: WarehouseSettings) -> None:
    """The folder of a local DuckDB file, created when missing; a named error when it cannot be."""
    try:
        if not settings.path.startswith("md:"):
            Path(settings.path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WarehouseUnavailableError(f"cannot create the folder of the DuckDB file {settings.path}: {err}") from err


def lock_holder(err: Exception) -> str:
    """Who holds the lock, as DuckDB says it (`... (PID 123) ...`), or that it does not say."""
    text = str(err)
    start = text.find("PID")
    if start < 0:
        return "DuckDB does not say which process holds it"
    return "held by " + text[start:].split(")")[0].strip()


@dataclass(frozen=True)
class StagedOwner:
    """The staged Parquet files of one owner (scheduler, router, or the tenant itself) read in full."""

    owner: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Removal:
    """Stored rows of one owner that a commit would delete: the API no longer lists their ids."""

    stored: int  # rows of the owner stored in the window
    new: int  # distinct rows the API lists now
    missing_by_day: dict[str, int]  # day (UTC, of the window column) -> stored ids the API no longer lists

    def describe(self) -> str:
        days = ", ".join(f"{day}: {n}" for day, n in sorted(self.missing_by_day.items()))
        return (
            f"the API now lists {self.new} distinct rows where {self.stored} are stored, and no longer lists "
            f"{sum(self.missing_by_day.values())} stored ids ({days})"
        )


@dataclass
class CommitOutcome:
    """What one tenant's commit did."""

    stored: dict[str, int] = field(default_factory=dict)  # rows now stored per committed owner, in the window
    refused: dict[str, Removal] = field(default_factory=dict)  # owners whose commit would delete stored ids
    unlisted: dict[str, int] = field(default_factory=dict)  # owners stored before but not listed now: rows kept
    outside_window: int = 0  # staged records whose window column fell outside the window: not stored


def removals(missing: list[tuple[str, str, int]], stored: dict[str, int], new: dict[str, int]) -> dict[str, Removal]:
    """Owners with stored ids the API no longer lists, from (owner, day, count) rows. Sessions are not
    normally deleted, so a missing id is far more likely an API fault than the truth; comparing ids rather
    than counts catches a day that vanished while another day grew by as much."""
    by_owner: dict[str, dict[str, int]] = {}
    for owner, day, count in missing:
        by_owner.setdefault(owner, {})[day] = count
    return {o: Removal(stored.get(o, 0), new.get(o, 0), days) for o, days in by_owner.items()}


def owner_expression(table: RawTable) -> str:
    """The column naming a row's owner; for a table without one (the scheduler list), the tenant."""
    return table.owner_column or "CAST(tenant_id AS VARCHAR)"


def commit_tenant(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    tenant_id: int,
    window: tuple[datetime, datetime] | None,
    staged: list[StagedOwner],
    listed: list[str],
    *,
    run_id: str,
    allow_shrink: bool = False,
    upsert: bool = False,
    read_mark: datetime | None = None,
) -> CommitOutcome:
    """Replace, in one transaction, the rows of each staged owner in `window` with its staged rows.

    Scope is what was read in full: only owners in `staged` are replaced, and logged in `meta.raw_replaced`. An owner
    stored before but absent from `listed` keeps its rows (reported as unlisted). An owner with a stored id in the
    window that no staged record carries keeps all its rows (reported as refused, per day) unless `allow_shrink`.
    Staged rows are deduplicated on the table's key,
    keeping the greatest modified_on; a row stored under another owner or window with the same key is
    replaced, so keys stay unique.

    `upsert`: the staged rows are the changes the API listed since the tenant's read mark. Each replaces the row of
    its key and no other row is removed (a read of changes cannot see a deletion). When every listed owner was read
    in full, the mark moves to `read_mark` (the API's clock when this read began, if it gave one) in the same
    transaction.
    """
    owner = owner_expression(table)
    key = ", ".join(table.key)
    in_window, window_params = "TRUE", []
    if window is not None and table.window_column:
        in_window, window_params = f"{table.window_column} >= ? AND {table.window_column} < ?", list(window)
    outcome, now, removed, inserted = CommitOutcome(), datetime.now(UTC), 0, 0
    con.execute("BEGIN TRANSACTION")
    try:
        number = con.execute("SELECT nextval('meta.raw_commit_numbers')").fetchone()[0]
        files = [f for s in staged for f in s.files]
        if not upsert:
            _guard_window(con, table, tenant_id, staged, listed, files, in_window, window_params, allow_shrink, outcome)
        accepted = [s for s in staged if s.owner not in outcome.refused]
        accepted_files = [f for s in accepted for f in s.files]
        owners = [s.owner for s in accepted]
        if owners and not upsert:
            removed += con.execute(
                f"DELETE FROM {table.qualified} WHERE tenant_id = ? AND {owner} IN (SELECT unnest(?)) AND {in_window}",
                [tenant_id, owners, *window_params],
            ).fetchall()[0][0]
        if accepted_files:
            match = " AND ".join(f"t.{k} = s.{k}" for k in table.key)
            removed += con.execute(
                f"DELETE FROM {table.qualified} t USING (SELECT DISTINCT {key} FROM "
                f"read_parquet(?) WHERE {in_window}) s WHERE {match}",
                [accepted_files, *window_params],
            ).fetchall()[0][0]
            rows, distinct = con.execute(
                f"SELECT count(*), count(DISTINCT ({key})) FROM read_parquet(?) WHERE {in_window}",
                [accepted_files, *window_params],
            ).fetchone()
            latest = "modified_on DESC NULLS LAST" if any(c.name == "modified_on" for c in table.columns) else "1"
            # Deduplicating sorts every row; most windows have no duplicate to drop.
            dedupe = f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {latest}) = 1" if rows > distinct else ""
            inserted = con.execute(
                f"""INSERT INTO {table.qualified} BY NAME
                SELECT *, ? AS ingested_at, ? AS run_id, ? AS commit_number FROM read_parquet(?)
                WHERE {in_window} {dedupe}""",
                [now, run_id, number, accepted_files, *window_params],
            ).fetchall()[0][0]
        if owners:
            # An upsert replaced no window, only the keys it stored, which the marts find by their commit number:
            # it is logged with an empty one.
            replaced = [now, now] if upsert else window_params or [None, None]
            con.execute(
                "INSERT INTO meta.raw_replaced VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [table.name, tenant_id, *replaced, now, removed, inserted, number],
            )
            scope, scope_params = ("commit_number = ?", [number]) if upsert else (in_window, window_params)
            counts = dict(
                con.execute(
                    f"SELECT {owner}, count(*) FROM {table.qualified} WHERE tenant_id = ? AND {scope} "
                    f"AND {owner} IN (SELECT unnest(?)) GROUP BY ALL",
                    [tenant_id, *scope_params, owners],
                ).fetchall()
            )
            outcome.stored = {o: counts.get(o, 0) for o in owners}
        if upsert and read_mark is not None and set(listed) <= set(owners):
            con.execute("INSERT OR REPLACE INTO meta.read_marks VALUES (?, ?, ?)", [table.name, tenant_id, read_mark])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return outcome


def _guard_window(
    con: duckdb.DuckDBPyConnection,
    table: RawTable,
    tenant_id: int,
    staged: list[StagedOwner],
    listed: list[str],
    files: list[str],
    in_window: str,
    window_params: list,
    allow_shrink: bool,
    outcome: CommitOutcome,
) -> None:
    """What replacing the staged owners' window would drop, into `outcome`: staged records outside the window,
    owners stored but not listed, and owners whose stored ids the API no longer lists (refused)."""
    owner, key = owner_expression(table), ", ".join(table.key)
    new = (
        dict(
            con.execute(
                f"SELECT {owner}, count(DISTINCT ({key})) FROM read_parquet(?) WHERE {in_window} GROUP BY ALL",
                [files, *window_params],
            ).fetchall()
        )
        if files
        else {}
    )
    if files:
        outcome.outside_window = con.execute(
            f"SELECT count(*) FROM read_parquet(?) WHERE NOT ({in_window})", [files, *window_params]
        ).fetchone()[0]
    stored = dict(
        con.execute(
            f"SELECT {owner}, count(*) FROM {table.qualified} WHERE tenant_id = ? AND {in_window} GROUP BY ALL",
            [tenant_id, *window_params],
        ).fetchall()
    )
    outcome.unlisted = {o: n for o, n in stored.items() if o not in listed}
    if not allow_shrink and staged:
        outcome.refused = removals(
            _missing_ids(con, table, tenant_id, staged, files, in_window, window_params), stored, new
        )


def read_marks(con: duckdb.DuckDBPyConnection, table: RawTable) -> dict[int, datetime]:
    """Tenant -> the API's clock when the last read of `table`'s changes that covered every owner began."""
    return dict(
        con.execute("SELECT tenant_id, read_at FROM meta.read_marks WHERE table_name = ?", [table.name]).fetchall()
    )


def _missing_ids(
    con,
    table: RawTable,
    tenant_id: int,
    staged: list[StagedOwner],
    files: list[str],
    in_window: str,
    window_params: list,
) -> list[tuple[str, str, int]]:
    """(owner, day, count) of the staged owners' stored ids in the window that no staged record carries."""
    key = ", ".join(table.key)
    day = f"strftime(timezone('UTC', {table.window_column}), '%Y-%m-%d')" if table.window_column else "'all'"
    staged_keys, staged_params = (
        (f"SELECT DISTINCT {key} FROM read_parquet(?) WHERE {in_window}", [files, *window_params])
        if files
        else (f"SELECT {key} FROM {table.qualified} WHERE FALSE", [])
    )
    return con.execute(
        f"""WITH kept AS (SELECT {owner_expression(table)} AS owner, {day} AS day, {key} FROM {table.qualified}
                          WHERE tenant_id = ? AND {owner_expression(table)} IN (SELECT unnest(?)) AND {in_window})
        SELECT owner, day, count(*) FROM kept ANTI JOIN ({staged_keys}) USING ({key}) GROUP BY ALL ORDER BY ALL""",
        [tenant_id, [s.owner for s in staged], *window_params, *staged_params],
    ).fetchall()


def rows_per_window(con: duckdb.DuckDBPyConnection, table: RawTable, windows: list[tuple]) -> list[int]:
    """Rows of `table` whose window column falls in each [start, end), in one scan of their span."""
    column = table.window_column
    counts = ", ".join(f"count(*) FILTER (WHERE {column} >= ? AND {column} < ?)" for _ in windows)
    params = [bound for window in windows for bound in window] + [windows[0][0], windows[-1][1]]
    return list(
        con.execute(f"SELECT {counts} FROM {table.qualified} WHERE {column} >= ? AND {column} < ?", params).fetchone()
    )
