"""The `/performance` endpoints, computed from the same sessions the session endpoints serve.

Definitions (DESIGN §7), as the world says: bots are left out of every milestone, rate and count except
`totalSessions` (the alt world counts them in milestones and the rates built on them, and in jobs, bookings,
sent-to counts and contacts); a session reaches every milestone up to its `lastStep`, in the world's order;
booked means a job or booking created by a session whose outcome is not an abandonment; a booked session with a
`jobId` is a job, one without is a booking; abandoned counts the abandonments (those sent to leads only where the
world says so); each rate is booked ÷ the milestone the world names (0 when there is nothing to divide by),
rounded as the world rounds; contacts captured are distinct non-empty customer names (in the alt world, the
sessions that reached the customer step).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from st_scheduling.simulator import vocabulary as v
from st_scheduling.simulator.model import Scheduler, SessionPlan


def milestone_reached(world: v.World, record: dict) -> int:
    """The position, in the world's order, of the furthest milestone the record's lastStep says."""
    step = record["lastStep"]
    return world.steps.index(step) if step in world.steps else world.at("opened")


def is_booked(world: v.World, record: dict) -> bool:
    return record["sessionOutcome"] not in world.abandonments and (
        record["jobId"] is not None or record["bookingId"] is not None
    )


def _rate(world: v.World, numerator: int, denominator: int) -> float:
    rate = numerator / denominator if denominator else 0.0
    return rate if world.rate_decimals is None else round(rate, world.rate_decimals)


def contact_name(record: dict) -> str:
    customer = record["customer"]
    return " ".join(p.strip() for p in (customer["firstName"] or "", customer["lastName"] or "") if p.strip()).lower()


def scheduler_performance(
    world: v.World, scheduler: Scheduler, sessions: Iterable[tuple[SessionPlan, dict]], now: int
) -> dict:
    milestones = [0] * len(world.milestones)
    counts: Counter = Counter()
    names: set[str] = set()
    booked_at, details_at = world.at("booked"), world.at("details")
    for plan, record in sessions:
        counts["sessions"] += 1
        bot = record["customer"]["isBot"]
        booked = is_booked(world, record)
        reached = booked_at if booked else min(milestone_reached(world, record), details_at)
        outcome = record["sessionOutcome"]
        if not bot or world.bots_in_milestones:
            for i in range(reached + 1):
                milestones[i] += 1
            counts["abandoned"] += outcome in world.abandonments and (
                world.leads_in_abandoned or outcome != world.to_lead
            )
        if not bot or world.bots_in_totals:
            counts["jobs"] += booked and record["jobId"] is not None
            counts["bookings"] += booked and record["jobId"] is None
            counts["sent_to_bookings"] += outcome == world.to_booking
            counts["sent_to_leads"] += outcome == world.to_lead
            counts["customer_step"] += reached >= world.at("customer")
            if name := contact_name(record):
                names.add(name)
        if bot:
            continue
        counts["membership_interest"] += record["membershipInterest"] == "Interested"
        if (rec := plan.recovery) is not None and rec.sms_at <= now:
            counts[f"sms_{rec.kind}"] += 1
            if rec.recovered_at is not None and rec.recovered_at <= now:
                counts[f"{'jobs' if rec.as_job else 'bookings'}_recovered_{rec.kind}"] += 1
    booked_count = milestones[booked_at]
    return {
        "id": scheduler.id,
        "schedulerName": scheduler.name,
        "brandName": scheduler.company_name,
        "schedulerCompletionRate": _rate(world, booked_count, milestones[world.at(world.scheduler_rate_of)]),
        "openedCompletionRate": _rate(world, booked_count, milestones[world.at(world.opened_rate_of)]),
        "totalCustomerContactsCaptured": counts["customer_step"] if world.contacts == "customer_step" else len(names),
        "totalJobsCreated": counts["jobs"],
        "totalBookingsCreated": counts["bookings"],
        "totalAbandonedSessionsSentToBookings": counts["sent_to_bookings"],
        "totalAbandonedSessionsSentToLeads": counts["sent_to_leads"],
        "totalBookingsRecoveredFromAbandonedSessionsRecoveryLink": counts["bookings_recovered_link"],
        "totalJobsRecoveredFromAbandonedSessionsRecoveryLink": counts["jobs_recovered_link"],
        "totalBookingsRecoveredFromAbandonedSessionsAiAgent": counts["bookings_recovered_ai_agent"],
        "totalJobsRecoveredFromAbandonedSessionsAiAgent": counts["jobs_recovered_ai_agent"],
        "totalSmsSentToRecoverAbandonedSessionRecoveryLink": counts["sms_link"],
        "totalSmsSentToRecoverAbandonedSessionAiAgent": counts["sms_ai_agent"],
        "totalBookingsRecoveredFromAbandonedSessions": counts["bookings_recovered_link"]
        + counts["bookings_recovered_ai_agent"],
        "totalJobsRecoveredFromAbandonedSessions": counts["jobs_recovered_link"] + counts["jobs_recovered_ai_agent"],
        "totalMembershipInterest": counts["membership_interest"],
        "totalSessions": counts["sessions"],
        "milestoneFrequencyCount": {
            **{name: milestones[i] for i, name in enumerate(world.milestones)},
            "abandoned": counts["abandoned"],
        },
    }


def router_performance(world: v.World, router_id: str, sessions: Iterable[tuple[SessionPlan, dict]]) -> dict:
    opened = interacted = 0
    by_scheduler: Counter = Counter()
    for _, record in sessions:
        if record["customer"]["isBot"]:
            continue
        opened += 1
        interacted += milestone_reached(world, record) >= world.at("interacted") or is_booked(world, record)
        by_scheduler[record["schedulerId"]] += 1
    return {
        "id": router_id,
        "openedCount": opened,
        "interactedCount": interacted,
        "sessionCountBySchedulerId": [
            {"schedulerId": scheduler_id, "openedCount": count}
            for scheduler_id, count in sorted(by_scheduler.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))
        ],
    }
