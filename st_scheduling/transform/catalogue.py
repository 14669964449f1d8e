"""The catalogue of marts: one SQL model per table in `sql/`, documented column by column.

Each model is one query; rebuilt in full it is a single `CREATE OR REPLACE TABLE marts.<name> AS <model>`, and
built incrementally (`build.py`) a delete and an insert, each in the caller's transaction, so readers see the old
table or the new one, never half of one. Models read the raw tables and marts through views naming what is being
built (`latest_sessions_in_scope`, `router_sessions_in_scope`, `sessions_in_scope`), the campaign catalogue, and
the vocabulary file (`st_scheduling.vocabulary`): its maps as temporary tables `vocab_*`, its switches as
variables `st_*`, and `milestone_position(name)` for a milestone's place in its order (`session.py`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from st_scheduling.transform import scopes, templates
from st_scheduling.transform.scopes import EACH_CUSTOMER, EACH_SCHEDULER, Periods

SESSIONS_RAW = ("raw/scheduler_sessions", "raw/router_sessions")
# Marts per scheduler read the sessions, and the scheduler inventory for names beside the ids.
SESSIONS_AND_SCHEDULER_NAMES = ("marts/sessions", "raw/schedulers")
# The raw session tables as the sessions model reads them: whole for a full build, else the changed sessions' rows.
RAW_SESSIONS_IN_SCOPE = {
    "scheduler_sessions_in_scope": "raw.scheduler_sessions",
    "router_sessions_in_scope": "raw.router_sessions",
}


@dataclass(frozen=True)
class MartColumn:
    name: str
    type: str
    description: str
    lineage: tuple[str, ...] = ()  # "asset/key:column" of the upstream columns it is computed from
    pii: bool = False  # a customer's personal data: tagged `pii` in Dagster, never in metadata or previews


@dataclass(frozen=True)
class Mart:
    name: str
    description: str
    deps: tuple[str, ...]  # asset keys ("raw/scheduler_sessions", "marts/sessions")
    columns: tuple[MartColumn, ...]
    scope: scopes.Scope | None = None  # the rows a changed session can alter; None: always rebuilt in full

    @property
    def qualified(self) -> str:
        return f"marts.{self.name}"

    @property
    def contains_pii(self) -> bool:
        return any(c.pii for c in self.columns)

    @property
    def sql_path(self) -> str:
        return templates.path(self.name)

    def sql(self) -> str:
        return templates.text(self.name)


def _c(name: str, type_: str, description: str, *lineage: str) -> MartColumn:
    return MartColumn(name, type_, description, lineage)


def _pii(name: str, description: str, *lineage: str) -> MartColumn:
    return MartColumn(name, "VARCHAR", description, lineage, pii=True)


def _also(column: MartColumn, *lineage: str) -> MartColumn:
    """A shared column whose value here is computed from more upstream columns."""
    return dataclasses.replace(column, lineage=column.lineage + lineage)


def _from_sessions(*columns: str) -> tuple[str, ...]:
    return tuple(f"marts/sessions:{c}" for c in columns)


# The fields a session's outcome is read from: sessionOutcome, and the ids that overrule it.
OUTCOME = ("session_outcome", "job_id", "booking_id", "lead_id")
# The fields a session's milestone is read from: lastStep, and the evidence that raises it.
EVIDENCE = (
    "last_step",
    "session_outcome",
    "job_id",
    "booking_id",
    "lead_id",
    "customer_address_zip",
    "category",
    "job_type_id",
    "business_unit_id",
    "customer_responses",
    "timeslot_start",
    "customer_first_name",
    "customer_last_name",
    "customer_phone",
    "customer_email",
)


def _from_raw_sessions(*columns: str) -> tuple[str, ...]:
    return tuple(f"{table}:{c}" for table in SESSIONS_RAW for c in columns)


TENANT = _c("tenant_id", "BIGINT", "ServiceTitan tenant.", "marts/sessions:tenant_id")
SCHEDULER = _c("scheduler_id", "VARCHAR", "Scheduler the sessions belong to.", "marts/sessions:scheduler_id")
SCHEDULER_NAME = _c(
    "scheduler_name",
    "VARCHAR",
    "The scheduler's current name (empty for a scheduler no longer listed).",
    "raw/schedulers:name",
)
GRAIN = _c("grain", "VARCHAR", "Period length: day, week (starting Monday) or month.")
PERIOD = _c(
    "period_start",
    "DATE",
    "First day of the period, in ST_TIMEZONE.",
    *_from_sessions("session_date", "session_week", "session_month"),
)
JOBS = _c("jobs", "BIGINT", "Booked sessions with a job.", *_from_sessions("is_job"))
BOOKINGS = _c("bookings", "BIGINT", "Booked sessions with a booking request.", *_from_sessions("is_booking"))
WEEK = _c("week_start", "DATE", "Monday of the session's week in ST_TIMEZONE.", *_from_sessions("session_week"))

# The raw fields a session's traffic source and medium are read from (sql/sessions.sql).
TRAFFIC_FIELDS = (
    "source_utm_source",
    "source_utm_medium",
    "source_gclid",
    "source_gbraid",
    "source_wbraid",
    "source_msclkid",
    "source_fbclid",
    "source_is_rwg_session",
    "gbp_name",
)

SESSIONS = Mart(
    "sessions",
    "One clean row per tenant and session (router/scheduler duplicates removed): the furthest milestone "
    "reached, booked and abandoned flags, outcome, marketing channel and campaign, a hashed customer key, "
    "whether contact details were captured, the bot flag, and the local day/week/month in ST_TIMEZONE. "
    "No customer PII: customers appear only as hashes.",
    (*SESSIONS_RAW,),
    (
        _c("tenant_id", "BIGINT", "ServiceTitan tenant.", *_from_raw_sessions("tenant_id")),
        _c("session_id", "VARCHAR", "Scheduling Pro session id.", *_from_raw_sessions("id")),
        _c(
            "scheduler_id",
            "VARCHAR",
            "Scheduler that listed the session (for router-only sessions: the API's schedulerId, usually empty).",
            *_from_raw_sessions("listed_by_id", "scheduler_id"),
        ),
        _c("via_router", "BOOLEAN", "The session came through a configured router.", "raw/router_sessions:id"),
        _c("created_at", "TIMESTAMPTZ", "When the session was created (UTC).", *_from_raw_sessions("created_on")),
        _c("modified_at", "TIMESTAMPTZ", "When the session last changed (UTC).", *_from_raw_sessions("modified_on")),
        _c("session_date", "DATE", "Creation day in ST_TIMEZONE.", *_from_raw_sessions("created_on")),
        _c("session_week", "DATE", "Monday of the creation week in ST_TIMEZONE.", *_from_raw_sessions("created_on")),
        _c(
            "session_month",
            "DATE",
            "First day of the creation month in ST_TIMEZONE.",
            *_from_raw_sessions("created_on"),
        ),
        _c(
            "last_step",
            "VARCHAR",
            "The API's lastStep, as sent when the vocabulary file lists it; '(unknown)' "
            "when it does not (the value itself stays in raw: it may be anything, a customer's details included).",
            *_from_raw_sessions("last_step"),
        ),
        _c(
            "milestone_index",
            "INTEGER",
            "Furthest milestone reached, 0 (opened) to 7 (booked), in the vocabulary "
            "file's order: what lastStep means, raised to what the session's own fields prove.",
            *_from_raw_sessions(*EVIDENCE),
        ),
        _c(
            "milestone",
            "VARCHAR",
            "Name of the furthest milestone: opened, zipcode, interacted, issue, schedule, customer, details, booked.",
            *_from_raw_sessions(*EVIDENCE),
        ),
        _c(
            "unknown_last_step",
            "BOOLEAN",
            "lastStep is a value the vocabulary file does not list.",
            *_from_raw_sessions("last_step"),
        ),
        _c(
            "outcome",
            "VARCHAR",
            "The API's sessionOutcome when the vocabulary file lists it; '(unknown)' when it does not (as last_step).",
            *_from_raw_sessions("session_outcome"),
        ),
        _c(
            "outcome_class",
            "VARCHAR",
            "booked, abandoned, sent_to_booking, sent_to_lead or in_progress, from the "
            "vocabulary file; sent_to_lead whenever the session has a lead id and no job or booking.",
            *_from_raw_sessions("session_outcome", "lead_id", "job_id", "booking_id"),
        ),
        _c(
            "unknown_outcome",
            "BOOLEAN",
            "sessionOutcome is a value the vocabulary file does not list.",
            *_from_raw_sessions("session_outcome"),
        ),
        _c(
            "is_booked",
            "BOOLEAN",
            "Created a job or booking, and the outcome is not an abandonment.",
            *_from_raw_sessions(*OUTCOME),
        ),
        _c(
            "booked_at",
            "TIMESTAMPTZ",
            "When a booked session booked (its last check-in; later than its creation for a recovered session).",
            *_from_raw_sessions(*OUTCOME, "last_checkin_date", "modified_on"),
        ),
        _c(
            "booked_date",
            "DATE",
            "booked_at's day in ST_TIMEZONE.",
            *_from_raw_sessions(*OUTCOME, "last_checkin_date", "modified_on"),
        ),
        _c(
            "is_abandoned",
            "BOOLEAN",
            "The outcome is an abandonment (including sent to booking/lead).",
            *_from_raw_sessions(*OUTCOME),
        ),
        _c("is_job", "BOOLEAN", "Booked with a job id.", *_from_raw_sessions(*OUTCOME)),
        _c("is_booking", "BOOLEAN", "Booked as a booking request without a job (yet).", *_from_raw_sessions(*OUTCOME)),
        _c(
            "sent_to_booking",
            "BOOLEAN",
            "Abandoned, then sent to the office as a booking.",
            *_from_raw_sessions(*OUTCOME),
        ),
        _c("sent_to_lead", "BOOLEAN", "Abandoned, then sent to the office as a lead.", *_from_raw_sessions(*OUTCOME)),
        _c("job_id", "BIGINT", "ServiceTitan job created by the session.", *_from_raw_sessions("job_id")),
        _c("booking_id", "BIGINT", "ServiceTitan booking created by the session.", *_from_raw_sessions("booking_id")),
        _c("lead_id", "BIGINT", "ServiceTitan lead created by the session.", *_from_raw_sessions("lead_id")),
        _c(
            "blocker_type",
            "VARCHAR",
            "Why the customer could not book, when the API says.",
            *_from_raw_sessions("blocker_type"),
        ),
        _c("category", "VARCHAR", "Service category requested.", *_from_raw_sessions("category")),
        _c("job_type_id", "BIGINT", "Job type requested.", *_from_raw_sessions("job_type_id")),
        _c("business_unit_id", "BIGINT", "Business unit of the request.", *_from_raw_sessions("business_unit_id")),
        _c(
            "timeslot_start",
            "TIMESTAMPTZ",
            "Start of the chosen arrival window (UTC).",
            *_from_raw_sessions("timeslot_start"),
        ),
        _c(
            "timeslot_date",
            "DATE",
            "Day of the chosen arrival window in ST_TIMEZONE.",
            *_from_raw_sessions("timeslot_start"),
        ),
        _c(
            "channel",
            "VARCHAR",
            "Marketing channel by Google Analytics 4's default channel group rules (Direct, "
            "Paid Search, Paid Social, Display, Organic Search, Organic Social, Email, Referral, SMS, ..., "
            "Unassigned), read from traffic_source, traffic_medium and the campaign name (sql/channels.sql).",
            *_from_raw_sessions(*TRAFFIC_FIELDS, "source_utm_campaign", "campaign_name"),
        ),
        _c(
            "traffic_source",
            "VARCHAR",
            "Where the visit came from, lower case: utm_source, else what the click ids "
            "say (gclid, gbraid, wbraid: google; msclkid: bing; fbclid: facebook), else google for Reserve with "
            "Google and Google Business Profile, else (direct).",
            *_from_raw_sessions(*TRAFFIC_FIELDS),
        ),
        _c(
            "traffic_medium",
            "VARCHAR",
            "How, lower case: utm_medium, else cpc for an ad click id, referral for "
            "fbclid, organic for Google's own surfaces, else (none).",
            *_from_raw_sessions(*TRAFFIC_FIELDS),
        ),
        _c(
            "entry_point",
            "VARCHAR",
            "Which ServiceTitan surface the session started on: Reserve with Google, "
            "Google Business Profile, Marketing Pro, or Website or link.",
            *_from_raw_sessions("source_is_rwg_session", "gbp_name", "source_sourced_from_marketing_pro"),
        ),
        _c(
            "campaign_id",
            "VARCHAR",
            "The campaign: the session's campaignId; for a session with only UTMs, the "
            "campaign whose name equals its utm_campaign (exactly, else as a slug); empty otherwise. On a tenant whose "
            "campaignIds do not identify campaigns (a new id with every visit; marts/sessions' campaign_identity "
            "metadata names each such tenant and why), 'name:' and the slug of the campaign's name instead (e.g. "
            "name:google_water_heater_spring): one value for all the ids under that name, so its sessions and bookings "
            "add up on one row (an id without any name stays as it is).",
            *_from_raw_sessions("source_campaign_id", "campaign_name", "source_utm_campaign"),
        ),
        _c(
            "campaign",
            "VARCHAR",
            "The campaign's one name: the most frequent campaignName of its id (else its most "
            "frequent utm_campaign, else the id), or of its ids for a campaign identified by name; for sessions "
            "matched to no campaign, their campaignName or utm_campaign; (none) without any.",
            *_from_raw_sessions("source_campaign_id", "campaign_name", "source_utm_campaign"),
        ),
        _c("utm_source", "VARCHAR", "UTM source, or (none).", *_from_raw_sessions("source_utm_source")),
        _c("utm_medium", "VARCHAR", "UTM medium, or (none).", *_from_raw_sessions("source_utm_medium")),
        _c(
            "booked_from",
            "VARCHAR",
            "Where the booking was made, as the API says.",
            *_from_raw_sessions("source_booked_from"),
        ),
        _c(
            "customer_key",
            "VARCHAR",
            "Salted SHA-256 of the normalised email, else of the phone digits (the salt is ST_CUSTOMER_KEY_SALT or "
            "the warehouse's own, so a list of emails cannot be hashed back); empty when the customer cannot be "
            "identified.",
            *_from_raw_sessions("customer_email", "customer_phone"),
        ),
        _c(
            "contact_name_key",
            "VARCHAR",
            "Salted SHA-256 of the lower-cased full name, when one was given.",
            *_from_raw_sessions("customer_first_name", "customer_last_name"),
        ),
        _c(
            "contact_captured",
            "BOOLEAN",
            "The customer gave a name.",
            *_from_raw_sessions("customer_first_name", "customer_last_name"),
        ),
        _c("has_phone", "BOOLEAN", "The customer gave a phone number.", *_from_raw_sessions("customer_phone")),
        _c("has_email", "BOOLEAN", "The customer gave an email address.", *_from_raw_sessions("customer_email")),
        _c(
            "is_new_customer",
            "BOOLEAN",
            "The API marks the customer as new.",
            *_from_raw_sessions("customer_is_new_customer"),
        ),
        _c(
            "is_bot",
            "BOOLEAN",
            "The API flags the session as a bot; excluded from funnels and rates.",
            *_from_raw_sessions("customer_is_bot"),
        ),
    ),
)

MILESTONE_FUNNEL = Mart(
    "milestone_funnel",
    "Where customers drop off: for every tenant, scheduler and day (with week and month rollups), how many "
    "sessions reached each milestone, the conversion from the previous milestone, and how many left after "
    "it. Bots are left out (counted in bot_sessions) unless the vocabulary file says ServiceTitan counts them.",
    SESSIONS_AND_SCHEDULER_NAMES,
    (
        TENANT,
        SCHEDULER,
        GRAIN,
        PERIOD,
        _c("milestone_index", "INTEGER", "0 (opened) to 7 (booked).", *_from_sessions("milestone_index")),
        _c("milestone", "VARCHAR", "Milestone name.", *_from_sessions("milestone")),
        _c(
            "sessions_reached",
            "BIGINT",
            "Sessions that reached this milestone (bots only with bots_in_milestones).",
            *_from_sessions("milestone_index", "is_bot"),
        ),
        _c(
            "step_conversion_rate",
            "DOUBLE",
            "sessions_reached ÷ the previous milestone's (1 for opened).",
            *_from_sessions("milestone_index", "is_bot"),
        ),
        _c(
            "dropped_after",
            "BIGINT",
            "Sessions whose furthest milestone is this one (left after it).",
            *_from_sessions("milestone_index", "is_bot"),
        ),
        _c(
            "drop_off_share",
            "DOUBLE",
            "dropped_after ÷ the sessions that reached opened.",
            *_from_sessions("milestone_index", "is_bot"),
        ),
        _c("sessions", "BIGINT", "Non-bot sessions opened in the period.", *_from_sessions("is_bot")),
        _c("bot_sessions", "BIGINT", "Bot sessions in the period (not in the funnel).", *_from_sessions("is_bot")),
        _c(
            "abandoned_sessions",
            "BIGINT",
            "Non-bot sessions whose outcome is an abandonment.",
            *_from_sessions("is_abandoned", "is_bot"),
        ),
        SCHEDULER_NAME,
    ),
    scope=Periods("period_start", grain_column="grain"),
)

# Which touch is first or last: by creation time, then session id.
TOUCH_ORDER = ("created_at", "session_id")

CAMPAIGN_ATTRIBUTION = Mart(
    "campaign_attribution",
    "Which campaigns, channels and lead sources book work (bots left out). attribution_model 'session': every "
    "session credited to its own channel and campaign, on its day. 'first_touch' / 'last_touch' / 'linear': every "
    "booked session credited, on the day it booked, to the first, the last, or equally to each of the same "
    "customer's sessions within the attribution window before it (ST_ATTRIBUTION_WINDOW_DAYS, default 90); a "
    "booked session whose customer cannot be identified credits itself. A campaign is its campaignId (its name on "
    "a tenant whose ids do not identify campaigns), under one name.",
    ("marts/sessions",),
    (
        _c("tenant_id", "BIGINT", "ServiceTitan tenant.", *_from_sessions("tenant_id")),
        _c("attribution_model", "VARCHAR", "session, first_touch, last_touch or linear."),
        _c(
            "period_start",
            "DATE",
            "Session day (session model) or the day the credited booking was made.",
            *_from_sessions("session_date", "booked_date"),
        ),
        _c("channel", "VARCHAR", "Marketing channel.", *_from_sessions("channel", *TOUCH_ORDER)),
        _c(
            "campaign_id",
            "VARCHAR",
            "ServiceTitan campaignId (also for UTM-only sessions matched to it by name), "
            "or name:<slug> on a tenant whose campaignIds do not identify campaigns (see marts/sessions).",
            *_from_sessions("campaign_id", *TOUCH_ORDER),
        ),
        _c("campaign", "VARCHAR", "The campaign's one display name.", *_from_sessions("campaign", *TOUCH_ORDER)),
        _c("utm_source", "VARCHAR", "UTM source.", *_from_sessions("utm_source", *TOUCH_ORDER)),
        _c("utm_medium", "VARCHAR", "UTM medium.", *_from_sessions("utm_medium", *TOUCH_ORDER)),
        _c("sessions", "BIGINT", "Non-bot sessions (session model only).", *_from_sessions("session_id", "is_bot")),
        _c(
            "engaged_sessions",
            "BIGINT",
            "Sessions where the customer gave any information: reached the first "
            "information milestone, whichever the flow asks first (session model only).",
            *_from_sessions("session_id", "milestone_index", "is_job"),
        ),
        _c(
            "booked_sessions",
            "BIGINT",
            "Booked sessions credited to (linear: touched by) these sessions.",
            *_from_sessions("session_id", "is_booked", "is_booking"),
        ),
        *(_also(c, *_from_sessions("tenant_id", "session_id")) for c in (JOBS, BOOKINGS)),  # counted once per booking
        _c(
            "credit",
            "DOUBLE",
            "Bookings credited: one per booking for session, first and last touch; for linear, "
            "each booking's 1 shared equally among its touches, so every model's credits add up to the bookings.",
            *_from_sessions("is_booked", "customer_key"),
        ),
        _c(
            "booked_per_opened",
            "DOUBLE",
            "booked_sessions ÷ sessions (session model only).",
            *_from_sessions("session_id", "is_booked", "is_booking"),
        ),
        _c(
            "booked_per_engaged",
            "DOUBLE",
            "booked_sessions ÷ engaged_sessions (session model only).",
            *_from_sessions("session_id", "is_booked", "is_booking", "is_job", "milestone_index"),
        ),
    ),
    scope=Periods("period_start", touches=True),
)

BOOKING_VOLUME = Mart(
    "booking_volume",
    "How many jobs and bookings come in, per tenant and scheduler, per day, week and month — by the day the "
    "session happened (date_basis session_date) and by the day of the booked arrival window (timeslot_date). "
    "Abandoned sessions sent to the office as bookings or leads are counted apart.",
    SESSIONS_AND_SCHEDULER_NAMES,
    (
        TENANT,
        SCHEDULER,
        _c("date_basis", "VARCHAR", "session_date or timeslot_date.", *_from_sessions("session_date", "timeslot_date")),
        GRAIN,
        _also(PERIOD, *_from_sessions("timeslot_date")),
        JOBS,
        BOOKINGS,
        _c("booked", "BIGINT", "jobs + bookings.", *_from_sessions("is_booked", "is_job", "is_booking")),
        _c(
            "abandoned_sent_to_bookings",
            "BIGINT",
            "Abandoned sessions sent as bookings (session_date basis).",
            *_from_sessions("sent_to_booking"),
        ),
        _c(
            "abandoned_sent_to_leads",
            "BIGINT",
            "Abandoned sessions sent as leads (session_date basis).",
            *_from_sessions("sent_to_lead"),
        ),
        SCHEDULER_NAME,
    ),
    scope=Periods("period_start", grain_column="grain"),
)

# The session fields that say the office already has it.
OFFICE_HAS = _from_sessions("job_id", "booking_id", "lead_id", "sent_to_booking", "sent_to_lead")

CUSTOMER_FOLLOW_UPS = Mart(
    "customer_follow_ups",
    "The call-back list for CSRs: one row per identified customer whose latest session stopped short of "
    "booking — name, phone, email, the milestone and blocker where they stopped, scheduler, campaign, when "
    "they were last seen, whether they booked since, and whether the office already has that session as a job, "
    "booking request or lead. needs_follow_up is true only when neither (so nobody is called twice), and "
    "follow_up_reason says why. CONTAINS CUSTOMER PII.",
    ("marts/sessions", *SESSIONS_RAW, "raw/schedulers"),
    (
        TENANT,
        _c("customer_key", "VARCHAR", "Hashed customer identity.", *_from_sessions("customer_key")),
        _pii("first_name", "Customer first name (PII).", *_from_raw_sessions("customer_first_name")),
        _pii("last_name", "Customer last name (PII).", *_from_raw_sessions("customer_last_name")),
        _pii("phone", "Customer phone (PII).", *_from_raw_sessions("customer_phone")),
        _pii("email", "Customer email (PII).", *_from_raw_sessions("customer_email")),
        _c(
            "last_milestone",
            "VARCHAR",
            "Furthest milestone of the latest unbooked session.",
            *_from_sessions("milestone"),
        ),
        _c("blocker_type", "VARCHAR", "Why they could not book, when known.", *_from_sessions("blocker_type")),
        _c("outcome", "VARCHAR", "Outcome of that session.", *_from_sessions("outcome")),
        SCHEDULER,
        _c("scheduler_name", "VARCHAR", "Scheduler name.", "raw/schedulers:name"),
        _c("channel", "VARCHAR", "Marketing channel.", *_from_sessions("channel")),
        _c("campaign", "VARCHAR", "Campaign.", *_from_sessions("campaign")),
        _c("category", "VARCHAR", "Service requested.", *_from_sessions("category")),
        _c("last_seen_at", "TIMESTAMPTZ", "When that session was created.", *_from_sessions("created_at")),
        _c("last_session_id", "VARCHAR", "That session's id.", *_from_sessions("session_id")),
        _c(
            "booked_since",
            "BOOLEAN",
            "The customer booked in a later session.",
            *_from_sessions("is_booked", "created_at"),
        ),
        _c(
            "booked_since_at",
            "TIMESTAMPTZ",
            "When that later booking session was created.",
            *_from_sessions("created_at"),
        ),
        _c(
            "office_has",
            "VARCHAR",
            "What the office already holds from that session: job, booking request or lead (a job, booking or lead "
            "id on it, or its abandonment sent to the office as a booking or lead; a job first, then a booking "
            "request); empty when the office has nothing.",
            *OFFICE_HAS,
        ),
        _c(
            "needs_follow_up",
            "BOOLEAN",
            "Call them back: not booked since, and the office does not already have the session (office_has empty).",
            *_from_sessions("is_booked", "created_at"),
            *OFFICE_HAS,
        ),
        _c(
            "follow_up_reason",
            "VARCHAR",
            "Why needs_follow_up is what it is: booked since; office has a job, a "
            "booking request or a lead; or stopped short, not booked since (the one that needs a call).",
            *_from_sessions("is_booked", "created_at"),
            *OFFICE_HAS,
        ),
    ),
    scope=EACH_CUSTOMER,
)

SERVICE_DEMAND = Mart(
    "service_demand",
    "Which trades and services customers ask for: sessions that named a category, by category, job type and "
    "business unit, per tenant and day/week/month, with how many and what share booked.",
    ("marts/sessions",),
    (
        TENANT,
        GRAIN,
        PERIOD,
        _c("category", "VARCHAR", "Service category.", *_from_sessions("category")),
        _c("job_type_id", "BIGINT", "Job type.", *_from_sessions("job_type_id")),
        _c("business_unit_id", "BIGINT", "Business unit.", *_from_sessions("business_unit_id")),
        _c("requests", "BIGINT", "Non-bot sessions that asked for it.", *_from_sessions("category", "is_bot")),
        _c("booked", "BIGINT", "Of those, booked.", *_from_sessions("is_booked")),
        _c("booked_share", "DOUBLE", "booked ÷ requests.", *_from_sessions("is_booked")),
    ),
    scope=Periods("period_start", grain_column="grain"),
)

SCHEDULER_SCORECARD = Mart(
    "scheduler_scorecard",
    "How each scheduler performs, per day: every metric reproduced from sessions beside ServiceTitan's own "
    "/performance number and their difference (0 when the platform and the API agree). API-only metrics "
    "(recoveries, SMS sent, membership interest) are carried over with api_only = true.",
    ("marts/sessions", "raw/scheduler_performance"),
    (
        _c("tenant_id", "BIGINT", "ServiceTitan tenant.", "raw/scheduler_performance:tenant_id"),
        _c("scheduler_id", "VARCHAR", "Scheduler.", "raw/scheduler_performance:id"),
        _c("scheduler_name", "VARCHAR", "Scheduler name (API).", "raw/scheduler_performance:scheduler_name"),
        _c("brand_name", "VARCHAR", "Brand (API).", "raw/scheduler_performance:brand_name"),
        _c("day", "DATE", "Day in ST_TIMEZONE (the API's session window).", "raw/scheduler_performance:window_start"),
        _c(
            "metric",
            "VARCHAR",
            "Metric name, the platform's: a rate says its numerator and denominator "
            "(booked_per_opened, booked_per_engaged, or booked_per_<milestone> when the vocabulary file names "
            "another denominator).",
        ),
        _c("api_metric", "VARCHAR", "ServiceTitan's name of the same number in /performance."),
        _c(
            "computed_value",
            "DOUBLE",
            "The metric reproduced from sessions (empty for API-only metrics).",
            *_from_sessions("milestone_index", "is_job", "is_booking", "contact_name_key"),
        ),
        _c("api_value", "DOUBLE", "ServiceTitan's number.", "raw/scheduler_performance:milestone_opened"),
        _c("difference", "DOUBLE", "computed_value - api_value."),
        _c("api_only", "BOOLEAN", "The platform cannot reproduce this metric from sessions."),
    ),
    scope=Periods("day", raw_days="build/scope:scheduler_performance_days"),
)

SCHEDULERS = Mart(
    "schedulers",
    "The scheduler inventory: every current scheduler with its company/brand, whether it is the brand's "
    "default, mode (Standard online booking or Call_Center), status, the data API key and quick-launch link "
    "for installing it on a website, and when it was created and last updated.",
    ("raw/schedulers",),
    (
        _c("tenant_id", "BIGINT", "ServiceTitan tenant.", "raw/schedulers:tenant_id"),
        _c("scheduler_id", "VARCHAR", "Scheduler id.", "raw/schedulers:id"),
        _c("scheduler_name", "VARCHAR", "Scheduler name.", "raw/schedulers:name"),
        _c("company_name", "VARCHAR", "Company / brand.", "raw/schedulers:company_name"),
        _c("is_default", "BOOLEAN", "The brand's default scheduler.", "raw/schedulers:is_default"),
        _c("mode", "VARCHAR", "Standard or Call_Center.", "raw/schedulers:mode"),
        _c("status", "VARCHAR", "Scheduler status.", "raw/schedulers:scheduler_status"),
        _c("data_api_key", "VARCHAR", "Key used to embed the scheduler on a website.", "raw/schedulers:data_api_key"),
        _c(
            "quick_launch_link",
            "VARCHAR",
            "Link that opens the scheduler directly.",
            "raw/schedulers:quick_launch_link",
        ),
        _c("created_at", "TIMESTAMPTZ", "When the scheduler was created.", "raw/schedulers:created_on"),
        _c("updated_at", "TIMESTAMPTZ", "When it was last modified.", "raw/schedulers:modified_on"),
    ),
)

BLOCKER_IMPACT = Mart(
    "blocker_impact",
    "What each blocker (out of service area, no availability, job type not online, ...) costs in bookings: per "
    "tenant, scheduler, blocker type, week and the furthest milestone the blocked sessions reached, how many were "
    "blocked and how many would likely have booked. Method: a blocked session that reached milestone M is "
    "credited the booking rate of the same scheduler's unblocked sessions that reached M (all weeks loaded); "
    "estimated_bookings_lost = sessions_blocked × that rate. Bots and booked sessions are left out.",
    SESSIONS_AND_SCHEDULER_NAMES,
    (
        TENANT,
        SCHEDULER,
        SCHEDULER_NAME,
        _c("blocker_type", "VARCHAR", "The API's blockerType, as sent.", *_from_sessions("blocker_type")),
        WEEK,
        _c(
            "furthest_milestone",
            "VARCHAR",
            "The furthest milestone the blocked sessions reached.",
            *_from_sessions("milestone"),
        ),
        _c("milestone_index", "INTEGER", "Its position in the funnel.", *_from_sessions("milestone_index")),
        _c(
            "sessions_blocked",
            "BIGINT",
            "Unbooked non-bot sessions with this blocker that stopped here.",
            *_from_sessions("blocker_type", "is_booked", "is_bot"),
        ),
        _c(
            "comparable_booking_rate",
            "DOUBLE",
            "Of this scheduler's unblocked sessions that reached the same milestone, the share that booked.",
            *_from_sessions("milestone_index", "is_booked", "blocker_type"),
        ),
        _c(
            "estimated_bookings_lost",
            "DOUBLE",
            "sessions_blocked × comparable_booking_rate.",
            *_from_sessions("milestone_index", "is_booked", "blocker_type"),
        ),
    ),
    scope=EACH_SCHEDULER,
)

BOOKING_LAG = Mart(
    "booking_lag",
    "How long booking takes, per tenant, scheduler and week of the session: minutes from session start to "
    "booking, hours from booking to the booked arrival window, and for recoveries (a booking made more than an "
    "hour after the session started) hours from start to recovery. Median and 90th percentile; bots left out.",
    SESSIONS_AND_SCHEDULER_NAMES,
    (
        TENANT,
        SCHEDULER,
        SCHEDULER_NAME,
        WEEK,
        _c("bookings", "BIGINT", "Booked sessions.", *_from_sessions("is_booked")),
        _c(
            "median_minutes_to_booking",
            "DOUBLE",
            "Median minutes from session start to booking (recoveries apart).",
            *_from_sessions("created_at", "booked_at"),
        ),
        _c(
            "p90_minutes_to_booking",
            "DOUBLE",
            "90th percentile of the same.",
            *_from_sessions("created_at", "booked_at"),
        ),
        _c(
            "median_hours_to_arrival_window",
            "DOUBLE",
            "Median hours from booking to the booked arrival window.",
            *_from_sessions("booked_at", "timeslot_start"),
        ),
        _c(
            "p90_hours_to_arrival_window",
            "DOUBLE",
            "90th percentile of the same.",
            *_from_sessions("booked_at", "timeslot_start"),
        ),
        _c(
            "recoveries",
            "BIGINT",
            "Bookings made more than an hour after the session started.",
            *_from_sessions("created_at", "booked_at"),
        ),
        _c(
            "median_hours_to_recovery",
            "DOUBLE",
            "Median hours from session start to a recovery.",
            *_from_sessions("created_at", "booked_at"),
        ),
        _c(
            "p90_hours_to_recovery",
            "DOUBLE",
            "90th percentile of the same.",
            *_from_sessions("created_at", "booked_at"),
        ),
    ),
    scope=Periods("week_start", grain="week"),
)

MARTS = (
    SESSIONS,
    MILESTONE_FUNNEL,
    CAMPAIGN_ATTRIBUTION,
    BOOKING_VOLUME,
    CUSTOMER_FOLLOW_UPS,
    SERVICE_DEMAND,
    SCHEDULER_SCORECARD,
    SCHEDULERS,
    BLOCKER_IMPACT,
    BOOKING_LAG,
)
