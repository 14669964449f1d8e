"""The broken-scheduler alarm: a scheduler whose sessions stop far below its own usual volume.

The rule, per scheduler, evaluated on the complete local hours before its tenant's latest session (so a
day not refreshed yet never looks like silence; a whole tenant going quiet is for the freshness policies):
- its baseline for an hour is the mean number of sessions it had in the same weekday and hour over the
  previous `BASELINE_WEEKS` weeks (only weeks it already existed in; at least `MIN_WEEKS` of them);
- for each trailing window of 1 to `MAX_WINDOW_HOURS` complete hours, expected = the sum of the baselines,
  seen = the sessions actually created;
- it fires when, for some window with expected >= `MIN_EXPECTED`, seeing so few is less likely than
  `P_VALUE` under a Poisson count with that mean.
Nights and weekends expect little, so they reach `MIN_EXPECTED` only over long windows and stay quiet; a
scheduler that usually has ~3 sessions an hour in its busy time fires after 5 or 6 silent busy hours (silenced
in the evening, by the next morning). On the simulator: quiet over normal weeks of 4 seeds and 6 schedulers
each; a silenced scheduler fires within those hours (st_scheduling_tests/test_alerts.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

BASELINE_WEEKS = 4
MIN_WEEKS = 2
MAX_WINDOW_HOURS = 24
MIN_EXPECTED = 12.0
P_VALUE = 1e-5

Hour = datetime  # the start of a local hour, naive, in ST_TIMEZONE


@dataclass(frozen=True)
class Alarm:
    tenant_id: int
    scheduler_id: str
    scheduler_name: str | None
    window_start: Hour
    window_end: Hour
    expected: float
    seen: int
    probability: float

    def describe(self) -> str:
        name = f"{self.scheduler_name} ({self.scheduler_id})" if self.scheduler_name else self.scheduler_id
        return (
            f"tenant {self.tenant_id}, scheduler {name}: {self.seen} session(s) from "
            f"{self.window_start:%Y-%m-%d %H:00} to {self.window_end:%Y-%m-%d %H:00} where about "
            f"{self.expected:.1f} are usual (chance {self.probability:.1e})"
        )


def poisson_at_most(seen: int, mean: float) -> float:
    """P(X <= seen) for X ~ Poisson(mean)."""
    term = total = math.exp(-mean)
    for k in range(1, seen + 1):
        term *= mean / k
        total += term
    return min(1.0, total)


def scheduler_alarm(
    counts: dict[Hour, int], first_hour: Hour, now: Hour
) -> tuple[Hour, Hour, float, int, float] | None:
    """(window start, end, expected, seen, probability) of the most telling silent window, or None.

    counts: sessions per local hour (hours without sessions absent); first_hour: the scheduler's first hour
    with data; now: the first hour not complete yet."""
    worst = None
    expected = 0.0
    seen = 0
    for back in range(1, MAX_WINDOW_HOURS + 1):
        hour = now - timedelta(hours=back)
        history = [hour - timedelta(weeks=w) for w in range(1, BASELINE_WEEKS + 1)]
        history = [h for h in history if h >= first_hour]
        if len(history) < MIN_WEEKS:
            return worst
        expected += sum(counts.get(h, 0) for h in history) / len(history)
        seen += counts.get(hour, 0)
        if expected >= MIN_EXPECTED:
            probability = poisson_at_most(seen, expected)
            if probability < P_VALUE and (worst is None or probability < worst[4]):
                worst = (hour, now, expected, seen, probability)
    return worst


def alarms(con: duckdb.DuckDBPyConnection, timezone: str) -> list[Alarm]:
    """Every scheduler that fires, judged on the scheduler sessions loaded."""
    rows = con.execute(
        """
        WITH local AS (
            SELECT tenant_id, listed_by_id AS scheduler_id, date_trunc('hour', timezone(?, created_on)) AS hour
            FROM raw.scheduler_sessions
        ),
        hourly AS (SELECT tenant_id, scheduler_id, hour, count(*) AS n FROM local GROUP BY ALL),
        tenants AS (SELECT tenant_id, max(hour) AS now FROM local GROUP BY ALL)
        SELECT h.tenant_id, h.scheduler_id, any_value(s.name), min(h.hour), any_value(t.now),
            list(struct_pack(hour := h.hour, n := h.n))
                FILTER (WHERE h.hour >= t.now - INTERVAL (? || ' hours') AND h.hour < t.now)
        FROM hourly AS h JOIN tenants AS t USING (tenant_id)
        LEFT JOIN raw.schedulers AS s ON s.tenant_id = h.tenant_id AND s.id = h.scheduler_id
        GROUP BY ALL ORDER BY ALL
        """,
        [timezone, BASELINE_WEEKS * 168 + MAX_WINDOW_HOURS],
    ).fetchall()
    found = []
    for tenant, scheduler, name, first_hour, now, hours in rows:
        counts = {entry["hour"]: entry["n"] for entry in hours or []}
        if hit := scheduler_alarm(counts, first_hour, now):
            found.append(Alarm(tenant, scheduler, name, *hit))
    return found
