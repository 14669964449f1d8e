"""Raw Scheduling Pro data, exactly as the API holds it, for every configured tenant."""

import time
from collections.abc import Callable
from datetime import timedelta

import dagster as dg

from st_scheduling.defs.partitions import daily_partitions, day_windows
from st_scheduling.defs.raw.metadata import column_schema, table_metadata
from st_scheduling.defs.resources import DUCKDB_POOL, DuckDBWarehouse, ServiceTitanResource
from st_scheduling.warehouse import ingest
from st_scheduling.warehouse.raw_tables import (
    ROUTER_PERFORMANCE,
    ROUTER_SESSIONS,
    SCHEDULER_PERFORMANCE,
    SCHEDULER_SESSIONS,
    SCHEDULERS,
    RawTable,
)

GROUP = "scheduling_pro_raw"
OWNERS = ["team:scheduling-data"]
KINDS = {"servicetitan", "duckdb"}
# The hourly refresh keeps these within the hour; three hours without one means automation is broken.
HOURLY = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=3), warn_window=timedelta(hours=2))
COMPLETENESS = "complete_against_total_count"


class TenantFailures(Exception):
    """Some tenants failed; the others' data is committed."""


def _label(unit: object) -> str:
    """A tenant id, or tenant:router for a router."""
    return ":".join(map(str, unit)) if isinstance(unit, tuple) else str(unit)


def for_each_tenant(context: dg.AssetExecutionContext, tenants: list, load: Callable[[object], object]) -> dict:
    """Run `load` per tenant; a failing tenant does not stop the others, and fails the run at the end."""
    results, failures = {}, {}
    for tenant in tenants:
        try:
            results[tenant] = load(tenant)
        except Exception as err:  # noqa: BLE001 - reported below, with the other tenants' data kept
            context.log.error(f"tenant {_label(tenant)}: {type(err).__name__}: {err}")
            failures[_label(tenant)] = f"{type(err).__name__}: {err}"
    if failures:
        names = ", ".join(str(t) for t in failures)
        raise TenantFailures(f"{len(failures)} tenant(s) failed: {names}. " + " | ".join(
            f"{t}: {msg}" for t, msg in failures.items()))
    return results


def _asset(table: RawTable, **kwargs):
    return dg.asset(
        key=["raw", table.name],
        group_name=GROUP,
        owners=OWNERS,
        kinds=KINDS,
        pool=DUCKDB_POOL,
        description=table.description,
        metadata={"dagster/column_schema": column_schema(table), "dagster/table_name": f"{table.qualified}"},
        **kwargs,
    )


def _range_windows(context: dg.AssetExecutionContext) -> list:
    keys = context.partition_key_range
    return day_windows(keys.start, keys.end)


def _ingest(context: dg.AssetExecutionContext, servicetitan: ServiceTitanResource, warehouse: DuckDBWarehouse,
            table: RawTable, units: list, load: Callable, window: tuple | None = None) -> tuple[dict, dict, dict]:
    """Run `load(client, con, unit)` for every tenant (or tenant/router pair) with one client and one
    connection; returns the per-unit results, the client's totals and the materialization metadata."""
    started = time.monotonic()
    with servicetitan.client() as client, warehouse.connect() as con:
        results = for_each_tenant(context, units, lambda unit: load(client, con, unit))
        per_unit = {_label(u): sum(r.values()) if isinstance(r, dict) else r for u, r in results.items()}
        metadata = table_metadata(con, table, client.stats, started, window=window, per_tenant=per_unit)
        return results, dict(client.stats.totals), metadata


@_asset(SCHEDULERS)
def raw_schedulers(context: dg.AssetExecutionContext, servicetitan: ServiceTitanResource,
                   warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    """Every scheduler of every configured tenant: company/brand, default flag, mode, status, data API key,
    quick-launch link, created and modified times."""
    run_id = context.run.run_id
    _, _, metadata = _ingest(context, servicetitan, warehouse, SCHEDULERS, servicetitan.tenants(),
                             lambda client, con, tenant: ingest.ingest_schedulers(client, con, tenant, run_id))
    return dg.MaterializeResult(metadata=metadata)


@_asset(SCHEDULER_SESSIONS, partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
        freshness_policy=HOURLY,
        check_specs=[dg.AssetCheckSpec(COMPLETENESS, asset=["raw", SCHEDULER_SESSIONS.name],
                                       description="For every scheduler, the rows stored for the window are at "
                                                   "least the totalCount the API reported for it.")])
def raw_scheduler_sessions(context: dg.AssetExecutionContext, servicetitan: ServiceTitanResource,
                           warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    """Every Scheduling Pro session, by day of creation: milestone reached (lastStep), outcome, job/booking/lead
    ids, timeslot, service requested, customer contact and device, and the full source tracking (UTMs, click
    ids, campaign). One row per tenant and session id, at its latest modifiedOn. Holds customer PII."""
    windows, run_id = _range_windows(context), context.run.run_id
    window = (windows[0][0], windows[-1][1])
    per_tenant, totals, metadata = _ingest(
        context, servicetitan, warehouse, SCHEDULER_SESSIONS, servicetitan.tenants(),
        lambda client, con, tenant: ingest.ingest_scheduler_sessions(client, con, tenant, window, run_id), window)
    stored = {(t, sid): n for t, counts in per_tenant.items() for sid, n in counts.items()}
    metadata["rows_per_scheduler"] = dg.MetadataValue.json({sid: n for (_, sid), n in stored.items()})
    return dg.MaterializeResult(metadata=metadata, check_results=[completeness(stored, totals)])


def completeness(stored: dict[tuple[int, str], int], totals: dict[str, int]) -> dg.AssetCheckResult:
    """Stored rows per scheduler against the totalCount the API gave for the same window."""
    short = {}
    for (tenant, sid), n in stored.items():
        total = totals.get(f"/tenant/{tenant}/schedulers/{sid}/sessions", 0)
        if n < total:
            short[f"{tenant}/{sid}"] = {"stored": n, "total_count": total}
    return dg.AssetCheckResult(check_name=COMPLETENESS, passed=not short,
                               metadata={"schedulers_checked": len(stored),
                                         "short_schedulers": dg.MetadataValue.json(short)})


@_asset(SCHEDULER_PERFORMANCE, partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
        freshness_policy=HOURLY)
def raw_scheduler_performance(context: dg.AssetExecutionContext, servicetitan: ServiceTitanResource,
                              warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    """ServiceTitan's own performance numbers per scheduler and day: milestone counts, completion rates,
    contacts, jobs, bookings, abandoned sessions sent to bookings/leads, recoveries and SMS sent."""
    windows, run_id = _range_windows(context), context.run.run_id
    _, _, metadata = _ingest(
        context, servicetitan, warehouse, SCHEDULER_PERFORMANCE, servicetitan.tenants(),
        lambda client, con, tenant: ingest.ingest_scheduler_performance(client, con, tenant, windows, run_id),
        (windows[0][0], windows[-1][1]))
    return dg.MaterializeResult(metadata=metadata)


@_asset(ROUTER_SESSIONS, partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run())
def raw_router_sessions(context: dg.AssetExecutionContext, servicetitan: ServiceTitanResource,
                        warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    """Sessions of the configured routers (ST_ROUTER_IDS), by day of creation, including sessions the router
    handed to a scheduler (those also appear in raw/scheduler_sessions with the same id). Holds customer PII."""
    windows, run_id = _range_windows(context), context.run.run_id
    window = (windows[0][0], windows[-1][1])
    _, _, metadata = _ingest(
        context, servicetitan, warehouse, ROUTER_SESSIONS, servicetitan.routers(),
        lambda client, con, pair: ingest.ingest_router_sessions(client, con, *pair, window, run_id), window)
    return dg.MaterializeResult(metadata=metadata)


@_asset(ROUTER_PERFORMANCE, partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run())
def raw_router_performance(context: dg.AssetExecutionContext, servicetitan: ServiceTitanResource,
                           warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    """ServiceTitan's own router numbers per router and day: sessions opened and interacted, and sessions
    handed to each scheduler."""
    windows, run_id = _range_windows(context), context.run.run_id
    _, _, metadata = _ingest(
        context, servicetitan, warehouse, ROUTER_PERFORMANCE, servicetitan.routers(),
        lambda client, con, pair: ingest.ingest_router_performance(client, con, *pair, windows, run_id),
        (windows[0][0], windows[-1][1]))
    return dg.MaterializeResult(metadata=metadata)
