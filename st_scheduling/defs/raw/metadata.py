"""Materialization metadata for raw tables, from the ingest layer's load report. No PII, no secrets."""

from __future__ import annotations

import dagster as dg

from st_scheduling.ingest import LoadResult
from st_scheduling.servicetitan import CallStats
from st_scheduling.warehouse.raw_tables import RawTable


# Every key a run writes starts with `run_`: a range run records the same numbers on each day it loaded, so on
# a day's page they must not read as that day's. `dagster/row_count` keeps Dagster's name because it is what it
# says (every row of the table after the run) and the asset overview shows it as the table's row count.
def load_metadata(result: LoadResult, stats: CallStats, tenant_setting: str) -> dict:
    owners = result.owners
    metadata: dict = {
        "run_api_calls": dg.MetadataValue.int(stats.calls),
        "run_api_retries": dg.MetadataValue.int(stats.retries),
        "run_api_token_fetches": dg.MetadataValue.int(stats.token_fetches),
        "run_api_refetched_windows": dg.MetadataValue.int(stats.refetched_windows),
        "run_api_bytes": dg.MetadataValue.int(sum(o.bytes for o in owners)),
        "run_seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "run_lock_held_seconds": dg.MetadataValue.float(round(result.lock_held_seconds, 3)),
        "run_rows_stored_per_tenant": dg.MetadataValue.json(
            {str(t.tenant_id): sum(o.stored or 0 for o in t.owners) for t in result.tenants}
        ),
        "run_load_report": dg.MetadataValue.json({f"{o.tenant_id}/{o.owner}": o.summary() for o in owners}),
    }
    if result.table_rows is not None:
        metadata["dagster/row_count"] = dg.MetadataValue.int(result.table_rows)
    if result.window is not None:
        metadata["run_rows_stored"] = dg.MetadataValue.int(sum(o.stored or 0 for o in owners))
        metadata["run_window"] = dg.MetadataValue.text(_interval(result.window))
    if result.reads_changes:
        metadata["run_rows_upserted"] = dg.MetadataValue.int(sum(o.stored or 0 for o in owners))
        metadata["run_read_marks"] = dg.MetadataValue.json(
            {str(tenant): mark and mark.isoformat() for tenant, mark in result.read_marks().items()}
        )
    if unlisted := result.unlisted():
        metadata["run_owners_not_listed_rows_kept"] = dg.MetadataValue.json(unlisted)
    if outside := result.outside_window():
        metadata["run_records_outside_window_not_stored"] = dg.MetadataValue.int(outside)
    if stats.problems:
        metadata["run_api_problems"] = dg.MetadataValue.json(dict(stats.problems))
    if dropped := result.not_configured():
        metadata["tenants_not_configured"] = dg.MetadataValue.text(
            not_configured_text(result.table, tenant_setting, dropped)
        )
    return metadata


def not_configured_text(table: RawTable, tenant_setting: str, rows: dict[int, int]) -> str:
    """What a run says of tenants whose rows the table holds though `tenant_setting` no longer names them: nothing
    refreshes or removes those rows, and the marts go on counting them, so whoever dropped the tenant has to choose."""
    tenants = sorted(rows)
    counts = ", ".join(f"tenant {tenant}: {rows[tenant]:,} rows" for tenant in tenants)
    return (
        f"{counts}. Not in {tenant_setting}: their rows in {table.qualified} are kept as they are and no run "
        f"refreshes them. To erase them, DELETE FROM {table.qualified} WHERE tenant_id IN "
        f"({', '.join(map(str, tenants))}), then materialize the marts (README runbook: a tenant left the "
        "settings)."
    )


def _interval(window: tuple) -> str:
    return f"[{window[0].isoformat()}, {window[1].isoformat()})"


def partition_metadata(partition_keys: list[str], windows: list[tuple] | None, result: LoadResult) -> dict[str, dict]:
    """Each daily partition's own numbers (its rows in the table after the run, and its window), and a line saying
    whose the other numbers on its page are, since Dagster shows the run's beside them."""
    if not windows or result.rows_per_window is None:
        return {}
    first, last = partition_keys[0], partition_keys[-1]
    run = f"1 day, {first}" if first == last else f"{len(partition_keys)} days, {first} to {last}"
    about = (
        f"dagster/partition_row_count and partition_window: this day's own. run_*: the whole run ({run}). "
        "dagster/row_count: the whole table after the run."
    )
    return {
        key: {
            "dagster/partition_row_count": dg.MetadataValue.int(rows),
            "partition_window": dg.MetadataValue.text(_interval(window)),
            "about_these_numbers": dg.MetadataValue.text(about),
        }
        for key, window, rows in zip(partition_keys, windows, result.rows_per_window, strict=True)
    }
