"""Calibration: the vocabulary and definition switches that best reproduce ServiceTitan's /performance.

Inputs are what the platform already loaded: sessions per scheduler-day, grouped by `lastStep`, outcome,
bot flag, ids, whether anything happened to the session since it opened and whether it is the day's first with its
customer name; and `/performance` for the same scheduler-days. The fit is arithmetic on those counts:

- bots in milestones: counted if `opened` equals all sessions rather than the non-bot ones;
- order: zipcode before interacted if more scheduler-days reach zipcode than interacted;
- the open outcome: a value that sessions carry while nothing has happened to them yet (unchanged since they
  opened, no job, booking or lead) is `in_progress`, whatever count another class would reproduce: those sessions
  are still open, so calling them booked or abandoned would hide a definition the file cannot express. The fit
  says how far off each count it could move is instead;
- outcomes: each other value's daily counts, solved by least squares against the API's sent-to-booking,
  sent-to-lead and abandoned counts (a value that solves to 1 belongs to that class); values that no
  count pins down are booked when their sessions mostly carry a job or booking id, else in progress;
- steps: the sessions that did not book, per value, solved against the API's "left after milestone k"
  (milestone k minus milestone k+1); values that no count pins down are booked when their sessions mostly
  booked, else keep their current mapping;
- rates: the milestone whose API count makes booked ÷ it equal the API's rate;
- the counting switches (leads in abandoned, bots in jobs, bookings, sent-to counts and contacts, contacts as
  distinct names or sessions at the customer step): outcomes, steps and rates are fitted under every combination,
  and the one reproducing the most scheduler-day metrics wins, the file's own values on a tie.

The fit is judged on every metric the scorecard reproduces, and lists each scheduler-day it does not. It uses
`lastStep` alone, not the evidence rules; with every value mapped the two agree unless a session's fields prove
more than its `lastStep` says.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from dataclasses import dataclass

import duckdb
import numpy as np

from st_scheduling.vocabulary import ABANDONMENTS, MILESTONES, RATES, SWITCHES, Vocabulary
from st_scheduling.vocabulary.precision import rate_decimals, rate_tolerance

Day = tuple  # (tenant, scheduler, local day)

# The counts the scorecard reproduces, by its metric names, each with the raw.scheduler_performance column that
# holds ServiceTitan's; the two rates follow (RATES, by their vocabulary-file keys).
COUNTS = {
    "total_sessions": "total_sessions",
    **{milestone: f"milestone_{milestone}" for milestone in MILESTONES},
    "abandoned": "milestone_abandoned",
    "jobs_created": "total_jobs_created",
    "bookings_created": "total_bookings_created",
    "customer_contacts_captured": "total_customer_contacts_captured",
    "abandoned_sent_to_bookings": "total_abandoned_sessions_sent_to_bookings",
    "abandoned_sent_to_leads": "total_abandoned_sessions_sent_to_leads",
}
METRICS = (*COUNTS, *RATES)
# Switches fitted by trying each combination of their values: what each counts is told by the counts themselves.
COUNTING = ("leads_in_abandoned", "bots_in_totals", "contacts_captured")
CLOSED = ("booked", *sorted(ABANDONMENTS))  # the outcome classes of a session that has ended


@dataclass(frozen=True)
class SessionGroup:
    day: Day
    last_step: str | None
    outcome: str | None
    bot: bool
    has_job_or_booking: bool
    has_job: bool
    lead_only: bool  # a lead id and no job or booking: a lead whatever the outcome says
    untouched: bool  # unchanged since it opened, and no job, booking or lead: still open
    new_name: bool  # a person's session, the first of the scheduler-day with its customer name
    new_name_with_bots: bool  # the first of the scheduler-day with its customer name, bots' sessions counted
    sessions: int


@dataclass(frozen=True)
class ApiDay:
    day: Day
    counts: dict[str, float]  # COUNTS' names
    rates: dict[str, float]  # scheduler_completion_rate, opened_completion_rate


@dataclass(frozen=True)
class Difference:
    day: Day
    metric: str  # a name of METRICS
    ours: float
    api: float


@dataclass(frozen=True)
class Fit:
    vocabulary: Vocabulary
    days: int  # scheduler-days compared
    differences: tuple[Difference, ...]  # every scheduler-day metric these definitions do not reproduce
    notes: dict[str, str]  # value -> why its mapping is what it is, when no count decides it

    @property
    def reproduced(self) -> int:
        return self.days * len(METRICS) - len(self.differences)

    def exact(self) -> dict[str, tuple[int, int]]:
        """metric -> (scheduler-days equal to the API, scheduler-days)."""
        missed: dict[str, int] = defaultdict(int)
        for difference in self.differences:
            missed[difference.metric] += 1
        return {metric: (self.days - missed[metric], self.days) for metric in METRICS}

    def label(self, metric: str) -> str:
        """The scorecard's name of a metric; a rate's with the vocabulary-file key it is fitted to."""
        return f"{self.vocabulary.rate_metric(metric)} ({metric})" if metric in RATES else metric

    def report(self) -> str:
        width = max(map(len, map(self.label, METRICS))) + 2
        lines = [f"{'metric':<{width}} scheduler-days reproduced"]
        lines += [
            f"{self.label(metric):<{width}} {hit:>5} of {total}{'' if hit == total else '   <- differs'}"
            for metric, (hit, total) in self.exact().items()
        ]
        by_day = defaultdict(list)
        for difference in self.differences:
            by_day[difference.day].append(difference)
        if by_day:
            lines.append(
                f"{len(by_day)} scheduler-day(s) no definition of the vocabulary file reproduces "
                "(the sessions give, the API says):"
            )
        lines += [
            f"  tenant {tenant}, scheduler {scheduler}, {day}: "
            + ", ".join(f"{self.label(d.metric)} {d.ours:g} vs {d.api:g}" for d in found)
            for (tenant, scheduler, day), found in sorted(by_day.items(), key=lambda kv: tuple(map(str, kv[0])))
        ]
        lines += [f"note: {value}: {why}" for value, why in self.notes.items()]
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

    # Bots: does `opened` count every session, or the non-bot ones?
    opened, everyone, people = days.target("opened"), days.totals(groups), days.totals(humans)
    bots = (
        current.bots_in_milestones
        if (everyone == people).all()
        else bool(np.abs(opened - everyone).sum() < np.abs(opened - people).sum())
    )

    # Order: more scheduler-days reaching zipcode than interacted means zipcode comes first.
    ahead = np.sign(days.target("zipcode") - days.target("interacted")).sum()
    zipcode_first = current.zipcode_before_interacted if ahead == 0 else bool(ahead > 0)

    opens = _open_outcomes(groups)
    fits = [
        _fit(
            days,
            groups,
            dataclasses.replace(current, bots_in_milestones=bots, zipcode_before_interacted=zipcode_first, **counting),
            opens,
        )
        for counting in _countings(current)
    ]
    best = max(fits, key=lambda fit: fit.reproduced)  # the first of the best: the file's own values on a tie
    return dataclasses.replace(best, notes={**_open_notes(groups, api, best, opens), **best.notes})


def _open_outcomes(groups: list[SessionGroup]) -> frozenset[str]:
    """The sessionOutcome values of sessions still open: those nothing has happened to since they opened."""
    return frozenset(g.outcome for g in groups if g.untouched and g.outcome is not None)


def _countings(current: Vocabulary) -> list[dict]:
    """Every combination of the counting switches, the current file's first, then by how few of them change."""
    combinations = [dict(zip(COUNTING, values)) for values in itertools.product(*(SWITCHES[s] for s in COUNTING))]
    return sorted(combinations, key=lambda c: sum(value != getattr(current, s) for s, value in c.items()))


def _fit(days: _Days, groups: list[SessionGroup], switches: Vocabulary, opens: frozenset[str]) -> Fit:
    """The mapping and rates that best reproduce the API under the given switches (with the current mapping as the
    fallback for values no count pins down)."""
    notes: dict[str, str] = {}
    counted = groups if switches.bots_in_milestones else [g for g in groups if not g.bot]
    order = switches.milestones
    outcomes = _fit_outcomes(days, groups, switches, opens, notes)

    # Steps: the sessions that did not book, against how many left after each milestone.
    waiting = [g for g in counted if not _booked(g, outcomes) and g.last_step is not None]
    reached = np.stack([days.target(m) for m in order], axis=1)
    steps = {
        value: order[k]
        for value, k in days.solve(waiting, lambda g: g.last_step, reached[:, :-1] - reached[:, 1:]).items()
    }
    totals = _by(counted, lambda g: g.last_step)
    booked = _by([g for g in counted if _booked(g, outcomes)], lambda g: g.last_step)
    for value in sorted(v for v in _by(groups, lambda g: g.last_step) if v is not None):
        if booked.get(value, 0) > totals.get(value, 0) / 2 and steps.get(value, "details") == "details":
            steps[value] = "booked"  # left after details, or booked: only whether the session booked tells
        elif value not in steps:
            steps[value] = switches.steps.get(value, "opened")
            notes[f"lastStep {value!r}"] = f"no count pins it down; kept as {steps[value]!r}"

    # Rates: the milestone whose API count makes booked ÷ it equal the API's rate.
    rates = {}
    for rate in RATES:
        error = (
            {
                m: max(abs(_ratio(a.counts["booked"], a.counts[m]) - a.rates[rate]) for a in days.api)
                for m in MILESTONES[:-1]
            }
            if days.api
            else {}
        )
        keep = switches.rate_denominators[rate]
        rates[rate] = keep if not error or error[keep] == min(error.values()) else min(error, key=error.get)

    vocabulary = dataclasses.replace(
        switches, steps=steps, outcomes=outcomes, rate_denominators=rates, source="(calibrated)"
    )
    return Fit(vocabulary, len(days.api), differences(groups, days.api, vocabulary), notes)


def _fit_outcomes(
    days: _Days, groups: list[SessionGroup], switches: Vocabulary, opens: frozenset[str], notes: dict[str, str]
) -> dict[str, str]:
    """Each sessionOutcome value's class. Sessions that are leads by their lead id are taken out first, and the
    open values are never fitted."""

    def free(with_bots: bool) -> list[SessionGroup]:
        return [
            g
            for g in groups
            if (with_bots or not g.bot) and not g.lead_only and g.outcome is not None and g.outcome not in opens
        ]

    def leads(with_bots: bool) -> np.ndarray:
        return days.totals([g for g in groups if (with_bots or not g.bot) and g.lead_only])

    solved: dict[str, str] = dict.fromkeys(sorted(opens), "in_progress")
    in_totals, in_milestones = switches.bots_in_totals, switches.bots_in_milestones
    for kind, with_bots, goal in (
        ("sent_to_booking", in_totals, days.target("abandoned_sent_to_bookings")),
        ("sent_to_lead", in_totals, days.target("abandoned_sent_to_leads") - leads(in_totals)),
        # Any abandonment, sent on or not (those sent to leads only when the API counts them).
        (
            "abandoned",
            in_milestones,
            days.target("abandoned") - (leads(in_milestones) if switches.leads_in_abandoned else 0),
        ),
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
            notes[f"sessionOutcome {value!r}"] = (
                "no abandonment count takes it and its sessions mostly have no job or booking: in progress"
            )
    return solved


def _open_notes(groups: list[SessionGroup], api: list[ApiDay], fit: Fit, opens: frozenset[str]) -> dict[str, str]:
    """For each open value: how far off the counts it could move are, with it kept in progress."""
    ours = reproduce(groups, fit.vocabulary)
    notes = {}
    for value in sorted(opens):
        moved = set()
        for kind in CLOSED:
            theirs = reproduce(
                groups, dataclasses.replace(fit.vocabulary, outcomes={**fit.vocabulary.outcomes, value: kind})
            )
            moved |= {metric for day in ours for metric in METRICS if ours[day][metric] != theirs[day][metric]}
        off = defaultdict(list)
        for difference in fit.differences:
            if difference.metric in moved:
                off[difference.metric].append(abs(difference.ours - difference.api))
        fits = (
            "; ".join(
                f"{fit.label(metric)} is off on {len(gaps)} of {len(api)} scheduler-days, by {sum(gaps):g} in all"
                for metric, gaps in off.items()
            )
            or "every count it could move is reproduced"
        )
        notes[f"sessionOutcome {value!r}"] = (
            "kept in progress: sessions carry it while still open (nothing has "
            "happened to them since they opened), so no count decides its class; "
            f"with it open, {fits}"
        )
    return notes


def _kind(group: SessionGroup, outcomes: dict[str, str]) -> str | None:
    return "sent_to_lead" if group.lead_only else outcomes.get(group.outcome)


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
    """Every metric the scorecard reproduces, as these sessions give it under `vocabulary` (lastStep only)."""
    order = vocabulary.milestones
    out: dict[Day, dict[str, float]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    for g in groups:
        numbers = out[g.day]
        numbers["total_sessions"] += g.sessions
        kind, booked = _kind(g, vocabulary.outcomes), _booked(g, vocabulary.outcomes)
        step = vocabulary.steps.get(g.last_step, "opened")
        furthest = len(order) - 1 if booked else min(order.index(step), len(order) - 2)
        if not g.bot or vocabulary.bots_in_totals:
            numbers["jobs_created"] += g.sessions * (booked and g.has_job)
            numbers["bookings_created"] += g.sessions * (booked and not g.has_job)
            numbers["abandoned_sent_to_bookings"] += g.sessions * (kind == "sent_to_booking")
            numbers["abandoned_sent_to_leads"] += g.sessions * (kind == "sent_to_lead")
            numbers["customer_contacts_captured"] += g.sessions * (
                furthest >= order.index("customer")
                if vocabulary.contacts_captured == "customer_step"
                else g.new_name_with_bots
                if vocabulary.bots_in_totals
                else g.new_name
            )
        if not g.bot or vocabulary.bots_in_milestones:
            numbers["abandoned"] += g.sessions * (
                kind in ABANDONMENTS and (vocabulary.leads_in_abandoned or kind != "sent_to_lead")
            )
            for milestone in order[: furthest + 1]:
                numbers[milestone] += g.sessions
    for numbers in out.values():
        for rate in RATES:
            numbers[rate] = _ratio(numbers["booked"], numbers[vocabulary.rate_denominators[rate]])
    return out


def differences(groups: list[SessionGroup], api: list[ApiDay], vocabulary: Vocabulary) -> tuple[Difference, ...]:
    """Each scheduler-day metric whose reproduction differs from the API: counts exactly, rates beyond the API's
    rounding."""
    ours = reproduce(groups, vocabulary)
    tolerance = rate_tolerance(rate_decimals(r for a in api for r in a.rates.values()))
    found = []
    for a in api:
        mine = ours.get(a.day) or {**dict.fromkeys(COUNTS, 0), **dict.fromkeys(RATES, 0.0)}
        for metric in METRICS:
            theirs = a.rates[metric] if metric in RATES else a.counts[metric]
            if abs(mine[metric] - theirs) > (tolerance if metric in RATES else 0):
                found.append(Difference(a.day, metric, mine[metric], theirs))
    return tuple(found)


def read_loaded(con: duckdb.DuckDBPyConnection, timezone: str) -> tuple[list[SessionGroup], list[ApiDay]]:
    """Session groups and /performance per scheduler-day, from the raw tables a run already loaded."""
    groups = [
        SessionGroup((tenant, scheduler, day), *fields)
        for tenant, scheduler, day, *fields in con.execute(
            """
        WITH latest AS (
            SELECT *, CAST(timezone(?, created_on) AS DATE)::VARCHAR AS day, coalesce(customer_is_bot, false) AS bot,
                -- the customer's name as marts/sessions reads it (contact_name)
                lower(concat_ws(' ', nullif(trim(customer_first_name), ''), nullif(trim(customer_last_name), '')))
                    AS name
            FROM raw.scheduler_sessions
            QUALIFY row_number() OVER (PARTITION BY tenant_id, id ORDER BY modified_on DESC) = 1
        ),
        named AS (
            SELECT *,
                name <> '' AND NOT bot AND row_number() OVER (
                    PARTITION BY tenant_id, listed_by_id, day, name, bot ORDER BY created_on, id) = 1 AS new_name,
                name <> '' AND row_number() OVER (
                    PARTITION BY tenant_id, listed_by_id, day, name ORDER BY created_on, id) = 1 AS new_name_with_bots
            FROM latest
        )
        SELECT tenant_id, listed_by_id, day, last_step, session_outcome, bot,
            job_id IS NOT NULL OR booking_id IS NOT NULL, job_id IS NOT NULL,
            lead_id IS NOT NULL AND job_id IS NULL AND booking_id IS NULL,
            modified_on = created_on AND job_id IS NULL AND booking_id IS NULL AND lead_id IS NULL,
            new_name, new_name_with_bots, count(*)
        FROM named GROUP BY ALL
        """,
            [timezone],
        ).fetchall()
    ]
    api = []
    for tenant, scheduler, day, *numbers in con.execute(
        f"""
        SELECT tenant_id, id, CAST(timezone(?, window_start) AS DATE)::VARCHAR, {", ".join(COUNTS.values())},
            {", ".join(RATES)}
        FROM raw.scheduler_performance ORDER BY ALL
        """,
        [timezone],
    ).fetchall():
        api.append(
            ApiDay(
                (tenant, scheduler, day),
                {n: float(v or 0) for n, v in zip(COUNTS, numbers)},
                {r: float(v or 0) for r, v in zip(RATES, numbers[len(COUNTS) :])},
            )
        )
    return groups, api
