"""Checks on the marts: vocabulary known, funnels monotone, rates in range, numbers reconciled with ServiceTitan's.

Each check is declared on its mart (`check_specs`) and evaluated inside the mart's own step, on the connection
that built it and before its transaction commits. So every check runs whenever its mart is materialized, by
any path — the UI, a schedule, a sensor, `marts_follow_raw`, a backfill, a re-execution — and a failed blocking
check leaves the previous table in place and fails the step, which holds back what is downstream in the same
run and, through `all_deps_blocking_checks_passed`, on later automation ticks too.
"""

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import duckdb

from st_scheduling import transform
from st_scheduling.defs.check_results import check_result
from st_scheduling.quality import checks, reconciliation
from st_scheduling.transform import catalogue
from st_scheduling.vocabulary import Vocabulary, precision

Evaluate = Callable[[duckdb.DuckDBPyConnection, transform.ModelSettings], dg.AssetCheckResult]


@dataclass(frozen=True)
class MartCheck:
    mart: str
    spec: dg.AssetCheckSpec
    evaluate: Evaluate


MART_CHECKS: dict[str, list[MartCheck]] = {}


def mart_check(mart: str, name: str, description: str, blocking: bool = False) -> Callable[[Evaluate], Evaluate]:
    """Registers `evaluate` as the check `name` of marts/<mart>."""

    def register(evaluate: Evaluate) -> Evaluate:
        spec = dg.AssetCheckSpec(name, asset=dg.AssetKey(["marts", mart]), blocking=blocking, description=description)
        MART_CHECKS.setdefault(mart, []).append(MartCheck(mart, spec, evaluate))
        return evaluate

    return register


@mart_check(
    "sessions",
    "vocabulary_known",
    blocking=True,
    description=(
        "Unknown lastStep / sessionOutcome values stay under the vocabulary file's threshold on every tenant-day. "
        "Above it the sessions table is not replaced and the marts that read milestones and outcomes do not run; the "
        "failure lists each unknown value with its count and names the file."
    ),
)
def vocabulary_known(con: duckdb.DuckDBPyConnection, settings: transform.ModelSettings) -> dg.AssetCheckResult:
    vocabulary: Vocabulary = settings.vocabulary
    verdict = checks.unknown_vocabulary_in_sessions(con, vocabulary)
    return dg.AssetCheckResult(
        passed=verdict.passed,
        description=verdict.message,
        metadata={
            "unknown_values": dg.MetadataValue.json(verdict.unknown_values),
            "worst_tenant_day_share": dg.MetadataValue.float(verdict.worst_share),
            "threshold": dg.MetadataValue.float(vocabulary.unknown_threshold),
            "vocabulary_file": dg.MetadataValue.text(vocabulary.source),
        },
    )


@mart_check(
    "milestone_funnel",
    "funnel_monotone",
    blocking=True,
    description="No milestone is reached by more sessions than the milestone before it.",
)
def funnel_monotone(con: duckdb.DuckDBPyConnection, settings: transform.ModelSettings) -> dg.AssetCheckResult:
    return check_result(
        checks.funnel_not_monotone(con),
        (
            "tenant_id",
            "scheduler_id",
            "grain",
            "period_start",
            "milestone",
            "sessions_reached",
            "previous_milestone_reached",
        ),
        "no milestone is reached by more sessions than the one before it",
    )


def _rates_check(mart: str) -> None:
    columns = ", ".join(checks.RATE_COLUMNS[mart])

    @mart_check(mart, "rates_within_0_and_1", description=f"Rates ({columns}) lie within [0, 1].")
    def rates_within_0_and_1(con: duckdb.DuckDBPyConnection, settings: transform.ModelSettings) -> dg.AssetCheckResult:
        return check_result(
            checks.rates_out_of_range(con, mart), ("column", "rows_outside"), f"{columns} lie within [0, 1]"
        )


for _mart in checks.RATE_COLUMNS:
    _rates_check(_mart)


@mart_check(
    "scheduler_scorecard",
    "reconciled_with_performance_api",
    description=(
        "Milestones, sessions, jobs, bookings, contacts and rates reproduced from sessions equal ServiceTitan's "
        "/performance numbers for every scheduler and day: counts exactly, rates within the rounding the API uses "
        "(read from its values). A gap that a definition switch of the vocabulary file would close is reported as such."
    ),
)
def reconciled_with_performance_api(
    con: duckdb.DuckDBPyConnection, settings: transform.ModelSettings
) -> dg.AssetCheckResult:
    decimals = reconciliation.api_rate_decimals(con)
    tolerance = precision.rate_tolerance(decimals)
    mismatches = reconciliation.mismatches(con, tolerance)
    gaps = reconciliation.definition_gaps(con, settings.vocabulary, mismatches, tolerance)
    days = sorted({(scheduler, day) for _, scheduler, day, *_ in mismatches})
    return check_result(
        mismatches,
        ("tenant_id", "scheduler_id", "day", "metric", "computed", "api"),
        f"reproduced metrics equal /performance (counts exactly, rates within {tolerance:g})",
        description=reconciliation.summary(mismatches, gaps, settings.vocabulary),
        mismatched_scheduler_days=dg.MetadataValue.json([f"scheduler {s} on {d}" for s, d in days[:50]]),
        api_rate_decimals=dg.MetadataValue.text("not rounded" if decimals is None else str(decimals)),
        rate_tolerance=dg.MetadataValue.float(tolerance),
        definition_gaps=dg.MetadataValue.json(gaps),
    )


@mart_check(
    "campaign_attribution",
    "one_name_per_campaign",
    description="Every campaign id appears under one name, so no campaign is split across rows.",
)
def one_name_per_campaign(con: duckdb.DuckDBPyConnection, settings: transform.ModelSettings) -> dg.AssetCheckResult:
    return check_result(
        checks.campaigns_under_several_names(con),
        ("tenant_id", "campaign_id", "names", "as"),
        "one name per campaign id",
    )


@mart_check(
    "campaign_attribution",
    "campaign_names_within_few_ids",
    description=(
        f"Warns when one campaign name (compared as a slug) spans more than {checks.CAMPAIGN_IDS_PER_NAME_AT_MOST} "
        "campaign ids: those ids split one campaign into rows of a session or two, so no row shows what it books. A "
        "tenant sending a new id with every visit has its campaigns identified by name (marts/sessions' "
        "campaign_identity metadata); this finds what that rule leaves, such as a tenant's one integration among "
        "others sending such ids. Non-blocking: the rows are right for the ids the API sent."
    ),
)
def campaign_names_within_few_ids(
    con: duckdb.DuckDBPyConnection, settings: transform.ModelSettings
) -> dg.AssetCheckResult:
    return check_result(
        checks.names_over_many_campaign_ids(con),
        ("tenant_id", "campaign", "campaign_ids", "sessions", "booked_sessions"),
        f"no campaign name spans more than {checks.CAMPAIGN_IDS_PER_NAME_AT_MOST} campaign ids",
        severity=dg.AssetCheckSeverity.WARN,
    )


@mart_check(
    "schedulers",
    "one_default_scheduler_per_company",
    description="Each company/brand has at most one default scheduler.",
)
def one_default_scheduler_per_company(
    con: duckdb.DuckDBPyConnection, settings: transform.ModelSettings
) -> dg.AssetCheckResult:
    return check_result(
        checks.companies_with_several_defaults(con),
        ("tenant_id", "company_name", "defaults"),
        "at most one default scheduler per company",
    )


@mart_check(
    "customer_follow_ups",
    "follow_ups_reachable",
    description="Every row of the call-back list has a phone or an email.",
)
def follow_ups_reachable(con: duckdb.DuckDBPyConnection, settings: transform.ModelSettings) -> dg.AssetCheckResult:
    unreachable = checks.follow_ups_without_contact(con)
    return dg.AssetCheckResult(passed=unreachable == 0, metadata={"rows_without_contact": unreachable})


def check_specs(mart: catalogue.Mart) -> list[dg.AssetCheckSpec]:
    return [check.spec for check in MART_CHECKS.get(mart.name, [])]


def evaluate(
    con: duckdb.DuckDBPyConnection, mart: catalogue.Mart, settings: transform.ModelSettings
) -> list[dg.AssetCheckResult]:
    """Every check of the mart, on the connection that built it (its transaction still open)."""
    return [
        check.evaluate(con, settings)._replace(check_name=check.spec.name, asset_key=check.spec.asset_key)
        for check in MART_CHECKS.get(mart.name, [])
    ]


def failed_blocking(mart: catalogue.Mart, results: list[dg.AssetCheckResult]) -> list[dg.AssetCheckResult]:
    blocking = {check.spec.name for check in MART_CHECKS.get(mart.name, []) if check.spec.blocking}
    return [
        r for r in results if r.check_name in blocking and not r.passed and r.severity == dg.AssetCheckSeverity.ERROR
    ]
