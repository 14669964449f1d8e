"""Calibration: the vocabulary and definition switches that best reproduce ServiceTitan's /performance.

Inputs are what the platform already loaded: sessions per scheduler-day, grouped by `lastStep`, outcome,
bot flag and ids; and `/performance` for the same scheduler-days. The fit is arithmetic on those counts:

- bots: counted in milestones if `opened` equals all sessions rather than the non-bot ones;
- order: zipcode before interacted if more scheduler-days reach zipcode than interacted;
- outcomes: each value's daily counts, solved by least squares against the API's sent-to-booking,
  sent-to-lead and abandoned counts (a value that solves to 1 belongs to that class); values that no
  count pins down are booked when their sessions mostly carry a job or booking id, else in progress;
- steps: the sessions that did not book, per value, solved against the API's "left after milestone k"
  (milestone k minus milestone k+1); values that no count pins down are booked when their sessions mostly
  booked, else keep their current mapping;
- rates: the milestone whose API count makes booked ÷ it equal the API's rate.

The fit uses `lastStep` alone, not the evidence rules; with every value mapped the two agree unless a
session's fields prove more than its `lastStep` says.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import duckdb
import numpy as np

from st_scheduling.vocabulary import ABANDONMENTS, MILESTONES, RATES, Vocabulary
from st_scheduling.vocabulary.precision import rate_decimals, rate_tolerance

Day = tuple  # (tenant, scheduler, local day)


@dataclass(frozen=True)
class SessionGroup:
    day: Day
    last_step: str | None
    outcome: str | None
    bot: bool
    has_job_or_booking: bool
    lead_only: bool  # a lead id and no job or booking: a lead whatever the outcome says
    sessions: int


@dataclass(frozen=True)
class ApiDay:
    day: Day
    counts: dict[str, float]  # milestone names, abandoned, sent_to_bookings, sent_to_leads, total_sessions
    rates: dict[str, float]  # scheduler_completion_rate, opened_completion_rate


@dataclass(frozen=True)
class Fit:
    vocabulary: Vocabulary
    exact: dict[str, tuple[int, int]]  # metric -> (scheduler-days equal to the API, scheduler-days)
    unpinned: dict[str, str]  # value -> why its mapping is a guess

    def report(self) -> str:
        lines = [f"{'metric':<28} scheduler-days reproduced"]
        lines += [f"{metric:<28} {hit:>5} of {total}{'' if hit == total else '   <- differs'}"
                  for metric, (hit, total) in self.exact.items()]
        lines += [f"note: {value}: {why}" for value, why in self.unpinned.items()]
        return "\n".join(lines)


class _Days:
    """Sessions and API numbers as (scheduler-day × value) matrices, for least squares."""

    def __init__(self, api: list[ApiDay]):
        self.api = api
        self.index = {a.day: i for i, a in enumerate(api)}

    def totals(self, groups: list[SessionGroup]) -> np.ndarray:
        out = np.zeros(len(self.api))
        for g in groups:
            out[self.index[g.day]] += g.sessions
        return out

    def matrix(self, groups: list[SessionGroup], key) -> tuple[list, np.ndarray]:
        values = sorted({key(g) for g in groups}, key=str)
        position = {v: j for j, v in enumerate(values)}
        out = np.zeros((len(self.api), len(values)))
        for g in groups:
            out[self.index[g.day], position[key(g)]] += g.sessions
        return values, out

    def target(self, name: str) -> np.ndarray:
        return np.array([a.counts[name] for a in self.api], dtype=float)

    def solve(self, groups: list[SessionGroup], key, goals: np.ndarray) -> dict:
        """value -> the column of `goals` its counts solve to (weight above one half), by least squares."""
        values, matrix = self.matrix(groups, key)
        if not values:
            return {}
        solution = np.linalg.lstsq(matrix, goals.reshape(len(self.api), -1), rcond=None)[0]
        return {value: int(np.argmax(row)) for value, row in zip(values, solution) if row.max() > 0.5}


def calibrate(groups: list[SessionGroup], api: list[ApiDay], current: Vocabulary) -> Fit:
    days = _Days(api)
    groups = [g for g in groups if g.day in days.index]
    humans = [g for g in groups if not g.bot]
    unpinned: dict[str, str] = {}

    # Bots: does `opened` count every session, or the non-bot ones?
    opened, everyone, people = days.target("opened"), days.totals(groups), days.totals(humans)
    bots = current.bots_in_milestones if (everyone == people).all() else \
        bool(np.abs(opened - everyone).sum() < np.abs(opened - people).sum())
    counted = groups if bots else humans

    # Order: more scheduler-days reaching zipcode than interacted means zipcode comes first.
    ahead = np.sign(days.target("zipcode") - days.target("interacted")).sum()
    zipcode_first = current.zipcode_before_interacted if ahead == 0 else bool(ahead > 0)
    order = MILESTONES if zipcode_first else ("opened", "interacted", "zipcode", *MILESTONES[3:])

    outcomes = _fit_outcomes(days, groups, bots, unpinned)

    # Steps: the sessions that did not book, against how many left after each milestone.
    waiting = [g for g in counted if not _booked(g, outcomes) and g.last_step is not None]
    reached = np.stack([days.target(m) for m in order], axis=1)
    steps = {value: order[k] for value, k in
             days.solve(waiting, lambda g: g.last_step, reached[:, :-1] - reached[:, 1:]).items()}
    totals = _by(counted, lambda g: g.last_step)
    booked = _by([g for g in counted if _booked(g, outcomes)], lambda g: g.last_step)
    for value in sorted(v for v in _by(groups, lambda g: g.last_step) if v is not None):
        if booked.get(value, 0) > totals.get(value, 0) / 2 and steps.get(value, "details") == "details":
            steps[value] = "booked"  # left after details, or booked: only whether the session booked tells
        elif value not in steps:
            steps[value] = current.steps.get(value, "opened")
            unpinned[f"lastStep {value!r}"] = f"no count pins it down; kept as {steps[value]!r}"

    # Rates: the milestone whose API count makes booked ÷ it equal the API's rate.
    rates = {}
    for rate in RATES:
        error = {m: max(abs(_ratio(a.counts["booked"], a.counts[m]) - a.rates[rate]) for a in api)
                 for m in MILESTONES[:-1]} if api else {}
        keep = current.rate_denominators[rate]
        rates[rate] = keep if not error or error[keep] == min(error.values()) else min(error, key=error.get)

    vocabulary = Vocabulary(steps, outcomes, bots_in_milestones=bots, zipcode_before_interacted=zipcode_first,
                            rate_denominators=rates, unknown_threshold=current.unknown_threshold,
                            source="(calibrated)")
    return Fit(vocabulary, _exactness(groups, api, vocabulary), unpinned)


def _fit_outcomes(days: _Days, groups: list[SessionGroup], bots: bool, unpinned: dict[str, str]) -> dict[str, str]:
    """Each sessionOutcome value's class. Sessions that are leads by their lead id are taken out first."""
    def free(with_bots: bool) -> list[SessionGroup]:
        return [g for g in groups if (with_bots or not g.bot) and not g.lead_only and g.outcome is not None]

    def leads(with_bots: bool) -> np.ndarray:
        return days.totals([g for g in groups if (with_bots or not g.bot) and g.lead_only])

    solved: dict[str, str] = {}
    for kind, with_bots, goal in (
        ("sent_to_booking", False, days.target("sent_to_bookings")),
        ("sent_to_lead", False, days.target("sent_to_leads") - leads(False)),
        ("abandoned", bots, days.target("abandoned") - leads(bots)),  # any abandonment, sent on or not
    ):
        for value in days.solve(free(with_bots), lambda g: g.outcome, goal):
            solved.setdefault(value, kind)
    totals = _by(groups, lambda g: g.outcome)
    with_ids = _by([g for g in groups if g.has_job_or_booking], lambda g: g.outcome)
    lead_ids = _by([g for g in groups if g.lead_only], lambda g: g.outcome)
    for value in sorted(v for v in totals if v is not None and v not in solved):
        if lead_ids.get(value, 0) > totals[value] / 2:
            solved[value] = "sent_to_lead"
        elif with_ids.get(value, 0) > totals[value] / 2:
            solved[value] = "booked"
        else:
            solved[value] = "in_progress"
            unpinned[f"sessionOutcome {value!r}"] = "no abandonment count takes it and its sessions mostly " \
                                                    "have no job or booking: in progress"
    return solved


def _booked(group: SessionGroup, outcomes: dict[str, str]) -> bool:
    return group.has_job_or_booking and outcomes.get(group.outcome) not in ABANDONMENTS and not group.lead_only


def _by(groups: list[SessionGroup], key) -> dict:
    totals: dict = defaultdict(int)
    for g in groups:
        totals[key(g)] += g.sessions
    return dict(totals)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def reproduce(groups: list[SessionGroup], vocabulary: Vocabulary) -> dict[Day, dict[str, float]]:
    """The /performance counts and rates these sessions give under `vocabulary` (lastStep only)."""
    order = vocabulary.milestones
    out: dict[Day, dict[str, float]] = defaultdict(lambda: dict.fromkeys(
        (*MILESTONES, "abandoned", "sent_to_bookings", "sent_to_leads", "total_sessions"), 0))
    for g in groups:
        numbers = out[g.day]
        numbers["total_sessions"] += g.sessions
        kind = "sent_to_lead" if g.lead_only else vocabulary.outcomes.get(g.outcome)
        if not g.bot:
            numbers["sent_to_bookings"] += g.sessions * (kind == "sent_to_booking")
            numbers["sent_to_leads"] += g.sessions * (kind == "sent_to_lead")
        if g.bot and not vocabulary.bots_in_milestones:
            continue
        numbers["abandoned"] += g.sessions * (kind in ABANDONMENTS)
        step = vocabulary.steps.get(g.last_step, "opened")
        furthest = len(order) - 1 if _booked(g, vocabulary.outcomes) else min(order.index(step), len(order) - 2)
        for milestone in order[:furthest + 1]:
            numbers[milestone] += g.sessions
    for numbers in out.values():
        for rate in RATES:
            numbers[rate] = _ratio(numbers["booked"], numbers[vocabulary.rate_denominators[rate]])
    return out


def _exactness(groups: list[SessionGroup], api: list[ApiDay], vocabulary: Vocabulary) -> dict[str, tuple[int, int]]:
    ours = reproduce(groups, vocabulary)
    tolerance = rate_tolerance(rate_decimals(r for a in api for r in a.rates.values()))
    exact: dict[str, tuple[int, int]] = {}
    for metric in (*MILESTONES, "abandoned", "sent_to_bookings", "sent_to_leads", *RATES):
        hits = 0
        for a in api:
            mine = ours.get(a.day, {}).get(metric, 0)
            theirs = a.rates[metric] if metric in RATES else a.counts[metric]
            hits += abs(mine - theirs) <= (tolerance if metric in RATES else 0)
        exact[metric] = (hits, len(api))
    return exact


def read_loaded(con: duckdb.DuckDBPyConnection, timezone: str) -> tuple[list[SessionGroup], list[ApiDay]]:
    """Session groups and /performance per scheduler-day, from the raw tables a run already loaded."""
    groups = [SessionGroup((tenant, scheduler, day), step, outcome, bot, ids, lead, n) for
              tenant, scheduler, day, step, outcome, bot, ids, lead, n in con.execute(
        """
        WITH latest AS (
            SELECT * FROM raw.scheduler_sessions
            QUALIFY row_number() OVER (PARTITION BY tenant_id, id ORDER BY modified_on DESC) = 1
        )
        SELECT tenant_id, listed_by_id, CAST(timezone(?, created_on) AS DATE)::VARCHAR, last_step, session_outcome,
            coalesce(customer_is_bot, false), job_id IS NOT NULL OR booking_id IS NOT NULL,
            lead_id IS NOT NULL AND job_id IS NULL AND booking_id IS NULL, count(*)
        FROM latest GROUP BY ALL
        """, [timezone]).fetchall()]
    counts = [f"milestone_{m}" for m in (*MILESTONES, "abandoned")]
    api = []
    for tenant, scheduler, day, *numbers in con.execute(
        f"""
        SELECT tenant_id, id, CAST(timezone(?, window_start) AS DATE)::VARCHAR, {', '.join(counts)},
            total_abandoned_sessions_sent_to_bookings, total_abandoned_sessions_sent_to_leads, total_sessions,
            {', '.join(RATES)}
        FROM raw.scheduler_performance ORDER BY ALL
        """, [timezone]).fetchall():
        names = (*MILESTONES, "abandoned", "sent_to_bookings", "sent_to_leads", "total_sessions")
        api.append(ApiDay((tenant, scheduler, day), {n: float(v or 0) for n, v in zip(names, numbers)},
                          {r: float(v or 0) for r, v in zip(RATES, numbers[len(names):])}))
    return groups, api
