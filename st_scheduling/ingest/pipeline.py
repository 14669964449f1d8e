"""One raw table's load: fetch and stage several tenants at once, each reading a few owner-windows at once,
then commit.

The DuckDB file is opened only once everything has been staged, for one short transaction per tenant, so
a slow API never holds the warehouse lock. Scope is what was read in full: an owner whose read failed is
not committed and keeps its rows, and the others of its tenant are committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from st_scheduling.ingest.arrow_pages import TablePage
from st_scheduling.ingest.prefetch import ahead
from st_scheduling.ingest.staging import OwnerLoad, default_root, stage, staging_area
from st_scheduling.servicetitan.memory import POOL
from st_scheduling.warehouse.raw_tables import RawTable
from st_scheduling.warehouse.store import (
    CommitOutcome,
    StagedOwner,
    WarehouseSettings,
    commit_tenant,
    connect,
    ensure_folder,
    rows_per_window,
)

Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class LoadOptions:
    """How a load runs. `allow_shrink` is the explicit override for real deletions (see the README runbook)."""

    allow_shrink: bool = False
    workers: int = 2  # owner-windows of one tenant fetched and staged at once (within its rate limit)
    parallel_tenants: int = 4  # tenants read at once: the API's rate limit is per tenant, its latency per call
    staging_dir: str | None = None  # where runs stage Parquet files; `.staging/` beside the warehouse by default
    lock_wait_seconds: float = 120.0


@dataclass(frozen=True)
class Source:
    """Where one raw table's records come from: the owners each tenant lists, and each owner's pages."""

    table: RawTable
    window: Window | None
    owners_of: Callable[[int], list[str]]
    pages_of: Callable[[int, str], Iterable[TablePage]]
    # A read of what changed since each tenant's read mark (upserted, see `commit_tenant`): the API's clock for a
    # tenant, asked once its owners are listed, before any page.
    changes_clock: Callable[[int], datetime | None] | None = None


@dataclass
class TenantLoad:
    tenant_id: int
    listed: list[str] = field(default_factory=list)
    owners: list[OwnerLoad] = field(default_factory=list)
    outcome: CommitOutcome | None = None
    error: str | None = None  # listing the owners or committing failed: nothing of the tenant changed
    read_at: datetime | None = None  # a read of changes: the API's clock when it began

    def problems(self) -> list[str]:
        """Everything that kept this tenant's data from being exactly the API's, one sentence each."""
        if self.error:
            return [f"tenant {self.tenant_id}: {self.error}"]
        found = [
            f"tenant {self.tenant_id} owner {o.owner}: not read in full, its rows kept: {o.error}"
            for o in self.owners
            if o.error
        ]
        found += [
            f"tenant {self.tenant_id} owner {o.owner}: {o.refused.describe()}; refusing to delete them (set "
            "allow_shrink in the run config if the deletion is real)"
            for o in self.owners
            if o.refused
        ]
        return found


@dataclass
class LoadResult:
    table: RawTable
    window: Window | None
    tenants: list[TenantLoad]
    seconds: float = 0.0
    lock_held_seconds: float = 0.0
    phase_seconds: dict[str, float] = field(default_factory=dict)  # PHASES -> seconds
    rows_per_tenant: dict[int, int] | None = None  # every tenant's rows in the table after the commit
    rows_per_window: list[int] | None = None  # rows of the table in each of the windows asked for, after the commit
    reads_changes: bool = False  # the source read changes since each tenant's read mark, upserted

    def read_marks(self) -> dict[int, datetime | None]:
        """A read of changes: where each tenant's next read starts (None: the API gave no clock, or an owner was not
        read in full, so the mark stays where it was)."""
        return {
            t.tenant_id: t.read_at if t.outcome and not any(o.error for o in t.owners) else None for t in self.tenants
        }

    @property
    def table_rows(self) -> int | None:
        """Every row of the table after the commit."""
        return None if self.rows_per_tenant is None else sum(self.rows_per_tenant.values())

    @property
    def owners(self) -> list[OwnerLoad]:
        return [o for t in self.tenants for o in t.owners]

    def problems(self) -> list[str]:
        return [p for t in self.tenants for p in t.problems()]

    def unlisted(self) -> dict[str, int]:
        """Owners stored before but not listed now ("tenant/owner" -> rows kept)."""
        return {f"{t.tenant_id}/{o}": n for t in self.tenants if t.outcome for o, n in t.outcome.unlisted.items()}

    def not_configured(self) -> dict[int, int]:
        """Tenants whose rows the table holds but this load was not given (dropped from the settings since): tenant ->
        rows, which no load refreshes or removes."""
        given = {t.tenant_id for t in self.tenants}
        return {tenant: rows for tenant, rows in (self.rows_per_tenant or {}).items() if tenant not in given}

    def outside_window(self) -> int:
        return sum(t.outcome.outside_window for t in self.tenants if t.outcome)


# A load's phases, in order: fetching, parsing and staging go together, page by page, with no warehouse open;
# then the commit, the only one holding the DuckDB lock.
PHASES = ("fetch_parse_stage", "commit")


def describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def load(
    source: Source,
    tenants: list[int],
    warehouse: WarehouseSettings,
    run_id: str,
    options: LoadOptions = LoadOptions(),
    on_wait: Callable[[str], None] | None = None,
    count_windows: list[Window] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> LoadResult:
    """Fetch and stage every owner-window of every tenant, `parallel_tenants` tenants at a time; then open the
    warehouse and commit each tenant in one transaction. (Committing while others still fetch would hold the lock
    longer on a busy machine, and add the commit's memory to the fetch's.) `count_windows`: windows (days) to count
    the stored rows of. `on_phase(name)` is called as each of PHASES ends (the benchmark's memory profile)."""
    started = phase_started = time.monotonic()
    result = LoadResult(
        source.table, source.window, [TenantLoad(t) for t in tenants], reads_changes=source.changes_clock is not None
    )

    def phase_ended(name: str) -> None:
        nonlocal phase_started
        result.phase_seconds[name], phase_started = time.monotonic() - phase_started, time.monotonic()
        if on_phase:
            on_phase(name)

    ensure_folder(warehouse)  # the staging area's default place, beside the warehouse file
    root = Path(options.staging_dir) if options.staging_dir else default_root(warehouse.path)
    with staging_area(root) as area:
        with ThreadPoolExecutor(max(1, options.parallel_tenants), thread_name_prefix="tenant") as pool:
            list(pool.map(lambda tenant: _stage_tenant(source, tenant, area, options.workers), result.tenants))
        POOL.release_unused()  # the fetch's buffers go back before DuckDB takes its own
        phase_ended("fetch_parse_stage")
        committable = [t for t in result.tenants if t.error is None]
        if committable:
            with connect(warehouse, lock_wait=options.lock_wait_seconds, on_wait=on_wait, bulk=True) as con:
                locked = time.monotonic()
                for tenant in committable:
                    _commit(con, source, tenant, run_id, options.allow_shrink)
                result.rows_per_tenant = dict(
                    con.execute(
                        f"SELECT tenant_id, count(*) FROM {source.table.qualified} GROUP BY tenant_id"
                    ).fetchall()
                )
                if count_windows:
                    result.rows_per_window = rows_per_window(con, source.table, count_windows)
            result.lock_held_seconds = time.monotonic() - locked
        phase_ended("commit")
    result.seconds = time.monotonic() - started
    return result


def _stage_tenant(source: Source, tenant: TenantLoad, area: Path, workers: int) -> None:
    """List the tenant's owners, then fetch and stage `workers` of them at a time. Failures are recorded on
    the tenant (listing) or the owner (reading), never raised: the other tenants and owners go on."""
    try:
        tenant.listed = list(source.owners_of(tenant.tenant_id))
    except Exception as err:
        tenant.error = f"listing its owners failed: {describe(err)}"
        return
    tenant.owners = [OwnerLoad(tenant.tenant_id, owner) for owner in tenant.listed]
    if source.changes_clock:
        tenant.read_at = source.changes_clock(tenant.tenant_id)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix=f"stage-{tenant.tenant_id}") as pool:
        staging = [
            (report, pool.submit(_stage_owner, source, report, area / f"{tenant.tenant_id}-{number}.parquet"))
            for number, report in enumerate(tenant.owners)
        ]
        for report, future in staging:
            try:
                future.result()
            except Exception as err:
                report.error = describe(err)
                report.files.clear()


def _stage_owner(source: Source, report: OwnerLoad, path: Path) -> None:
    stage(ahead(iter(source.pages_of(report.tenant_id, report.owner))), path, source.table.staged_schema, report)


def _commit(
    con: duckdb.DuckDBPyConnection, source: Source, tenant: TenantLoad, run_id: str, allow_shrink: bool
) -> None:
    staged = [StagedOwner(o.owner, tuple(o.files)) for o in tenant.owners if o.error is None]
    try:
        tenant.outcome = commit_tenant(
            con,
            source.table,
            tenant.tenant_id,
            source.window,
            staged,
            tenant.listed,
            run_id=run_id,
            allow_shrink=allow_shrink,
            upsert=source.changes_clock is not None,
            read_mark=tenant.read_at,
        )
    except Exception as err:
        tenant.error = f"the commit failed and was rolled back: {describe(err)}"
        return
    for owner in tenant.owners:
        owner.stored = tenant.outcome.stored.get(owner.owner)
        owner.refused = tenant.outcome.refused.get(owner.owner)
