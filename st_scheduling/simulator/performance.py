"""The `/performance` endpoints, computed from the same sessions the session endpoints serve.

Definitions (DESIGN §7): bots are left out of every milestone, rate and count except `totalSessions`; a
session reaches every milestone up to its `lastStep`; booked means a job or booking created by a session
whose outcome is not an abandonment; a booked session with a `jobId` is a job, one without is a booking;
rates are booked ÷ interacted (scheduler completion) and booked ÷ opened (opened completion), 0 when
there is nothing to divide by; contacts captured are distinct non-empty customer names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from st_scheduling.simulator import vocabulary as v
from st_scheduling.simulator.model import Scheduler, SessionPlan

STEP_INDEX = {step: i for i, step in enumerate(v.STEPS)}


def milestone_reached(record: dict) -> int:
    return STEP_INDEX.get(record["lastStep"], v.OPENED)


def is_booked(record: dict) -> bool:
    return record["sessionOutcome"] not in v.ABANDONED_OUTCOMES and (
        record["jobId"] is not None or record["bookingId"] is not None
    )


def contact_name(record: dict) -> str:
    customer = record["customer"]
    return " ".join(p.strip() for p in (customer["firstName"] or "", customer["lastName"] or "") if p.strip()).lower()


def scheduler_performance(scheduler: Scheduler, sessions: Iterable[tuple[SessionPlan, dict]], now: int) -> dict:
    milestones = [0] * len(v.MILESTONES)
    counts: Counter = Counter()
    names: set[str] = set()
    for plan, record in sessions:
        counts["sessions"] += 1
        if record["customer"]["isBot"]:
            continue
        booked = is_booked(record)
        reached = v.BOOKED if booked else min(milestone_reached(record), v.DETAILS)
        for i in range(reached + 1):
            milestones[i] += 1
        outcome = record["sessionOutcome"]
        counts["abandoned"] += outcome in v.ABANDONED_OUTCOMES
        counts["jobs"] += booked and record["jobId"] is not None
        counts["bookings"] += booked and record["jobId"] is None
        counts["sent_to_bookings"] += outcome == v.OUTCOME_ABANDONED_TO_BOOKING
        counts["sent_to_leads"] += outcome == v.OUTCOME_ABANDONED_TO_LEAD
        counts["membership_interest"] += record["membershipInterest"] == "Interested"
        if name := contact_name(record):
            names.add(name)
        if (rec := plan.recovery) is not None and rec.sms_at <= now:
            counts[f"sms_{rec.kind}"] += 1
            if rec.recovered_at is not None and rec.recovered_at <= now:
                counts[f"{'jobs' if rec.as_job else 'bookings'}_recovered_{rec.kind}"] += 1
    opened, interacted, booked_count = milestones[v.OPENED], milestones[v.INTERACTED], milestones[v.BOOKED]
    return {
        "id": scheduler.id,
        "schedulerName": scheduler.name,
        "brandName": scheduler.company_name,
        "schedulerCompletionRate": booked_count / interacted if interacted else 0.0,
        "openedCompletionRate": booked_count / opened if opened else 0.0,
        "totalCustomerContactsCaptured": len(names),
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
            **{name: milestones[i] for i, name in enumerate(v.MILESTONES)},
            "abandoned": counts["abandoned"],
        },
    }


def router_performance(router_id: str, sessions: Iterable[tuple[SessionPlan, dict]]) -> dict:
    opened = interacted = 0
    by_scheduler: Counter = Counter()
    for _, record in sessions:
        if record["customer"]["isBot"]:
            continue
        opened += 1
        interacted += milestone_reached(record) >= v.INTERACTED or is_booked(record)
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
