"""Checks on the raw tables: keys unique, required fields present, timestamps sane, vocabulary known."""

import dagster as dg

from st_scheduling.defs.check_results import check_result
from st_scheduling.defs.resources import DUCKDB_POOL, DuckDBWarehouse
from st_scheduling.quality import checks, volume
from st_scheduling.warehouse.raw_tables import RAW_TABLES, RawTable

SESSION_REQUIRED = ("tenant_id", "id", "created_on", "modified_on", "last_checkin_date")
REQUIRED = {
    "schedulers": ("tenant_id", "id", "name", "company_name", "created_on", "modified_on", "data_api_key", "mode"),
    "scheduler_sessions": SESSION_REQUIRED,
    "router_sessions": SESSION_REQUIRED,
    "scheduler_performance": ("tenant_id", "id", "window_start", "total_sessions", "milestone_opened"),
    "router_performance": ("tenant_id", "id", "window_start", "opened_count"),
}


def raw_table_checks(table: RawTable) -> list[dg.AssetChecksDefinition]:
    asset = dg.AssetKey(["raw", table.name])

    @dg.asset_check(
        asset=asset,
        name="unique_key",
        blocking=True,
        pool=DUCKDB_POOL,
        description=f"No two rows share ({', '.join(table.key)}).",
    )
    def unique_key(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            return check_result(
                checks.duplicate_keys(con, table), (*table.key, "copies"), f"one row per ({', '.join(table.key)})"
            )

    @dg.asset_check(
        asset=asset,
        name="required_fields",
        pool=DUCKDB_POOL,
        description=f"Fields the spec requires are present: {', '.join(REQUIRED[table.name])}.",
    )
    def required_fields(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            return check_result(
                checks.missing_required(con, table, REQUIRED[table.name]),
                ("column", "rows_null"),
                f"{', '.join(REQUIRED[table.name])} are never null",
            )

    defs = [unique_key, required_fields]
    if table.window_column == "created_on":

        @dg.asset_check(
            asset=asset,
            name="modified_after_created",
            pool=DUCKDB_POOL,
            description="Every session's modifiedOn is at or after its createdOn.",
        )
        def modified_after_created(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
            with warehouse.connect() as con:
                return check_result(
                    checks.modified_before_created(con, table),
                    ("tenant_id", "id", "created_on", "modified_on"),
                    "modified_on >= created_on",
                )

        @dg.asset_check(
            asset=asset,
            name="known_vocabulary",
            pool=DUCKDB_POOL,
            description="Every lastStep and sessionOutcome value is mapped by the vocabulary file "
            "(warns, listing the unknown values; the marts fail when they pass its "
            "threshold).",
        )
        def known_vocabulary(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
            vocabulary = warehouse.vocabulary()
            with warehouse.connect() as con:
                unknown = checks.unknown_vocabulary(con, table, vocabulary)
            rows = [(column, value, n) for column, values in unknown.items() for value, n in values.items()]
            return check_result(
                rows,
                ("column", "value", "rows"),
                f"every value is listed in {vocabulary.source}",
                severity=dg.AssetCheckSeverity.WARN,
                unknown_values=dg.MetadataValue.json(unknown),
            )

        defs += [modified_after_created, known_vocabulary]
    return defs


@dg.asset_check(
    asset=dg.AssetKey(["raw", "scheduler_sessions"]),
    pool=DUCKDB_POOL,
    description="The broken-scheduler alarm: fails when a scheduler's sessions fall far below its own "
    "usual volume for those weekdays and hours (a broken website embed, a removed Google "
    "link). Rule: st_scheduling/quality/volume.py; quiet on normal nights and weekends.",
)
def scheduler_volume_alarm(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        found = volume.alarms(con, warehouse.timezone)
    return check_result(
        [
            (
                a.tenant_id,
                a.scheduler_id,
                a.scheduler_name,
                f"{a.window_start:%Y-%m-%d %H:00}",
                f"{a.window_end:%Y-%m-%d %H:00}",
                round(a.expected, 1),
                a.seen,
            )
            for a in found
        ],
        ("tenant_id", "scheduler_id", "scheduler_name", "from", "to", "expected", "seen"),
        "every scheduler receives sessions near its usual volume",
        description="; ".join(a.describe() for a in found) or None,
    )


@dg.definitions
def raw_check_definitions() -> dg.Definitions:
    return dg.Definitions(
        asset_checks=[*(c for table in RAW_TABLES for c in raw_table_checks(table)), scheduler_volume_alarm]
    )
