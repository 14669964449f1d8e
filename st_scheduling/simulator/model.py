"""A deterministic tenant model: what the Scheduling Pro API holds, as a pure function of (seed, now).

Every day of every scheduler is generated from a random stream seeded by (seed, tenant, scheduler, day),
so any day can be produced on its own, in any order, in bounded memory. A session is generated once as a
*plan*: the record as it is opened, then timed events (finished, sent to a booking or lead, a booking
turned into a job, recovered days later by SMS). The record served at `now` is the plan with every event
up to `now` applied, so sessions appear as the clock moves and keep changing (``modifiedOn`` moves) for
up to ``MAX_LIFETIME`` after creation.

Some visitors come back: a *journey* is one customer's visits over days or weeks, through different channels, the
last one usually booking; some journeys are customers coming back months after an earlier one. Journeys are drawn
per (seed, tenant, day they begin), so the day a visit falls on finds it among a few months' journeys without
generating any other day's sessions.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import heapq
import itertools
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from st_scheduling.simulator import vocabulary as v

DEFAULT_EPOCH = date(2026, 9, 1)
DAY = 86_400
MAX_LIFETIME = 14 * DAY  # no session changes later than this after it was created

TENANT_NAMES = (
    "Summit Heating & Air",
    "Bluewater Plumbing",
    "Brightline Electric",
    "Northstar Home Services",
    "Redwood Comfort Pros",
    "Lakeside Rooter",
)
TENANT_UTC_OFFSETS = (-5, -8, -6, -7)
SCHEDULER_TEMPLATES = (
    ("Website Booking", "Standard", 1.0),
    ("Google Business Profile", "Standard", 0.6),
    ("Call Center", "Call_Center", 0.35),
    ("Seasonal Promo", "Standard", 0.45),
    ("Plumbing Website", "Standard", 0.8),
)
# Relative session volume by weekday (Monday first) and by local hour of day.
WEEKDAY_FACTOR = (1.25, 1.15, 1.1, 1.05, 0.95, 0.75, 0.6)
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 7, 10, 11, 11, 10, 9, 9, 9, 8, 8, 8, 9, 9, 7, 5, 3, 2)

CHANNELS = (
    ("rwg", 0.05),
    ("gbp", 0.14),
    ("google_ads", 0.26),
    ("microsoft_ads", 0.04),
    ("meta_ads", 0.08),
    ("marketing_pro", 0.05),
    ("paid_other", 0.03),
    ("email", 0.05),
    ("organic", 0.14),
    ("referral", 0.05),
    ("direct", 0.11),
)
# (channel, campaign name, utm source, utm medium, utm campaign)
CAMPAIGNS = (
    ("google_ads", "Search - AC Repair", "google", "cpc", "search_ac_repair"),
    ("google_ads", "Search - Water Heater", "google", "cpc", "search_water_heater"),
    ("google_ads", "PMax - Brand", "google", "cpc", "pmax_brand"),
    ("microsoft_ads", "Bing - Emergency Plumbing", "bing", "cpc", "bing_emergency"),
    ("meta_ads", "FB - Fall Tune-Up", "facebook", "paid_social", "fb_fall_tuneup"),
    ("marketing_pro", "MP - Lapsed Customers", "servicetitan", "email", "mp_lapsed"),
    ("paid_other", "Nextdoor - Neighborhood", "nextdoor", "paid", "nextdoor_hood"),
    ("email", "Newsletter - Monthly", "newsletter", "email", "newsletter_monthly"),
)
# Probability of reaching milestone i+1 having reached milestone i, for online (Standard) schedulers.
CONTINUE = (0.76, 0.84, 0.84, 0.8, 0.76, 0.88, 0.82)
HOURS = tuple(range(24))
CHANNEL_NAMES = tuple(c for c, _ in CHANNELS)
CHANNEL_CUM_WEIGHTS = tuple(itertools.accumulate(w for _, w in CHANNELS))


def _draw_table(pairs: tuple[tuple[object, float], ...]) -> tuple[tuple, tuple[float, ...]]:
    """(items, cumulative weights) of (item, weight) pairs, for _Random.weighted."""
    return tuple(i for i, _ in pairs), tuple(itertools.accumulate(w for _, w in pairs))


# Customer journeys: this share of a scheduler's sessions are visits of customers who come back (the rest are
# single visits), so that attribution models have several touches to share a booking among.
JOURNEY_SHARE = 0.25
JOURNEY_LENGTHS = ((2, 0.45), (3, 0.3), (4, 0.15), (5, 0.1))  # visits in one journey, and how often
JOURNEY_VISITS = _draw_table(JOURNEY_LENGTHS)
JOURNEY_MEAN_VISITS = sum(n * w for n, w in JOURNEY_LENGTHS)
JOURNEY_BOOKS = 0.8  # the last visit books; otherwise it stops short like the others
JOURNEY_MEAN_GAP_DAYS, JOURNEY_MAX_GAP_DAYS = 5, 28  # between two visits: days, sometimes weeks
JOURNEY_SPAN_DAYS = (JOURNEY_VISITS[0][-1] - 1) * JOURNEY_MAX_GAP_DAYS
# This share of journeys are a customer coming back, the customer of a journey that began 100 to 270 days before:
# past a 90-day attribution window, the usual default, so that such a window has something to leave out.
COMEBACK_SHARE, COMEBACK_DAYS = 0.3, (100, 271)
# A customer's first visit comes through channels that find new customers; later ones more often through those
# that bring people back (the address typed in, an email, the Business Profile).
FIRST_VISIT_CHANNELS = _draw_table(
    (
        ("google_ads", 0.35),
        ("meta_ads", 0.15),
        ("microsoft_ads", 0.06),
        ("gbp", 0.14),
        ("organic", 0.14),
        ("referral", 0.08),
        ("paid_other", 0.08),
    )
)
RETURN_VISIT_CHANNELS = _draw_table(
    (
        ("direct", 0.3),
        ("email", 0.15),
        ("marketing_pro", 0.1),
        ("gbp", 0.12),
        ("organic", 0.13),
        ("google_ads", 0.12),
        ("rwg", 0.08),
    )
)
CHANNEL_INTENT = {"google_ads": 1.05, "gbp": 1.08, "rwg": 1.12, "direct": 0.9, "organic": 0.95, "meta_ads": 0.88}

FIRST_NAMES = (
    "Avery",
    "Jordan",
    "Taylor",
    "Morgan",
    "Casey",
    "Riley",
    "Jamie",
    "Quinn",
    "Drew",
    "Harper",
    "Rowan",
    "Emerson",
    "Parker",
    "Sawyer",
    "Reese",
    "Dakota",
    "Skyler",
    "Logan",
    "Cameron",
    "Blake",
)
LAST_NAMES = (
    "Rivera",
    "Nguyen",
    "Patel",
    "Okafor",
    "Schmidt",
    "Kowalski",
    "Haddad",
    "Larsen",
    "Moreau",
    "Tanaka",
    "Silva",
    "Brennan",
    "Novak",
    "Ibrahim",
    "Costa",
    "Fischer",
    "Lindqvist",
    "Marsh",
)
STREETS = ("Maple Ave", "Oak St", "Cedar Ln", "Elm Dr", "Birch Rd", "Willow Way", "Spruce Ct", "Aspen Pl")
CITIES = (("Springfield", "IL"), ("Riverton", "WY"), ("Fairview", "TX"), ("Lakewood", "CO"), ("Franklin", "TN"))
BROWSERS = (
    ("Chrome", "Blink", "Windows", "desktop"),
    ("Safari", "WebKit", "iOS", "mobile"),
    ("Chrome", "Blink", "Android", "mobile"),
    ("Edge", "Blink", "Windows", "desktop"),
    ("Safari", "WebKit", "Mac OS", "desktop"),
)
RESPONSES = (
    "System age: 10+ years",
    "Unit is running: No",
    "Water on the floor: Yes",
    "Breaker trips: Often",
    "Thermostat blank: Yes",
    "Existing warranty: Unsure",
)
NOTES = ("Dog in the backyard", "Side gate is unlocked", "Please call before arriving", "Second-floor unit")


@functools.lru_cache(maxsize=4096)
def _day_prefix(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%dT")


def iso(ts: int) -> str:
    """Epoch seconds as the API's UTC date-time."""
    seconds = ts % DAY
    return f"{_day_prefix(ts // DAY)}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"


class _Random(random.Random):
    """random.Random with cheaper integer draws (the model needs determinism, not perfect uniformity)."""

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        return start + int(self.random() * (stop - start))

    def choice(self, seq):
        return seq[int(self.random() * len(seq))]

    def weighted(self, items: tuple, cum_weights: tuple):
        """One of `items`, drawn by cumulative weights."""
        return items[bisect.bisect(cum_weights, self.random() * cum_weights[-1])]


def epoch_seconds(moment: datetime) -> int:
    return math.floor(moment.timestamp())


def _stable_uuid(*parts: object) -> str:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


@dataclass(frozen=True)
class SimulatorSettings:
    """What the simulated world looks like. Everything else follows from these and the clock."""

    seed: int = 7
    tenant_count: int = 2
    schedulers_per_tenant: int = 3
    daily_sessions: float = 40.0  # mean sessions per day of a weight-1.0 scheduler
    epoch: date = DEFAULT_EPOCH  # the first day with sessions
    cached_sessions: int = 25_000  # generated sessions kept in memory (about 10 KB each); older ones are regenerated
    vocabulary: str = "default"  # which synthetic vocabulary and definitions (simulator.vocabulary.WORLDS)
    # Fault: (scheduler id, epoch seconds) pairs; that scheduler receives no session from then on, as when a
    # website embed breaks. Everything else is unchanged.
    silenced: tuple[tuple[str, int], ...] = ()
    # Event: (old name, new name, epoch seconds): sessions created from then on carry the campaign's new name.
    renamed_campaigns: tuple[tuple[str, str, int], ...] = ()
    # Fault: (scheduler id, lastStep value, from, until): while the clock is in [from, until), that scheduler's
    # sessions created in the same interval report this lastStep (a release with a new step name, rolled back).
    relabeled_steps: tuple[tuple[str, str, int, int], ...] = ()

    @property
    def world(self) -> v.World:
        return v.WORLDS[self.vocabulary]


@dataclass(frozen=True)
class Scheduler:
    id: str
    tenant_id: int
    name: str
    company_name: str
    created: int
    mode: str
    is_default: bool
    weight: float
    data_api_key: str
    edit_every_days: int

    def record(self, now: int) -> dict:
        edits = max(0, (now - self.created) // (self.edit_every_days * DAY))
        modified = self.created + edits * self.edit_every_days * DAY + (3600 if edits else 0)
        if modified > now:
            modified = self.created
        return {
            "id": self.id,
            "name": self.name,
            "companyName": self.company_name,
            "createdOn": iso(self.created),
            "modifiedOn": iso(modified),
            "schedulerStatus": v.SCHEDULER_STATUS_ACTIVE if edits % 5 != 4 else v.SCHEDULER_STATUS_PAUSED,
            "dataApiKey": self.data_api_key,
            "isDefault": self.is_default,
            "mode": self.mode,
            "quickLaunchLink": f"https://scheduler.simulator.invalid/quick-launch?key={self.data_api_key}",
        }


@dataclass(frozen=True)
class Router:
    id: str
    tenant_id: int


@dataclass(frozen=True)
class Tenant:
    id: int
    name: str
    utc_offset_hours: int
    schedulers: tuple[Scheduler, ...]
    routers: tuple[Router, ...]

    def scheduler(self, scheduler_id: str) -> Scheduler | None:
        return next((s for s in self.schedulers if s.id == scheduler_id), None)

    def router(self, router_id: str) -> Router | None:
        return next((r for r in self.routers if r.id == router_id), None)


@dataclass(slots=True)
class Recovery:
    kind: str  # "link" or "ai_agent"
    sms_at: int
    recovered_at: int | None
    as_job: bool


@dataclass(slots=True)
class SessionPlan:
    """One session's whole life: the record when opened, and timed changes to it."""

    id: str
    created: int
    opened: dict
    events: list[tuple[int, dict]]
    via_router: bool = False
    recovery: Recovery | None = None
    _final: dict | None = field(default=None, repr=False)

    @property
    def last_change(self) -> int:
        return self.events[-1][0] if self.events else self.created

    def at(self, now: int) -> dict:
        """The record as the API serves it at `now` (the session exists: created <= now)."""
        if now >= self.last_change:
            if self._final is None:
                self._final = self._apply(len(self.events))
            return self._final
        applied = sum(1 for t, _ in self.events if t <= now)
        return self._apply(applied)

    def _apply(self, count: int) -> dict:
        record = dict(self.opened)
        for _, changes in self.events[:count]:
            for key, value in changes.items():
                if isinstance(value, dict):
                    record[key] = {**record[key], **value}
                else:
                    record[key] = value
        return record


@dataclass(frozen=True, slots=True)
class Visit:
    """One visit of a journey, generated with the other sessions of its scheduler and day."""

    key: str  # names the session: its id and its random stream
    created: int
    scheduler_id: str
    channel: str
    books: bool


@dataclass(frozen=True, slots=True)
class Journey:
    """One customer's visits over days or weeks."""

    customer: str  # the key of their identity (_customer_identity)
    returning: bool  # they booked in an earlier journey, so ServiceTitan knows them
    books: bool  # the last visit books
    visits: tuple[Visit, ...]


class TenantModel:
    """The simulated tenants, schedulers, routers and sessions for one seed."""

    def __init__(self, settings: SimulatorSettings | None = None):
        self.settings = settings or SimulatorSettings()
        self.tenants: dict[int, Tenant] = {t.id: t for t in self._build_tenants()}
        # Memory is bounded by the number of sessions cached, not by how many have been served.
        days_cached = max(16, int(self.settings.cached_sessions // max(1.0, self.settings.daily_sessions)))
        self._day_sessions = functools.lru_cache(maxsize=days_cached)(self._generate_day)
        self._day_counts = functools.lru_cache(maxsize=65_536)(self._count_day)
        # Journeys by the day they begin: a day's visits come from the JOURNEY_SPAN_DAYS before it, so this holds
        # those of every tenant read at once.
        self._journeys = functools.lru_cache(maxsize=4096)(self._begin_journeys)
        self._visits = functools.lru_cache(maxsize=1024)(self._visits_on)

    @property
    def epoch_ts(self) -> int:
        return epoch_seconds(datetime.combine(self.settings.epoch, datetime.min.time(), UTC))

    # -- tenants and schedulers -------------------------------------------------------------------
    def _build_tenants(self) -> list[Tenant]:
        s = self.settings
        rng = _Random(f"tenants/{s.seed}")
        tenants = []
        for t in range(s.tenant_count):
            tenant_id = rng.randrange(100_000_000, 999_999_999)
            name = TENANT_NAMES[t % len(TENANT_NAMES)] + ("" if t < len(TENANT_NAMES) else f" {t}")
            brands = (name, f"{name.split()[0]} Plumbing & Drain")
            schedulers = []
            for i in range(s.schedulers_per_tenant):
                label, mode, weight = SCHEDULER_TEMPLATES[i % len(SCHEDULER_TEMPLATES)]
                brand = brands[i % 2]
                # The first two schedulers predate the simulated history; later ones launch during it.
                if i < 2:
                    created_day = s.epoch - timedelta(days=rng.randrange(60, 400))
                else:
                    created_day = s.epoch + timedelta(days=7 * (i - 1) + t)
                created = epoch_seconds(datetime.combine(created_day, datetime.min.time(), UTC)) + rng.randrange(DAY)
                schedulers.append(
                    Scheduler(
                        id=_stable_uuid(s.seed, tenant_id, "scheduler", i),
                        tenant_id=tenant_id,
                        name=label if i < len(SCHEDULER_TEMPLATES) else f"{label} {i}",
                        company_name=brand,
                        created=created,
                        mode=mode,
                        is_default=i < 2,  # the first scheduler of each brand
                        weight=weight,
                        data_api_key=hashlib.sha256(f"{s.seed}/{tenant_id}/{i}/key".encode()).hexdigest()[:32],
                        edit_every_days=9 + 4 * i,
                    )
                )
            routers = (Router(id=_stable_uuid(s.seed, tenant_id, "router", 0), tenant_id=tenant_id),)
            tenants.append(
                Tenant(tenant_id, name, TENANT_UTC_OFFSETS[t % len(TENANT_UTC_OFFSETS)], tuple(schedulers), routers)
            )
        return tenants

    def schedulers(self, tenant: Tenant, now: int) -> list[Scheduler]:
        return [s for s in tenant.schedulers if s.created <= now]

    # -- sessions -----------------------------------------------------------------------------------
    def days(self, start: int, end: int) -> range:
        """Day numbers (days since 1970-01-01 UTC) overlapping [start, end), clipped to the history."""
        first = max(start, self.epoch_ts) // DAY
        last = (end - 1) // DAY
        return range(first, last + 1)

    def scheduler_sessions(self, tenant: Tenant, scheduler: Scheduler, day: int) -> list[SessionPlan]:
        return self._day_sessions(tenant.id, scheduler.id, day)

    def router_only_sessions(self, tenant: Tenant, router: Router, day: int) -> list[SessionPlan]:
        return self._day_sessions(tenant.id, router.id, day)

    def day_plans(self, tenant: Tenant, owner: Scheduler | Router, day: int, now: int) -> list[SessionPlan]:
        """The sessions listed by a scheduler (or router: its own plus those it upgraded) created on `day`."""
        if isinstance(owner, Scheduler):
            return self.scheduler_sessions(tenant, owner, day)
        upgraded = [
            [p for p in self.scheduler_sessions(tenant, s, day) if p.via_router] for s in self.schedulers(tenant, now)
        ]
        return list(
            heapq.merge(self.router_only_sessions(tenant, owner, day), *upgraded, key=lambda p: (p.created, p.id))
        )

    def day_records(
        self, tenant: Tenant, owner: Scheduler | Router, day: int, window: Window, now: int
    ) -> Iterator[tuple[SessionPlan, dict]]:
        for plan in self.day_plans(tenant, owner, day, now):
            record = window.admits(plan, now)
            if record is not None:
                yield plan, record

    def served(self, owner_id: str, plan: SessionPlan, record: dict, now: int) -> dict:
        """The record as /sessions serves it at `now`: the settings' renamed campaigns and relabeled steps applied
        (/performance keeps counting the sessions' true steps)."""
        edits = {}
        for old, new, start in self.settings.renamed_campaigns:
            if record.get("campaignName") == old and plan.created >= start:
                edits["campaignName"] = new
        for scheduler_id, step, start, until in self.settings.relabeled_steps:
            if scheduler_id == owner_id and start <= plan.created < until and start <= now < until:
                edits["lastStep"] = step
        return {**record, **edits} if edits else record

    def day_count(self, tenant: Tenant, owner: Scheduler | Router, day: int, window: Window, now: int) -> int:
        """How many of a day's sessions match `window` at `now` (cached: a day stops changing after
        MAX_LIFETIME, so its count at any later `now` is the same)."""
        settled = min(now, (day + 1) * DAY + MAX_LIFETIME)
        return self._day_counts(tenant.id, owner.id, day, window, settled)

    def _count_day(self, tenant_id: int, owner_id: str, day: int, window: Window, now: int) -> int:
        tenant = self.tenants[tenant_id]
        owner = tenant.scheduler(owner_id) or tenant.router(owner_id)
        return sum(1 for _ in self.day_records(tenant, owner, day, window, now))

    def records(
        self, tenant: Tenant, owner: Scheduler | Router, window: Window, now: int
    ) -> Iterator[tuple[SessionPlan, dict]]:
        """A scheduler's or router's sessions matching `window` as of `now`, in a stable order."""
        for day in self.days(*window.day_span(self.epoch_ts, now)):
            yield from self.day_records(tenant, owner, day, window, now)

    def _mean_sessions(self, weight: float, day: int) -> float:
        """Mean sessions on `day` of an owner of this weight."""
        weekday = (day + 3) % 7  # 1970-01-01 was a Thursday
        season = 1.0 + 0.15 * math.sin(2 * math.pi * day / 365.25)
        return self.settings.daily_sessions * weight * WEEKDAY_FACTOR[weekday] * season

    def _generate_day(self, tenant_id: int, owner_id: str, day: int) -> list[SessionPlan]:
        tenant = self.tenants[tenant_id]
        scheduler = tenant.scheduler(owner_id)
        rng = _Random(f"{self.settings.seed}/{tenant_id}/{owner_id}/{day}")
        day_start = day * DAY
        if scheduler is None:
            mean = self._mean_sessions(0.2, day)
        else:  # journeys' visits make up the rest
            mean = self._mean_sessions(scheduler.weight, day) * (1 - JOURNEY_SHARE)
        hour_weights = _hour_weights(tenant.utc_offset_hours)
        plans = []
        for index in range(_count(rng, mean)):
            hour = rng.weighted(HOURS, hour_weights)
            created = day_start + hour * 3600 + rng.randrange(3600)
            if scheduler is not None and created < scheduler.created:
                continue
            session_id = _stable_uuid(self.settings.seed, tenant_id, owner_id, day, index)
            if scheduler is None:
                plans.append(_router_only_plan(rng, self.settings.world, session_id, created))
            else:
                plans.append(
                    _session_plan(rng, self.settings.world, tenant, scheduler, day, index, session_id, created)
                )
        if scheduler is not None:
            plans += [
                _visit_plan(self.settings, tenant, scheduler, journey, visit)
                for journey, visit in self._visits(tenant_id, day).get(owner_id, ())
            ]
        plans.sort(key=lambda p: (p.created, p.id))
        silenced_from = dict(self.settings.silenced).get(owner_id)
        return plans if silenced_from is None else [p for p in plans if p.created < silenced_from]

    def _begin_journeys(self, tenant_id: int, day: int) -> tuple[Journey, ...]:
        """The journeys of the tenant's customers that begin on `day`, each visit drawn: when, to which scheduler,
        through which channel. About JOURNEY_SHARE of the tenant's sessions, in visits."""
        if day < self.epoch_ts // DAY - JOURNEY_SPAN_DAYS:
            return ()  # none of their visits would fall in the history
        tenant = self.tenants[tenant_id]
        rng = _Random(f"{self.settings.seed}/{tenant_id}/journeys/{day}")
        launched = [s for s in tenant.schedulers if s.created < (day + 1) * DAY]
        mean = sum(self._mean_sessions(s.weight, day) for s in launched) * JOURNEY_SHARE / JOURNEY_MEAN_VISITS
        hour_weights, journeys = _hour_weights(tenant.utc_offset_hours), []
        for number in range(_count(rng, mean)):
            customer, returning, came_back = f"journey/{day}/{number}", False, rng.random() < COMEBACK_SHARE
            if came_back:
                earlier = self._journeys(tenant_id, day - rng.randrange(*COMEBACK_DAYS))
                if earlier:
                    before = rng.choice(earlier)
                    customer, returning = before.customer, before.returning or before.books
            books, length, at, visits = rng.random() < JOURNEY_BOOKS, rng.weighted(*JOURNEY_VISITS), day, []
            for k in range(length):
                if k:
                    at += 1 + min(int(rng.expovariate(1 / JOURNEY_MEAN_GAP_DAYS)), JOURNEY_MAX_GAP_DAYS - 1)
                created = at * DAY + rng.weighted(HOURS, hour_weights) * 3600 + rng.randrange(3600)
                channel = rng.weighted(*(RETURN_VISIT_CHANNELS if k or came_back else FIRST_VISIT_CHANNELS))
                # A visit goes to a scheduler that exists by then, as likely as its share of the traffic.
                open_then = tuple(s for s in tenant.schedulers if s.created <= created)
                if open_then:
                    scheduler = rng.weighted(open_then, tuple(itertools.accumulate(s.weight for s in open_then)))
                    visits.append(
                        Visit(f"journey/{day}/{number}/{k}", created, scheduler.id, channel, books and k == length - 1)
                    )
            journeys.append(Journey(customer, returning, books, tuple(visits)))
        return tuple(journeys)

    def _visits_on(self, tenant_id: int, day: int) -> dict[str, list[tuple[Journey, Visit]]]:
        """The journeys' visits on `day`, by scheduler."""
        found: dict[str, list[tuple[Journey, Visit]]] = {}
        for began in range(day - JOURNEY_SPAN_DAYS, day + 1):
            for journey in self._journeys(tenant_id, began):
                for visit in journey.visits:
                    if visit.created // DAY == day:
                        found.setdefault(visit.scheduler_id, []).append((journey, visit))
        return found


@functools.lru_cache(maxsize=64)
def _hour_weights(utc_offset_hours: int) -> tuple[int, ...]:
    """Cumulative weights of the UTC hours of a day's sessions, in a tenant's time zone."""
    return tuple(itertools.accumulate(HOUR_WEIGHTS[(h + utc_offset_hours) % 24] for h in range(24)))


def _count(rng: random.Random, mean: float) -> int:
    """How many, around `mean` (a Poisson-like spread)."""
    return max(0, round(rng.gauss(mean, math.sqrt(mean) if mean > 0 else 0)))


@functools.lru_cache(maxsize=65_536)
def _customer_identity(tenant_id: int, key: str) -> dict:
    rng = _Random(f"customer/{tenant_id}/{key}")
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    city, state = rng.choice(CITIES)
    return {
        "id": rng.randrange(10_000_000, 99_999_999),
        "firstName": first,
        "lastName": last,
        "email": f"{first}.{last}{rng.randrange(10, 9999)}@example.com".lower(),
        "phone": f"(555) {rng.randrange(200, 999)}-{rng.randrange(0, 9999):04d}",
        "locationId": rng.randrange(10_000_000, 99_999_999),
        "address": {
            "street": f"{rng.randrange(10, 9999)} {rng.choice(STREETS)}",
            "unit": None,
            "city": city,
            "state": state,
            "zip": f"{rng.randrange(10000, 99999)}",
            "country": "USA",
        },
        "phone_only": rng.random() < 0.1,
        "email_only": rng.random() < 0.05,
    }


@functools.lru_cache(maxsize=1024)
def _landing_page(company: str) -> str:
    return f"https://www.{''.join(ch for ch in company.lower() if ch.isalnum())}.example/schedule"


def _source_tracking(rng: random.Random, channel: str, company: str) -> tuple[dict, str | None, str | None]:
    """The sourceTracking object, gbpName and campaignName for a session arriving through `channel`."""
    src = dict.fromkeys(
        (
            "isRWGSession",
            "campaignId",
            "landingPageUrl",
            "gclid",
            "fbclid",
            "msclkid",
            "utmSource",
            "utmMedium",
            "utmCampaign",
            "utmAdgroup",
            "utmTerm",
            "utmContent",
            "googleAnalyticsClientId",
            "bookedFrom",
            "sourcedFromMarketingPro",
            "gbraid",
            "wbraid",
            "marketingSource",
        )
    )
    src["landingPageUrl"] = _landing_page(company)
    if rng.random() < 0.6:
        src["googleAnalyticsClientId"] = f"GA1.1.{rng.randrange(10**9, 10**10)}.{rng.randrange(10**9, 10**10)}"
    gbp_name = campaign_name = None
    campaigns = [c for c in CAMPAIGNS if c[0] == channel]
    if campaigns:
        _, name, source, medium, utm_campaign = rng.choice(campaigns)
        src["campaignId"] = str(1000 + CAMPAIGNS.index((channel, name, source, medium, utm_campaign)))
        src["utmSource"], src["utmMedium"], src["utmCampaign"] = source, medium, utm_campaign
        if rng.random() < 0.6:
            campaign_name = name
        if channel in ("google_ads", "microsoft_ads", "meta_ads"):
            src["utmTerm"] = rng.choice(("ac repair near me", "water heater install", "emergency plumber"))
            src["utmAdgroup"] = rng.choice(("core", "competitor", "brand"))
            src["utmContent"] = rng.choice(("ad_a", "ad_b"))
    click = f"{rng.getrandbits(64):016x}"
    if channel == "rwg":
        src["isRWGSession"] = True
    elif channel == "gbp":
        gbp_name = f"{company} - {rng.choice(CITIES)[0]}"
        src["utmSource"], src["utmMedium"] = "google", "gbp"
    elif channel == "google_ads":
        src[rng.weighted(("gclid", "gbraid", "wbraid"), (0.7, 0.85, 1.0))] = click
    elif channel == "microsoft_ads":
        src["msclkid"] = click
    elif channel == "meta_ads":
        src["fbclid"] = click
    elif channel == "marketing_pro":
        src["sourcedFromMarketingPro"] = "true"
    elif channel == "organic":
        src["utmSource"], src["utmMedium"] = rng.choice((("google", "organic"), ("bing", "organic"), (None, None)))
        src["marketingSource"] = "Organic Search"
    elif channel == "referral":
        src["utmSource"], src["utmMedium"] = rng.choice(("angi.com", "yelp.com", "nextdoor.com")), "referral"
    return src, gbp_name, campaign_name


def _device(rng: random.Random, bot: bool) -> dict:
    if bot:
        return {
            "browserName": "HeadlessChrome",
            "browserVersion": "120.0",
            "cpuArchitecture": "amd64",
            "deviceModel": None,
            "deviceType": None,
            "deviceVendor": None,
            "engineName": "Blink",
            "engineVersion": "120.0",
            "ipAddress": f"198.51.100.{rng.randrange(1, 255)}",
            "isBot": True,
            "osName": "Linux",
            "osVersion": None,
            "userAgent": "Mozilla/5.0 (compatible; ExampleBot/2.1; +https://bot.example/)",
        }
    browser, engine, os_name, device_type = rng.choice(BROWSERS)
    mobile = device_type == "mobile"
    return {
        "browserName": browser,
        "browserVersion": f"{rng.randrange(110, 131)}.0",
        "cpuArchitecture": None if mobile else "amd64",
        "deviceModel": ("iPhone" if os_name == "iOS" else "Pixel 8") if mobile else None,
        "deviceType": device_type if mobile else None,
        "deviceVendor": ("Apple" if os_name == "iOS" else "Google") if mobile else None,
        "engineName": engine,
        "engineVersion": f"{rng.randrange(600, 620)}.1",
        "ipAddress": f"203.0.113.{rng.randrange(1, 255)}",
        "isBot": False,
        "osName": os_name,
        "osVersion": f"{rng.randrange(10, 18)}.{rng.randrange(0, 6)}",
        "userAgent": f"Mozilla/5.0 ({os_name}) {browser}",
    }


def _opened_record(
    world: v.World,
    session_id: str,
    created: int,
    scheduler_id: str | None,
    new_customer: bool,
    device: dict,
    source: dict,
    gbp_name: str | None,
    campaign_name: str | None,
) -> dict:
    """A session record as it looks the moment the scheduler opens: every spec field, in spec order."""
    return {
        "id": session_id,
        "createdOn": iso(created),
        "modifiedOn": iso(created),
        "lastCheckinDate": iso(created),
        "sessionOutcome": world.in_progress,
        "schedulerId": scheduler_id,
        "jobId": None,
        "bookingId": None,
        "leadId": None,
        "gbpName": gbp_name,
        "timeslotStart": None,
        "timeslotEnd": None,
        "category": None,
        "jobTypeId": None,
        "businessUnitId": None,
        "customer": {
            "isNewCustomer": new_customer,
            "id": None,
            "firstName": None,
            "lastName": None,
            "email": None,
            "phone": None,
            "locationId": None,
            "isNewLocation": new_customer,
            "address": dict.fromkeys(("street", "unit", "city", "state", "zip", "country")),
            **device,
        },
        "zoneId": None,
        "customerResponses": None,
        "notes": None,
        "sourceTracking": source,
        "mobileNotificationOptIn": None,
        "blockerType": None,
        "blockerToBookAdditionalData": None,
        "lastStep": world.step("opened"),
        "dispatchFeeQuoted": None,
        "isLocationTakeover": None,
        "customOptIn": None,
        "marketingOptIn": None,
        "membershipInterest": None,
        "paymentInfoCaptured": None,
        "externalId": None,
        "recurringServiceId": None,
        "campaignName": campaign_name,
    }


def _session_plan(
    rng: random.Random,
    w: v.World,
    tenant: Tenant,
    scheduler: Scheduler,
    day: int,
    index: int,
    session_id: str,
    created: int,
) -> SessionPlan:
    """One session's whole life, drawn from `rng` in a fixed order (the generated data depends on it): who
    visits, how far they get, what they entered, and what happened after."""
    bot = rng.random() < 0.03
    channel = "direct" if bot else rng.weighted(CHANNEL_NAMES, CHANNEL_CUM_WEIGHTS)
    source, gbp_name, campaign_name = _source_tracking(rng, channel, scheduler.company_name)
    # A quarter of visitors are returning customers, seen on one of the previous two weeks' sessions.
    if rng.random() < 0.25:
        customer_key = f"{day - rng.randrange(1, 15)}/{rng.randrange(0, 40)}"
    else:
        customer_key = f"{day}/{scheduler.id}/{index}"
    visitor = Visitor(_customer_identity(tenant.id, customer_key), returning=not customer_key.startswith(f"{day}/"))
    opened = _opened_record(
        w, session_id, created, scheduler.id, not visitor.returning, _device(rng, bot), source, gbp_name, campaign_name
    )
    finished = created + rng.randrange(60, 25 * 60)
    if bot and not w.bots_fill_the_form:
        return SessionPlan(
            session_id,
            created,
            opened,
            [(finished, {"modifiedOn": iso(finished), "sessionOutcome": w.left_anonymously})],
        )

    call_center = scheduler.mode == "Call_Center"
    reached = _furthest_milestone(rng, w, CHANNEL_INTENT.get(channel, 1.0) * (1.12 if call_center else 1.0))
    return _after_opening(
        rng, w, tenant, scheduler, day, session_id, created, opened, finished, channel, visitor, reached
    )


def _visit_plan(
    settings: SimulatorSettings, tenant: Tenant, scheduler: Scheduler, journey: Journey, visit: Visit
) -> SessionPlan:
    """A journey's visit: its customer comes through the visit's channel and gets as far as giving their contact
    details (so that each visit is a touch the platform can tie to them), and books on the journey's booking."""
    w, rng = settings.world, _Random(f"{settings.seed}/{tenant.id}/{visit.key}")
    session_id = _stable_uuid(settings.seed, tenant.id, visit.key)
    source, gbp_name, campaign_name = _source_tracking(rng, visit.channel, scheduler.company_name)
    visitor = Visitor(_customer_identity(tenant.id, journey.customer), journey.returning)
    opened = _opened_record(
        w,
        session_id,
        visit.created,
        scheduler.id,
        not visitor.returning,
        _device(rng, False),
        source,
        gbp_name,
        campaign_name,
    )
    finished = visit.created + rng.randrange(60, 25 * 60)
    reached = w.at("booked") if visit.books else rng.randrange(w.at("customer"), w.at("booked"))
    return _after_opening(
        rng,
        w,
        tenant,
        scheduler,
        visit.created // DAY,
        session_id,
        visit.created,
        opened,
        finished,
        visit.channel,
        visitor,
        reached,
    )


def _after_opening(
    rng: random.Random,
    w: v.World,
    tenant: Tenant,
    scheduler: Scheduler,
    day: int,
    session_id: str,
    created: int,
    opened: dict,
    finished: int,
    channel: str,
    visitor: Visitor,
    reached: int,
) -> SessionPlan:
    """The rest of a session's life once its furthest milestone is drawn: what the visitor entered, then the
    booking, or the abandonment and what followed it."""
    call_center = scheduler.mode == "Call_Center"
    done, customer = _entered(rng, w, tenant, day, reached, visitor)
    done.update(modifiedOn=iso(finished), lastCheckinDate=iso(finished), lastStep=w.steps[reached])
    if reached == w.at("booked"):
        booked_from = {"rwg": "ReserveWithGoogle", "gbp": "GoogleBusinessProfile"}.get(
            channel, "CallCenter" if call_center else "Website"
        )
        events, recovery = _booked(rng, w, finished, done, customer, visitor, booked_from, call_center), None
    else:
        events, recovery = _abandoned(rng, w, tenant, finished, done, reached, visitor)
    return SessionPlan(session_id, created, opened, events, via_router=rng.random() < 0.12, recovery=recovery)


@dataclass(frozen=True)
class Visitor:
    who: dict  # the customer's identity (_customer_identity)
    returning: bool


def _furthest_milestone(rng: random.Random, w: v.World, intent: float) -> int:
    reached = w.at("opened")
    while reached < w.at("booked") and rng.random() < min(0.98, CONTINUE[reached] * intent):
        reached += 1
    return reached


def _entered(
    rng: random.Random, w: v.World, tenant: Tenant, day: int, reached: int, visitor: Visitor
) -> tuple[dict, dict]:
    """The fields the visitor filled in up to `reached`: (session fields, customer fields)."""
    who, done, customer = visitor.who, {}, {}
    category, business_unit, job_types = rng.choice(v.CATEGORIES)
    if reached >= w.at("zipcode"):
        customer["address"] = {"zip": who["address"]["zip"], "country": "USA"}
        done["zoneId"] = 100 + int(who["address"]["zip"]) % 7
    if reached >= w.at("issue"):
        done.update(
            category=category,
            businessUnitId=business_unit,
            jobTypeId=rng.choice(job_types),
            customerResponses=rng.sample(RESPONSES, rng.randrange(1, 3)),
        )
    if reached >= w.at("schedule"):
        slot_day = (day + rng.randrange(0, 6)) * DAY
        slot = slot_day + (rng.choice((8, 10, 12, 14, 16)) - tenant.utc_offset_hours) * 3600
        done.update(timeslotStart=iso(slot), timeslotEnd=iso(slot + 7200), dispatchFeeQuoted="$89.00")
    if reached >= w.at("customer"):
        named = reached >= w.at(w.name_asked_at)
        customer.update(
            firstName=who["firstName"] if named else None,
            lastName=who["lastName"] if named else None,
            email=None if who["phone_only"] else who["email"],
            phone=None if who["email_only"] else who["phone"],
        )
        done.update(
            mobileNotificationOptIn=rng.random() < 0.6,
            marketingOptIn=rng.random() < 0.4,
            customOptIn=rng.random() < 0.2,
            isLocationTakeover=False,
        )
        if visitor.returning:
            customer.update(id=who["id"], locationId=who["locationId"])
    if reached >= w.at("details"):
        customer["address"] = {k: val for k, val in who["address"].items()}
        if rng.random() < 0.3:
            done["notes"] = rng.choice(NOTES)
        done["membershipInterest"] = rng.choice(v.MEMBERSHIP_INTEREST) if rng.random() < 0.3 else None
    if customer:
        done["customer"] = customer
    return done, customer


def _booked(
    rng: random.Random,
    w: v.World,
    finished: int,
    done: dict,
    customer: dict,
    visitor: Visitor,
    booked_from: str,
    call_center: bool,
) -> list[tuple[int, dict]]:
    """A session that booked: a job or a booking request, which the office may later turn into a job."""
    events = [(finished, done)]
    as_job = rng.random() < (0.85 if call_center else 0.65)
    done.update(
        sessionOutcome=w.job if as_job else w.booking,
        paymentInfoCaptured=rng.random() < 0.2,
        sourceTracking={"bookedFrom": booked_from},
    )
    done["jobId" if as_job else "bookingId"] = rng.randrange(10**7, 10**8)
    customer.setdefault("id", visitor.who["id"])
    customer.setdefault("locationId", visitor.who["locationId"])
    if not as_job and rng.random() < 0.4:
        converted = finished + rng.randrange(DAY, 3 * DAY)
        events.append(
            (converted, {"modifiedOn": iso(converted), "sessionOutcome": w.job, "jobId": rng.randrange(10**7, 10**8)})
        )
    return events


def _abandoned(
    rng: random.Random, w: v.World, tenant: Tenant, finished: int, done: dict, reached: int, visitor: Visitor
) -> tuple[list[tuple[int, dict]], Recovery | None]:
    """A session left before booking: maybe blocked, then maybe sent to the office, or sent a recovery SMS
    that may bring the customer back to book."""
    who, events, recovery = visitor.who, [(finished, done)], None
    contact = reached >= w.at("customer")
    done["sessionOutcome"] = w.abandoned if contact else w.left_anonymously
    if reached >= w.at("interacted") and rng.random() < 0.4:
        done["blockerType"] = rng.choice(v.BLOCKERS)
        done["blockerToBookAdditionalData"] = "See blocker"
    roll = rng.random()
    if contact and roll < 0.35:
        sent = finished + 1800
        to_booking = roll < 0.25
        events.append(
            (
                sent,
                {
                    "modifiedOn": iso(sent),
                    "sessionOutcome": w.to_booking if to_booking else w.to_lead,
                    ("bookingId" if to_booking else "leadId"): rng.randrange(10**7, 10**8),
                },
            )
        )
    elif contact and not who["email_only"] and roll < 0.75:
        sms_at = finished + 3600
        recovered = rng.random() < 0.4
        recovery = Recovery(
            kind="link" if rng.random() < 0.6 else "ai_agent",
            sms_at=sms_at,
            recovered_at=sms_at + rng.randrange(DAY // 2, 12 * DAY) if recovered else None,
            as_job=rng.random() < 0.7,
        )
        if recovery.recovered_at is not None:
            at = recovery.recovered_at
            slot = (at // DAY + 1) * DAY + (10 - tenant.utc_offset_hours) * 3600
            events.append(
                (
                    at,
                    {
                        "modifiedOn": iso(at),
                        "lastCheckinDate": iso(at),
                        "lastStep": w.step("booked"),
                        "sessionOutcome": w.job if recovery.as_job else w.booking,
                        ("jobId" if recovery.as_job else "bookingId"): rng.randrange(10**7, 10**8),
                        "blockerType": None,
                        "blockerToBookAdditionalData": None,
                        "timeslotStart": iso(slot),
                        "timeslotEnd": iso(slot + 7200),
                        "sourceTracking": {"bookedFrom": "RecoveryLink" if recovery.kind == "link" else "AiAgent"},
                        "customer": {"id": who["id"], "locationId": who["locationId"]},
                    },
                )
            )
    return events, recovery


def _router_only_plan(rng: random.Random, w: v.World, session_id: str, created: int) -> SessionPlan:
    """A router session that never reached a scheduler: opened, maybe interacted, then left."""
    bot = rng.random() < 0.03
    channel = "direct" if bot else rng.weighted(CHANNEL_NAMES, CHANNEL_CUM_WEIGHTS)
    source, gbp_name, campaign_name = _source_tracking(rng, channel, "Router")
    interacted = not bot and rng.random() < 0.45
    finished = created + rng.randrange(30, 600)
    opened = _opened_record(w, session_id, created, None, True, _device(rng, bot), source, gbp_name, campaign_name)
    done = {
        "modifiedOn": iso(finished),
        "lastCheckinDate": iso(finished),
        "sessionOutcome": w.left_anonymously,
        "lastStep": w.step("interacted" if interacted else "opened"),
    }
    return SessionPlan(session_id, created, opened, [(finished, done)])


@dataclass(frozen=True)
class Window:
    """The API's created/modified filters (UTC), as epoch seconds for created and ISO strings for modified."""

    created_from: int | None = None
    created_before: int | None = None
    modified_from: str | None = None
    modified_before: str | None = None

    def day_span(self, epoch_ts: int, now: int) -> tuple[int, int]:
        start = self.created_from if self.created_from is not None else epoch_ts
        if self.modified_from is not None:
            # Nothing changes after MAX_LIFETIME, so older days cannot match a modified filter.
            modified_from = epoch_seconds(datetime.fromisoformat(self.modified_from))
            start = max(start, modified_from - MAX_LIFETIME)
        end = now + 1 if self.created_before is None else min(self.created_before, now + 1)
        return start, end

    def matches(self, created: int, modified: str) -> bool:
        return (
            (self.created_from is None or created >= self.created_from)
            and (self.created_before is None or created < self.created_before)
            and (self.modified_from is None or modified >= self.modified_from)
            and (self.modified_before is None or modified < self.modified_before)
        )

    def admits(self, plan: SessionPlan, now: int) -> dict | None:
        """The session's record at `now` if it exists then and matches the window, else None."""
        if plan.created > now:
            return None
        record = plan.at(now)
        return record if self.matches(plan.created, record["modifiedOn"]) else None
