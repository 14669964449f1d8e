"""The simulator's vocabulary — SYNTHETIC.

ServiceTitan does not publish the values its API returns for `lastStep`, `sessionOutcome`, `blockerType`,
`category`, `bookedFrom` and `schedulerStatus`. The strings below are invented for the simulator and live
only here; the platform maps them to milestones and outcomes in one place of its own
(`st_scheduling/warehouse/vocabulary.py`). Pointing the platform at the live API may need that map updated.
"""

# lastStep values, in funnel order: STEPS[i] is the step at which milestone i was reached
# (opened, zipcode, interacted, issue, schedule, customer, details, booked).
STEPS = (
    "WelcomeViewed",
    "ZipCodeEntered",
    "ServiceTypeChosen",
    "IssueDescribed",
    "TimeslotChosen",
    "ContactInfoEntered",
    "DetailsConfirmed",
    "BookingSubmitted",
)
MILESTONES = ("opened", "zipcode", "interacted", "issue", "schedule", "customer", "details", "booked")
OPENED, ZIPCODE, INTERACTED, ISSUE, SCHEDULE, CUSTOMER, DETAILS, BOOKED = range(8)

OUTCOME_JOB = "JobBooked"
OUTCOME_BOOKING = "BookingRequested"
OUTCOME_ABANDONED = "Abandoned"
OUTCOME_ABANDONED_TO_BOOKING = "AbandonedSentToBooking"
OUTCOME_ABANDONED_TO_LEAD = "AbandonedSentToLead"
ABANDONED_OUTCOMES = frozenset({OUTCOME_ABANDONED, OUTCOME_ABANDONED_TO_BOOKING, OUTCOME_ABANDONED_TO_LEAD})

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
