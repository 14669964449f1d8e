"""Data-quality queries behind the asset checks. Each returns the offending rows (empty = passed)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from st_scheduling.vocabulary import Vocabulary
from st_scheduling.warehouse.raw_tables import RawTable


def duplicate_keys(con: duckdb.DuckDBPyConnection, table: RawTable) -> list[tuple]:
    key = ", ".join(table.key)
    return con.execute(
        f"SELECT {key}, count(*) FROM {table.qualified} GROUP BY ALL HAVING count(*) > 1 LIMIT 20"
    ).fetchall()


def missing_required(con: duckdb.DuckDBPyConnection, table: RawTable, required: tuple[str, ...]) -> list[tuple]:
    per_column = ", ".join(f"count(*) FILTER (WHERE {c} IS NULL)" for c in required)
    row = con.execute(f"SELECT {per_column} FROM {table.qualified}").fetchone()
    return [(column, n) for column, n in zip(required, row) if n]


def modified_before_created(con: duckdb.DuckDBPyConnection, table: RawTable) -> list[tuple]:
    return con.execute(
        f"SELECT tenant_id, id, created_on, modified_on FROM {table.qualified} WHERE modified_on < created_on "
        "ORDER BY ALL LIMIT 20"
    ).fetchall()


# A vocabulary value reads like an identifier (`ZipCodeEntered`, `zip-checked`, `Lead`). Anything else in lastStep
# or sessionOutcome may be a customer's details typed into the wrong field (a name, an email, a phone), and a check's
# description and metadata reach the event log and the alert webhook: such a value is described, never quoted.
_VOCABULARY_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
_DIGIT_RUN = re.compile(r"[0-9]{3}")  # part of a phone, house or card number, not of a step's name
_CHARACTER_KINDS = (
    ("letters", str.isalpha),
    ("digits", str.isdigit),
    ("spaces", str.isspace),
    ("'@'", "@".__eq__),
    ("other symbols", lambda c: not (c.isalnum() or c.isspace() or c == "@")),
)


def describe_value(value: str, first: tuple[int, str]) -> str:
    """An unknown vocabulary value as a check may report it: quoted when it reads like a vocabulary value, else
    its shape and `first`, the (tenant, session id) of the first session carrying it, where raw keeps it."""
    if _VOCABULARY_LIKE.fullmatch(value) and not _DIGIT_RUN.search(value):
        return repr(value)
    kinds = [name for name, is_kind in _CHARACTER_KINDS if any(is_kind(c) for c in value)]
    listed = ", ".join(kinds[:-1]) + " and " + kinds[-1] if len(kinds) > 1 else "".join(kinds)
    tenant, session = first
    return (
        f"a value of {len(value)} characters"
        + (f" with {listed}" if listed else "")
        + f" (first in tenant {tenant}'s session {session})"
    )


def unknown_vocabulary(
    con: duckdb.DuckDBPyConnection, table: RawTable, vocabulary: Vocabulary
) -> dict[str, dict[str, int]]:
    """lastStep and sessionOutcome values the vocabulary file does not map: column -> described value -> rows."""
    found = {}
    for column, known in (("last_step", vocabulary.steps), ("session_outcome", vocabulary.outcomes)):
        rows = con.execute(
            f"SELECT {column}, count(*), min((tenant_id, id)) FROM {table.qualified} "
            f"WHERE {column} IS NOT NULL GROUP BY ALL ORDER BY 2 DESC, 3"
        ).fetchall()
        if unknown := {describe_value(value, first): n for value, n, first in rows if value not in known}:
            found[column] = unknown
    return found


@dataclass(frozen=True)
class VocabularyVerdict:
    passed: bool
    message: str
    worst_share: float  # the largest share of one tenant-day's sessions with an unknown value
    unknown_values: dict[str, int]  # "lastStep 'X'" (or its shape, see `describe_value`) -> sessions


def unknown_vocabulary_in_sessions(con: duckdb.DuckDBPyConnection, vocabulary: Vocabulary) -> VocabularyVerdict:
    """Whether unknown lastStep / sessionOutcome values stay under the file's threshold on every tenant-day."""
    windows = con.execute(
        """
        SELECT tenant_id, session_date::VARCHAR, count(*) FILTER (WHERE unknown_last_step OR unknown_outcome), count(*)
        FROM marts.sessions GROUP BY ALL HAVING count(*) FILTER (WHERE unknown_last_step OR unknown_outcome) > 0
        """
    ).fetchall()
    # The mart keeps a placeholder for an unknown value (sessions.sql); the value itself is read back from raw, only
    # when there is one, to be described.
    values = (
        con.execute(
            """
        WITH unknown AS MATERIALIZED (
            SELECT s.tenant_id, s.session_id, s.unknown_last_step, s.unknown_outcome, l.last_step, l.session_outcome
            FROM marts.sessions AS s JOIN latest_sessions AS l ON l.tenant_id = s.tenant_id AND l.id = s.session_id
            WHERE s.unknown_last_step OR s.unknown_outcome)
        SELECT 'lastStep', last_step, count(*), min((tenant_id, session_id)) FROM unknown WHERE unknown_last_step
        GROUP BY ALL
        UNION ALL
        SELECT 'sessionOutcome', session_outcome, count(*), min((tenant_id, session_id)) FROM unknown
        WHERE unknown_outcome GROUP BY ALL
        """
        ).fetchall()
        if windows
        else []
    )
    return vocabulary_verdict(windows, values, vocabulary)


def vocabulary_verdict(windows: list[tuple], values: list[tuple], vocabulary: Vocabulary) -> VocabularyVerdict:
    """windows: (tenant, day, sessions with an unknown value, sessions); values: (field, value, sessions, (tenant,
    session id) of the first session with it)."""
    counts = {
        f"{field} {describe_value(value, first)}": n
        for field, value, n, first in sorted(values, key=lambda v: (-v[2], v[0], v[1]))
    }
    over = sorted(
        (
            (unknown / total, tenant, day)
            for tenant, day, unknown, total in windows
            if unknown / total > vocabulary.unknown_threshold
        ),
        reverse=True,
    )
    worst = max((unknown / total for *_, unknown, total in windows), default=0.0)
    if not over:
        return VocabularyVerdict(
            True,
            "every lastStep and sessionOutcome value is mapped, or too rare to matter "
            f"(worst tenant-day {worst:.2%}, threshold {vocabulary.unknown_threshold:.2%})",
            worst,
            counts,
        )
    share, tenant, day = over[0]
    listed = "; ".join(f"{value} × {n:,}" for value, n in list(counts.items())[:20])
    return VocabularyVerdict(
        False,
        (
            f"{len(counts)} unknown vocabulary value(s) cover {share:.1%} of tenant {tenant}'s sessions on {day} "
            f"(threshold {vocabulary.unknown_threshold:.0%}; {len(over)} tenant-day(s) over it): {listed}. "
            f"Map them in the vocabulary file {vocabulary.source}, or point ST_VOCABULARY at one that does "
            "(python -m st_scheduling.vocabulary calibrate proposes one)."
        ),
        worst,
        counts,
    )


def funnel_not_monotone(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        """
        SELECT tenant_id, scheduler_id, grain, period_start::VARCHAR, milestone, sessions_reached, previous
        FROM (SELECT *, lag(sessions_reached) OVER (
                  PARTITION BY tenant_id, scheduler_id, grain, period_start ORDER BY milestone_index) AS previous
              FROM marts.milestone_funnel)
        WHERE sessions_reached > previous ORDER BY ALL LIMIT 20
        """
    ).fetchall()


RATE_COLUMNS = {
    "milestone_funnel": ("step_conversion_rate", "drop_off_share"),
    "campaign_attribution": ("booked_per_opened", "booked_per_engaged"),
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
        "HAVING count(DISTINCT campaign) > 1 ORDER BY ALL LIMIT 20"
    ).fetchall()


# A campaign relaunched or duplicated keeps a few ids under one name; past this many, its ids split it into rows of
# a session or two each (the shape of a tenant sending an id per visit, which the catalogue identifies by name).
CAMPAIGN_IDS_PER_NAME_AT_MOST = 10


def names_over_many_campaign_ids(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Campaign names (compared as slugs) spanning more than CAMPAIGN_IDS_PER_NAME_AT_MOST campaign ids: (tenant,
    name, campaign ids, sessions, booked sessions), the widest first."""
    return con.execute(
        """
        SELECT tenant_id, min(campaign), count(DISTINCT campaign_id), sum(sessions), sum(booked_sessions)
        FROM marts.campaign_attribution WHERE attribution_model = 'session' AND campaign_id IS NOT NULL
        GROUP BY tenant_id, slug(campaign) HAVING count(DISTINCT campaign_id) > ?
        ORDER BY 3 DESC, 1, 2
        """,
        [CAMPAIGN_IDS_PER_NAME_AT_MOST],
    ).fetchall()


def companies_with_several_defaults(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT tenant_id, company_name, count(*) FROM marts.schedulers WHERE is_default "
        "GROUP BY ALL HAVING count(*) > 1"
    ).fetchall()


def follow_ups_without_contact(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute(
        "SELECT count(*) FROM marts.customer_follow_ups WHERE coalesce(phone, '') = '' AND coalesce(email, '') = ''"
    ).fetchone()[0]
