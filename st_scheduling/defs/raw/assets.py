"""Raw Scheduling Pro data, exactly as the API holds it, for every configured tenant.

Each raw asset is a `RawSpec` turned into an asset by one factory: the asset reads the partition range,
hands the ingest layer a source, and turns its load report into metadata and checks.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg
from pydantic import Field

from st_scheduling.defs.code_links import linked
from st_scheduling.defs.partitions import CHANGES, READ, daily_partitions, day_windows
from st_scheduling.defs.raw.metadata import load_metadata, not_configured_text, partition_metadata
from st_scheduling.defs.resources import DUCKDB_POOL, DuckDBWarehouse, ServiceTitanResource
from st_scheduling.defs.tables import OWNERS, PII_TAG, column_schema
from st_scheduling.ingest import LoadResult, Source, load, sources
from st_scheduling.servicetitan import ConfigurationError
from st_scheduling.warehouse import raw_tables as tables

GROUP = "scheduling_pro_raw"
KINDS = {"servicetitan", "duckdb"}
# The hourly refresh keeps these within the hour; three hours without one means automation is broken.
HOURLY = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=3), warn_window=timedelta(hours=2))
# The scheduler inventory is refreshed on every change the sensor sees and every night at the latest.
NIGHTLY = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30), warn_window=timedelta(hours=26))
COMPLETENESS = "complete_against_total_count"
Windows = list[tuple]
Marks = dict[int, datetime]


class RawLoadConfig(dg.Config):
    """Run config of every raw asset (UI launchpad or `dg launch --config`)."""

    allow_shrink: bool = Field(
        default=False,
        description="Let this run store fewer distinct rows for a scheduler or router and window than are stored "
        "now. Off, such a write is refused and the run fails naming it. Turn on only when the API "
        "really deleted records (a customer's erasure request): see the README runbook.",
    )


@dataclass(frozen=True)
class RawSpec:
    table: tables.RawTable
    description: str
    source: Callable[[ServiceTitanResource, Callable, Windows | None], Source]
    tenants: Callable[[ServiceTitanResource], list[int]]
    tenant_setting: str = "ST_TENANT_IDS"  # the variable naming those tenants, for a run to point at
    partitioned: bool = True
    freshness: dg.FreshnessPolicy = HOURLY
    completeness: bool = False
    # For a run tagged to read changes: the sessions modified since each tenant's read mark (since the run's first
    # day without one), upserted.
    changes: Callable[[ServiceTitanResource, Callable, Marks, datetime], Source] | None = None


def _routers(servicetitan: ServiceTitanResource) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for tenant, router in servicetitan.routers():
        found.setdefault(tenant, []).append(router)
    return found


def _span(windows: Windows) -> tuple:
    return windows[0][0], windows[-1][1]


SPECS = (
    RawSpec(
        tables.SCHEDULERS,
        "Every scheduler of every configured tenant: company/brand, default flag, mode, status, "
        "data API key, quick-launch link, created and modified times.",
        lambda st, clients, _: sources.schedulers(clients),
        lambda st: st.tenants(),
        partitioned=False,
        freshness=NIGHTLY,
    ),
    RawSpec(
        tables.SCHEDULER_SESSIONS,
        "Every Scheduling Pro session, by day of creation: milestone reached (lastStep), "
        "outcome, job/booking/lead ids, timeslot, service requested, customer contact and device, and the full "
        "source tracking (UTMs, click ids, campaign). One row per tenant and session id, at its latest "
        "modifiedOn. Holds customer PII.",
        lambda st, clients, windows: sources.scheduler_sessions(clients, _span(windows)),
        lambda st: st.tenants(),
        completeness=True,
        changes=lambda st, clients, marks, since: sources.scheduler_session_changes(clients, marks, since),
    ),
    RawSpec(
        tables.SCHEDULER_PERFORMANCE,
        "ServiceTitan's own performance numbers per scheduler and day: milestone "
        "counts, completion rates, contacts, jobs, bookings, abandoned sessions sent to bookings/leads, "
        "recoveries and SMS sent.",
        lambda st, clients, windows: sources.scheduler_performance(clients, windows),
        lambda st: st.tenants(),
    ),
    RawSpec(
        tables.ROUTER_SESSIONS,
        "Sessions of the configured routers (ST_ROUTER_IDS), by day of creation, including "
        "sessions the router handed to a scheduler (those also appear in raw/scheduler_sessions with the "
        "same id). Holds customer PII.",
        lambda st, clients, windows: sources.router_sessions(clients, _span(windows), _routers(st)),
        lambda st: sorted(_routers(st)),
        tenant_setting="ST_ROUTER_IDS",
        completeness=True,
        changes=lambda st, clients, marks, since: sources.router_session_changes(clients, marks, since, _routers(st)),
    ),
    RawSpec(
        tables.ROUTER_PERFORMANCE,
        "ServiceTitan's own router numbers per router and day: sessions opened and "
        "interacted, and sessions handed to each scheduler.",
        lambda st, clients, windows: sources.router_performance(clients, windows, _routers(st)),
        lambda st: sorted(_routers(st)),
        tenant_setting="ST_ROUTER_IDS",
    ),
)


def completeness(result: LoadResult) -> dg.AssetCheckResult:
    """Rows stored per owner against the totalCount the API gave for the same window."""
    short = {
        f"{o.tenant_id}/{o.owner}": {"stored": o.stored, "total_count": o.total_count}
        for o in result.owners
        if o.total_count is not None and (o.stored is None or o.stored < o.total_count)
    }
    return dg.AssetCheckResult(
        check_name=COMPLETENESS,
        passed=not short,
        metadata={"owners_checked": len(result.owners), "short_owners": dg.MetadataValue.json(short)},
    )


def raw_asset(spec: RawSpec) -> dg.AssetsDefinition:
    key = ["raw", spec.table.name]
    checks = [
        dg.AssetCheckSpec(
            COMPLETENESS,
            asset=key,
            description="For every scheduler or router, the rows "
            "stored for the window are at least the totalCount the API reported for it.",
        )
    ]

    @dg.asset(
        key=key,
        group_name=GROUP,
        owners=OWNERS,
        kinds=KINDS,
        pool=DUCKDB_POOL,
        description=spec.description,
        metadata={
            "dagster/column_schema": column_schema(
                (c.name, c.duckdb_type, c.description, c.name in spec.table.pii_columns) for c in spec.table.columns
            ),
            "dagster/table_name": spec.table.qualified,
        },
        partitions_def=daily_partitions if spec.partitioned else None,
        # Unpartitioned too, so `dg launch --partition-range` (make demo) can run a whole job in one run.
        backfill_policy=dg.BackfillPolicy.single_run(),
        freshness_policy=spec.freshness,
        check_specs=checks if spec.completeness else None,
        tags=PII_TAG if spec.table.pii_columns else None,
    )
    def _raw(
        context: dg.AssetExecutionContext,
        config: RawLoadConfig,
        servicetitan: ServiceTitanResource,
        warehouse: DuckDBWarehouse,
    ) -> dg.MaterializeResult:
        windows = day_windows(*context.partition_key_range) if spec.partitioned else None
        try:
            servicetitan.check_settings()
        except ConfigurationError as err:  # one line naming what to set, before any request
            raise dg.Failure(description=f"{spec.table.name}: {err}") from None
        with servicetitan.clients() as clients:
            if spec.changes and windows and context.run.tags.get(READ) == CHANGES:
                source = spec.changes(servicetitan, clients, warehouse.read_marks(spec.table), windows[0][0])
            else:
                source = spec.source(servicetitan, clients, windows)
            result = load(
                source,
                spec.tenants(servicetitan),
                warehouse.settings,
                context.run.run_id,
                warehouse.load_options(servicetitan, config.allow_shrink),
                on_wait=context.log.warning,
                count_windows=windows,
            )
            metadata = load_metadata(result, clients.stats, spec.tenant_setting)
        # A single run over a range records each day's own numbers, not the run's total on every day.
        for partition_key, day_metadata in partition_metadata(
            context.partition_keys if windows else [], windows, result
        ).items():
            context.add_asset_metadata(day_metadata, partition_key=partition_key)
        if unlisted := result.unlisted():
            context.log.warning(
                f"{spec.table.name}: owners stored before but not listed by the API now keep their "
                f"rows: {', '.join(unlisted)}"
            )
        if dropped := result.not_configured():
            context.log.warning(f"{spec.table.name}: {not_configured_text(spec.table, spec.tenant_setting, dropped)}")
        if problems := result.problems():
            raise dg.Failure(
                description="\n".join(
                    [
                        f"{spec.table.name}: {problems[0]}",
                        f"({len(problems)} problem(s) in all; everything else was committed)",
                        *problems[1:],
                    ]
                ),
                metadata=metadata,
            )
        return dg.MaterializeResult(
            metadata=metadata, check_results=[completeness(result)] if spec.completeness else None
        )

    return _raw


raw_schedulers, raw_scheduler_sessions, raw_scheduler_performance, raw_router_sessions, raw_router_performance = linked(
    [raw_asset(spec) for spec in SPECS]
)
