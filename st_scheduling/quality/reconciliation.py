"""Reconciliation with ServiceTitan's own /performance numbers, at the precision the API uses.

Counts must be equal. Rates must agree within the rounding the API applies, read from its own values
(an API that rounds to 4 decimals is compared within 0.00005). A gap that one definition switch of the
vocabulary file would close is named as such, so a definition difference is not mistaken for lost data.
"""

from __future__ import annotations

import dataclasses

import duckdb

from st_scheduling import transform
from st_scheduling.transform import catalogue
from st_scheduling.vocabulary import MILESTONES, RATES, SWITCHES, Vocabulary, switch_line
from st_scheduling.vocabulary.precision import rate_decimals


def api_rate_decimals(con: duckdb.DuckDBPyConnection) -> int | None:
    values = con.execute(
        "SELECT api_value FROM marts.scheduler_scorecard WHERE api_metric LIKE '%Rate' AND NOT api_only"
    ).fetchall()
    return rate_decimals(v for (v,) in values)


def mismatches(
    con: duckdb.DuckDBPyConnection, tolerance: float, model: str = "marts.scheduler_scorecard"
) -> list[tuple]:
    """(tenant, scheduler, day, metric, computed, api) where sessions and /performance disagree, the metric by
    ServiceTitan's name (a rate's own name moves with its denominator), on the days the API was read after they
    ended (a day still in progress moves between reading /performance and the
    sessions; the next read, after it ends, reconciles it)."""
    return con.execute(
        f"""
        SELECT tenant_id, scheduler_id, day::VARCHAR, api_metric, computed_value, api_value
        FROM {model} AS s
        WHERE NOT api_only AND abs(difference) > CASE WHEN api_metric LIKE '%Rate' THEN ? ELSE 0 END
            AND NOT EXISTS (SELECT 1 FROM raw.scheduler_performance AS p
                            WHERE p.tenant_id = s.tenant_id AND p.id = s.scheduler_id AND p.ingested_at < p.window_end
                                AND CAST(timezone(getvariable('st_timezone'), p.window_start) AS DATE) = s.day)
        ORDER BY day, scheduler_id, api_metric
        """,
        [tolerance],
    ).fetchall()


def alternatives(vocabulary: Vocabulary, rates_differ: bool) -> dict[str, Vocabulary]:
    """Each definition switch set to each of its other values, named as the line to write in the vocabulary file."""
    flipped = {
        switch_line(name, value): dataclasses.replace(vocabulary, **{name: value})
        for name, values in SWITCHES.items()
        for value in values
        if value != getattr(vocabulary, name)
    }
    if rates_differ:
        for rate in RATES:
            for milestone in MILESTONES[:-1]:
                if milestone != vocabulary.rate_denominators[rate]:
                    flipped[switch_line(rate, milestone)] = dataclasses.replace(
                        vocabulary, rate_denominators={**vocabulary.rate_denominators, rate: milestone}
                    )
    return flipped


def definition_gaps(
    con: duckdb.DuckDBPyConnection, vocabulary: Vocabulary, found: list[tuple], tolerance: float
) -> dict[str, dict]:
    """For each switch that would close some of the `found` mismatches: how many, and of which metrics.

    Re-runs the scorecard model with the switch flipped (on this connection only; the mart is untouched).
    """
    if not found:
        return {}
    wrong = {(t, s, d, m) for t, s, d, m, *_ in found}
    rates_differ = any(m.endswith("Rate") for *_, m in wrong)
    gaps = {}
    try:
        for line, alternative in alternatives(vocabulary, rates_differ).items():
            transform.set_switches(con, alternative)
            con.execute(f"CREATE OR REPLACE TEMP TABLE scorecard_alternative AS {catalogue.SCHEDULER_SCORECARD.sql()}")
            still = {(t, s, d, m) for t, s, d, m, *_ in mismatches(con, tolerance, "scorecard_alternative")}
            closed = wrong - still
            if closed:
                gaps[line] = {
                    "closes": len(closed),
                    "of": len(wrong),
                    "new_mismatches": len(still - wrong),
                    "metrics": sorted({m for *_, m in closed}),
                }
    finally:
        transform.set_switches(con, vocabulary)
        con.execute("DROP TABLE IF EXISTS scorecard_alternative")
    return gaps


def summary(found: list[tuple], gaps: dict[str, dict], vocabulary: Vocabulary) -> str:
    if not found:
        return "every reproduced metric equals /performance for every scheduler and day"
    by_metric: dict[str, int] = {}
    for *_, metric, _, _ in found:
        by_metric[metric] = by_metric.get(metric, 0) + 1
    tenant, scheduler, day, metric, computed, api = found[0]
    text = (
        f"{len(found)} scheduler-day metric(s) differ from /performance ("
        + ", ".join(f"{m} × {n}" for m, n in sorted(by_metric.items(), key=lambda kv: -kv[1]))
        + (
            f"). First: tenant {tenant}, scheduler {scheduler}, {day}, {metric}: the sessions give {computed:g}, "
            f"the API {api:g}."
        )
    )
    closing = [(line, gap) for line, gap in gaps.items() if gap["new_mismatches"] == 0]
    for line, gap in sorted(closing, key=lambda lg: -lg[1]["closes"]):
        text += (
            f" A definition difference, not lost data: `{line}` in {vocabulary.source} would close "
            f"{gap['closes']} of them ({', '.join(gap['metrics'])})."
        )
    return text
