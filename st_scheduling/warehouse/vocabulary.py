"""The platform's reading of Scheduling Pro's vocabulary — the one place it is mapped.

ServiceTitan does not publish the values of `lastStep` and `sessionOutcome`; these maps follow the
simulator's synthetic vocabulary. When the live API's values differ, change them here and only here:
the marts read these maps (as DuckDB tables), and the raw checks warn about any value not listed.
"""

MILESTONES = ("opened", "zipcode", "interacted", "issue", "schedule", "customer", "details", "booked")

# lastStep -> index into MILESTONES (the furthest milestone the session reached)
STEP_MILESTONE = {
    "WelcomeViewed": 0,
    "ZipCodeEntered": 1,
    "ServiceTypeChosen": 2,
    "IssueDescribed": 3,
    "TimeslotChosen": 4,
    "ContactInfoEntered": 5,
    "DetailsConfirmed": 6,
    "BookingSubmitted": 7,
}

# sessionOutcome -> (is an abandonment, what the abandoned session was sent to: booking | lead | None)
OUTCOMES = {
    "JobBooked": (False, None),
    "BookingRequested": (False, None),
    "Abandoned": (True, None),
    "AbandonedSentToBooking": (True, "booking"),
    "AbandonedSentToLead": (True, "lead"),
}
