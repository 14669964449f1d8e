"""Checks on the marts: funnels monotone, rates in range, numbers reconciled with ServiceTitan's own."""

import dagster as dg

from st_scheduling.defs.check_results import check_result
from st_scheduling.defs.resources import DUCKDB_POOL, DuckDBWarehouse
from st_scheduling.vocabulary import precision
from st_scheduling.warehouse import checks, marts, reconciliation


@dg.asset_check(asset=dg.AssetKey(["marts", "milestone_funnel"]), pool=DUCKDB_POOL, blocking=True,
                description="No milestone is reached by more sessions than the milestone before it.")
def funnel_monotone(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        return check_result(
            checks.funnel_not_monotone(con), ("tenant_id", "scheduler_id", "grain", "period_start", "milestone",
                                              "sessions_reached", "previous_milestone_reached"),
            "no milestone is reached by more sessions than the one before it")


def rates_check(mart: str) -> dg.AssetChecksDefinition:
    columns = ", ".join(checks.RATE_COLUMNS[mart])

    @dg.asset_check(asset=dg.AssetKey(["marts", mart]), name="rates_within_0_and_1", pool=DUCKDB_POOL,
                    description=f"Rates ({columns}) lie within [0, 1].")
    def _rates(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            return check_result(checks.rates_out_of_range(con, mart), ("column", "rows_outside"),
                                f"{columns} lie within [0, 1]")

    return _rates


@dg.asset_check(asset=dg.AssetKey(["marts", "scheduler_scorecard"]), pool=DUCKDB_POOL,
                description="Milestones, sessions, jobs, bookings, contacts and rates reproduced from sessions "
                            "equal ServiceTitan's /performance numbers for every scheduler and day: counts exactly, "
                            "rates within the rounding the API uses (read from its values). A gap that a definition "
                            "switch of the vocabulary file would close is reported as such.")
def reconciled_with_performance_api(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    settings = warehouse.model_settings()
    vocabulary = settings.vocabulary
    with warehouse.connect() as con:
        marts.prepare(con, settings)
        decimals = reconciliation.api_rate_decimals(con)
        tolerance = precision.rate_tolerance(decimals)
        mismatches = reconciliation.mismatches(con, tolerance)
        gaps = reconciliation.definition_gaps(con, vocabulary, mismatches, tolerance)
    days = sorted({(scheduler, day) for _, scheduler, day, *_ in mismatches})
    return check_result(
        mismatches, ("tenant_id", "scheduler_id", "day", "metric", "computed", "api"),
        f"reproduced metrics equal /performance (counts exactly, rates within {tolerance:g})",
        description=reconciliation.summary(mismatches, gaps, vocabulary),
        mismatched_scheduler_days=dg.MetadataValue.json([f"scheduler {s} on {d}" for s, d in days[:50]]),
        api_rate_decimals=dg.MetadataValue.text("not rounded" if decimals is None else str(decimals)),
        rate_tolerance=dg.MetadataValue.float(tolerance), definition_gaps=dg.MetadataValue.json(gaps))


@dg.asset_check(asset=dg.AssetKey(["marts", "campaign_attribution"]), pool=DUCKDB_POOL,
                description="Every campaign id appears under one name, so no campaign is split across rows.")
def one_name_per_campaign(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        return check_result(checks.campaigns_under_several_names(con), ("tenant_id", "campaign_id", "names", "as"),
                            "one name per campaign id")


@dg.asset_check(asset=dg.AssetKey(["marts", "schedulers"]), pool=DUCKDB_POOL,
                description="Each company/brand has at most one default scheduler.")
def one_default_scheduler_per_company(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        return check_result(checks.companies_with_several_defaults(con), ("tenant_id", "company_name", "defaults"),
                            "at most one default scheduler per company")


@dg.asset_check(asset=dg.AssetKey(["marts", "customer_follow_ups"]), pool=DUCKDB_POOL,
                description="Every row of the call-back list has a phone or an email.")
def follow_ups_reachable(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        unreachable = checks.follow_ups_without_contact(con)
    return dg.AssetCheckResult(passed=unreachable == 0, metadata={"rows_without_contact": unreachable})


@dg.definitions
def mart_check_definitions() -> dg.Definitions:
    return dg.Definitions(asset_checks=[
        funnel_monotone, reconciled_with_performance_api, one_default_scheduler_per_company, follow_ups_reachable,
        one_name_per_campaign,
        *(rates_check(mart) for mart in checks.RATE_COLUMNS),
    ])
