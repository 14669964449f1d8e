"""The simulator's vocabularies — SYNTHETIC.

ServiceTitan does not publish the values its API returns for `lastStep`, `sessionOutcome`, `blockerType`,
`category`, `bookedFrom` and `schedulerStatus`. The strings below are invented for the simulator and live
only here; the platform reads `lastStep` and `sessionOutcome` through its vocabulary file
(`st_scheduling/vocabulary/`), whose shipped default maps the `DEFAULT` world. The `ALT` world is there to
prove the platform against a vocabulary and definitions it was not written for.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    """One synthetic vocabulary, and the definitions the simulator's /performance applies with it."""

    name: str
    milestones: tuple[str, ...]  # funnel order
    steps: tuple[str, ...]  # steps[i]: the lastStep value of milestone i
    job: str
    booking: str
    abandoned: str
    to_booking: str
    to_lead: str
    in_progress: str | None  # the outcome of a session still open (None: no outcome yet)
    left_anonymously: str  # the outcome of a session left before the customer gave contact details
    name_asked_at: str  # the milestone whose step asks for the customer's name (phone and email: customer's)
    bots_in_milestones: bool
    bots_fill_the_form: bool  # bots walk the form as people do (and may book), rather than leave at opened
    bots_in_totals: bool  # jobs, bookings, sent-to counts and contacts count bot sessions too
    leads_in_abandoned: bool  # the abandoned count includes the abandoned sessions sent to leads
    contacts: str  # contacts captured: "distinct_names", or "customer_step" (sessions that reached it)
    scheduler_rate_of: str  # schedulerCompletionRate = booked ÷ this milestone
    opened_rate_of: str
    rate_decimals: int | None  # /performance rounds its rates to this many decimals

    def at(self, milestone: str) -> int:
        return self.milestones.index(milestone)

    def step(self, milestone: str) -> str:
        return self.steps[self.at(milestone)]

    @property
    def abandonments(self) -> frozenset[str]:
        return frozenset({self.abandoned, self.to_booking, self.to_lead})


# The shipped vocabulary file maps this world.
DEFAULT = World(
    "default",
    milestones=("opened", "zipcode", "interacted", "issue", "schedule", "customer", "details", "booked"),
    steps=(
        "WelcomeViewed",
        "ZipCodeEntered",
        "ServiceTypeChosen",
        "IssueDescribed",
        "TimeslotChosen",
        "ContactInfoEntered",
        "DetailsConfirmed",
        "BookingSubmitted",
    ),
    job="JobBooked",
    booking="BookingRequested",
    abandoned="Abandoned",
    to_booking="AbandonedSentToBooking",
    to_lead="AbandonedSentToLead",
    in_progress=None,
    left_anonymously="Abandoned",
    name_asked_at="customer",
    bots_in_milestones=False,
    bots_fill_the_form=False,
    bots_in_totals=False,
    leads_in_abandoned=True,
    contacts="distinct_names",
    scheduler_rate_of="zipcode",
    opened_rate_of="opened",
    rate_decimals=None,
)
# A second world the platform was not written for: other spellings, interacted before zipcode, open sessions
# marked InProgress (and never closed when the visitor left before giving contact details), the name asked at the
# details step (phone and email at the customer step), leads as their own outcome and not counted as abandoned,
# bots that fill the form and are counted in milestones, jobs, bookings, leads and contacts, contacts counted as
# the sessions that reached the customer step rather than distinct names, the two rates the other way round, and
# rates rounded to 4 decimals. Served by `serve --vocabulary alt`.
ALT = World(
    "alt",
    milestones=("opened", "interacted", "zipcode", "issue", "schedule", "customer", "details", "booked"),
    steps=(
        "start",
        "service-picked",
        "zip-checked",
        "problem-described",
        "slot-held",
        "contact-given",
        "review-done",
        "submitted",
    ),
    job="Scheduled",
    booking="Requested",
    abandoned="DroppedOff",
    to_booking="HandedToCsr",
    to_lead="Lead",
    in_progress="InProgress",
    left_anonymously="InProgress",
    name_asked_at="details",
    bots_in_milestones=True,
    bots_fill_the_form=True,
    bots_in_totals=True,
    leads_in_abandoned=False,
    contacts="customer_step",
    scheduler_rate_of="opened",
    opened_rate_of="interacted",
    rate_decimals=4,
)
WORLDS = {world.name: world for world in (DEFAULT, ALT)}

BLOCKERS = ("OutsideServiceArea", "NoAvailability", "JobTypeNotOnline", "PriceShopping", "NeedsCallback")

# (category, business unit id, job type ids)
CATEGORIES = (
    ("HVAC - Cooling", 1101, (51001, 51002, 51003)),
    ("HVAC - Heating", 1102, (51011, 51012)),
    ("HVAC - Maintenance", 1103, (51021,)),
    ("Plumbing - Drains", 1201, (52001, 52002)),
    ("Plumbing - Water Heater", 1202, (52011, 52012)),
    ("Plumbing - Leak", 1203, (52021,)),
    ("Electrical - Panel", 1301, (53001,)),
    ("Electrical - Outlets & Lighting", 1302, (53011, 53012)),
)

BOOKED_FROM = ("Website", "GoogleBusinessProfile", "ReserveWithGoogle", "CallCenter", "RecoveryLink", "AiAgent")

SCHEDULER_STATUS_ACTIVE = "Active"
SCHEDULER_STATUS_PAUSED = "Paused"

MEMBERSHIP_INTEREST = ("Interested", "NotInterested", "AlreadyMember")
