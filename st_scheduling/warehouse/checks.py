"""Data-quality queries behind the asset checks. Each returns the offending rows (empty = passed)."""

from __future__ import annotations

import duckdb

from st_scheduling.warehouse import vocabulary
from st_scheduling.warehouse.raw_tables import RawTable

RATE_TOLERANCE = 1e-9


def duplicate_keys(con: duckdb.DuckDBPyConnection, table: RawTable) -> list[tuple]:
    key = ", ".join(table.key)
    return con.execute(
        f"SELECT {key}, count(*) FROM {table.qualified} GROUP BY ALL HAVING count(*) > 1 LIMIT 20").fetchall()


def missing_required(con: duckdb.DuckDBPyConnection, table: RawTable, required: tuple[str, ...]) -> list[tuple]:
    per_column = ", ".join(f"count(*) FILTER (WHERE {c} IS NULL)" for c in required)
    row = con.execute(f"SELECT {per_column} FROM {table.qualified}").fetchone()
    return [(column, n) for column, n in zip(required, row) if n]


def modified_before_created(con: duckdb.DuckDBPyConnection, table: RawTable) -> list[tuple]:
    return con.execute(
        f"SELECT tenant_id, id FROM {table.qualified} WHERE modified_on < created_on LIMIT 20").fetchall()


def unknown_vocabulary(con: duckdb.DuckDBPyConnection, table: RawTable) -> dict[str, list[str]]:
    """lastStep and sessionOutcome values the platform's vocabulary does not map."""
    found = {}
    for column, known in (("last_step", vocabulary.STEP_MILESTONE), ("session_outcome", vocabulary.OUTCOMES)):
        values = [v for (v,) in con.execute(
            f"SELECT DISTINCT {column} FROM {table.qualified} WHERE {column} IS NOT NULL ORDER BY 1").fetchall()]
        unknown = [v for v in values if v not in known]
        if unknown:
            found[column] = unknown
    return found


def funnel_not_monotone(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        """
        SELECT tenant_id, scheduler_id, grain, period_start::VARCHAR, milestone
        FROM (SELECT *, lag(sessions_reached) OVER (
                  PARTITION BY tenant_id, scheduler_id, grain, period_start ORDER BY milestone_index) AS previous
              FROM marts.milestone_funnel)
        WHERE sessions_reached > previous ORDER BY ALL LIMIT 20
        """).fetchall()


RATE_COLUMNS = {
    "milestone_funnel": ("step_conversion_rate", "drop_off_share"),
    "campaign_attribution": ("opened_completion_rate", "engaged_completion_rate"),
    "service_demand": ("booked_share",),
}


def rates_out_of_range(con: duckdb.DuckDBPyConnection, mart: str) -> list[tuple]:
    out = []
    for column in RATE_COLUMNS[mart]:
        n = con.execute(f"SELECT count(*) FROM marts.{mart} WHERE {column} < 0 OR {column} > 1").fetchone()[0]
        if n:
            out.append((column, n))
    return out


def reconciliation_mismatches(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(scheduler, day, metric, computed, api) where sessions and the API's /performance disagree."""
    return con.execute(
        """
        SELECT scheduler_id, day::VARCHAR, metric, computed_value, api_value
        FROM marts.scheduler_scorecard
        WHERE NOT api_only AND abs(difference) > CASE WHEN metric LIKE '%rate' THEN ? ELSE 0 END
        ORDER BY day, scheduler_id, metric
        """, [RATE_TOLERANCE]).fetchall()


def companies_with_several_defaults(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT tenant_id, company_name, count(*) FROM marts.schedulers WHERE is_default "
        "GROUP BY ALL HAVING count(*) > 1").fetchall()


def follow_ups_without_contact(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute(
        "SELECT count(*) FROM marts.customer_follow_ups WHERE coalesce(phone, '') = '' AND coalesce(email, '') = ''"
    ).fetchone()[0]
