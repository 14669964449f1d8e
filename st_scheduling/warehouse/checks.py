"""Data-quality queries behind the asset checks. Each returns the offending rows (empty = passed)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from st_scheduling.vocabulary import Vocabulary
from st_scheduling.warehouse.raw_tables import RawTable


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
        f"SELECT tenant_id, id, created_on, modified_on FROM {table.qualified} WHERE modified_on < created_on "
        "ORDER BY ALL LIMIT 20").fetchall()


def unknown_vocabulary(con: duckdb.DuckDBPyConnection, table: RawTable, vocabulary: Vocabulary) -> dict[str, list[str]]:
    """lastStep and sessionOutcome values the vocabulary file does not map."""
    found = {}
    for column, known in (("last_step", vocabulary.steps), ("session_outcome", vocabulary.outcomes)):
        values = [v for (v,) in con.execute(
            f"SELECT DISTINCT {column} FROM {table.qualified} WHERE {column} IS NOT NULL ORDER BY 1").fetchall()]
        unknown = [v for v in values if v not in known]
        if unknown:
            found[column] = unknown
    return found


@dataclass(frozen=True)
class VocabularyVerdict:
    passed: bool
    message: str
    worst_share: float  # the largest share of one tenant-day's sessions with an unknown value
    unknown_values: dict[str, int]  # "lastStep 'X'" -> sessions


def unknown_vocabulary_in_sessions(con: duckdb.DuckDBPyConnection, vocabulary: Vocabulary) -> VocabularyVerdict:
    """Whether unknown lastStep / sessionOutcome values stay under the file's threshold on every tenant-day."""
    windows = con.execute(
        """
        SELECT tenant_id, session_date::VARCHAR, count(*) FILTER (WHERE unknown_last_step OR unknown_outcome), count(*)
        FROM marts.sessions GROUP BY ALL HAVING count(*) FILTER (WHERE unknown_last_step OR unknown_outcome) > 0
        """).fetchall()
    values = con.execute(
        """
        SELECT 'lastStep', last_step, count(*) FROM marts.sessions WHERE unknown_last_step GROUP BY ALL
        UNION ALL
        SELECT 'sessionOutcome', outcome, count(*) FROM marts.sessions WHERE unknown_outcome GROUP BY ALL
        """).fetchall()
    return vocabulary_verdict(windows, values, vocabulary)


def vocabulary_verdict(windows: list[tuple], values: list[tuple], vocabulary: Vocabulary) -> VocabularyVerdict:
    """windows: (tenant, day, sessions with an unknown value, sessions); values: (field, value, sessions)."""
    counts = {f"{field} {value[:60]!r}": n for field, value, n in sorted(values, key=lambda v: (-v[2], v[0], v[1]))}
    over = sorted(((unknown / total, tenant, day) for tenant, day, unknown, total in windows
                   if unknown / total > vocabulary.unknown_threshold), reverse=True)
    worst = max((unknown / total for *_, unknown, total in windows), default=0.0)
    if not over:
        return VocabularyVerdict(True, "every lastStep and sessionOutcome value is mapped, or too rare to matter "
                                       f"(worst tenant-day {worst:.2%}, threshold {vocabulary.unknown_threshold:.2%})",
                                 worst, counts)
    share, tenant, day = over[0]
    listed = "; ".join(f"{value} × {n:,}" for value, n in list(counts.items())[:20])
    return VocabularyVerdict(False, (
        f"{len(counts)} unknown vocabulary value(s) cover {share:.1%} of tenant {tenant}'s sessions on {day} "
        f"(threshold {vocabulary.unknown_threshold:.0%}; {len(over)} tenant-day(s) over it): {listed}. "
        f"Map them in the vocabulary file {vocabulary.source}, or point ST_VOCABULARY at one that does "
        "(python -m st_scheduling.vocabulary calibrate proposes one)."), worst, counts)


def funnel_not_monotone(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        """
        SELECT tenant_id, scheduler_id, grain, period_start::VARCHAR, milestone, sessions_reached, previous
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


def campaigns_under_several_names(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT tenant_id, campaign_id, count(DISTINCT campaign), string_agg(DISTINCT campaign, ' | ') "
        "FROM marts.campaign_attribution WHERE campaign_id IS NOT NULL GROUP BY ALL "
        "HAVING count(DISTINCT campaign) > 1 ORDER BY ALL LIMIT 20").fetchall()


def companies_with_several_defaults(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT tenant_id, company_name, count(*) FROM marts.schedulers WHERE is_default "
        "GROUP BY ALL HAVING count(*) > 1").fetchall()


def follow_ups_without_contact(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute(
        "SELECT count(*) FROM marts.customer_follow_ups WHERE coalesce(phone, '') = '' AND coalesce(email, '') = ''"
    ).fetchone()[0]
