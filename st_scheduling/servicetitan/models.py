"""The record shapes of the Scheduling Pro v2 spec: field name -> type, nested objects as dicts.

Written from the spec (`spec/scheduling-pro-v2.openapi.json` beside this module); a test keeps the two in step. The
client checks records against these shapes, and the warehouse derives its typed raw columns from them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

# A record as the API's JSON gives it; `first_type_error` checks its values against a shape.
Record: TypeAlias = dict[str, Any]
# Field name -> one of the type names below, or the shape of a nested object.
Shape: TypeAlias = dict[str, "str | Shape"]

STRING, DATETIME, INT, BOOL, FLOAT, STRING_LIST, JSON = "string", "datetime", "int", "bool", "float", "string[]", "json"

ADDRESS: Shape = dict.fromkeys(("street", "unit", "city", "state", "zip", "country"), STRING)

CUSTOMER: Shape = {
    "isNewCustomer": BOOL,
    "id": INT,
    "firstName": STRING,
    "lastName": STRING,
    "email": STRING,
    "phone": STRING,
    "locationId": INT,
    "isNewLocation": BOOL,
    "address": ADDRESS,
    "browserName": STRING,
    "browserVersion": STRING,
    "cpuArchitecture": STRING,
    "deviceModel": STRING,
    "deviceType": STRING,
    "deviceVendor": STRING,
    "engineName": STRING,
    "engineVersion": STRING,
    "ipAddress": STRING,
    "isBot": BOOL,
    "osName": STRING,
    "osVersion": STRING,
    "userAgent": STRING,
}

SOURCE_TRACKING: Shape = {
    "isRWGSession": BOOL,
    **dict.fromkeys(
        (
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
        ),
        STRING,
    ),
}

# SchedulerSessionResponse and RouterSessionResponse have the same fields.
SESSION: Shape = {
    "id": STRING,
    "createdOn": DATETIME,
    "modifiedOn": DATETIME,
    "lastCheckinDate": DATETIME,
    "sessionOutcome": STRING,
    "schedulerId": STRING,
    "jobId": INT,
    "bookingId": INT,
    "leadId": INT,
    "gbpName": STRING,
    "timeslotStart": DATETIME,
    "timeslotEnd": DATETIME,
    "category": STRING,
    "jobTypeId": INT,
    "businessUnitId": INT,
    "customer": CUSTOMER,
    "zoneId": INT,
    "customerResponses": STRING_LIST,
    "notes": STRING,
    "sourceTracking": SOURCE_TRACKING,
    "mobileNotificationOptIn": BOOL,
    "blockerType": STRING,
    "blockerToBookAdditionalData": STRING,
    "lastStep": STRING,
    "dispatchFeeQuoted": STRING,
    "isLocationTakeover": BOOL,
    "customOptIn": BOOL,
    "marketingOptIn": BOOL,
    "membershipInterest": STRING,
    "paymentInfoCaptured": BOOL,
    "externalId": STRING,
    "recurringServiceId": INT,
    "campaignName": STRING,
}

SCHEDULER: Shape = {
    "id": STRING,
    "name": STRING,
    "companyName": STRING,
    "createdOn": DATETIME,
    "modifiedOn": DATETIME,
    "schedulerStatus": STRING,
    "dataApiKey": STRING,
    "isDefault": BOOL,
    "mode": STRING,
    "quickLaunchLink": STRING,
}

MILESTONE_FREQUENCY_COUNT: Shape = dict.fromkeys(
    ("opened", "zipcode", "interacted", "issue", "schedule", "customer", "details", "booked", "abandoned"), INT
)

SCHEDULER_PERFORMANCE: Shape = {
    "id": STRING,
    "schedulerName": STRING,
    "brandName": STRING,
    "schedulerCompletionRate": FLOAT,
    "openedCompletionRate": FLOAT,
    **dict.fromkeys(
        (
            "totalCustomerContactsCaptured",
            "totalJobsCreated",
            "totalBookingsCreated",
            "totalAbandonedSessionsSentToBookings",
            "totalAbandonedSessionsSentToLeads",
            "totalBookingsRecoveredFromAbandonedSessionsRecoveryLink",
            "totalJobsRecoveredFromAbandonedSessionsRecoveryLink",
            "totalBookingsRecoveredFromAbandonedSessionsAiAgent",
            "totalJobsRecoveredFromAbandonedSessionsAiAgent",
            "totalSmsSentToRecoverAbandonedSessionRecoveryLink",
            "totalSmsSentToRecoverAbandonedSessionAiAgent",
            "totalBookingsRecoveredFromAbandonedSessions",
            "totalJobsRecoveredFromAbandonedSessions",
            "totalMembershipInterest",
            "totalSessions",
        ),
        INT,
    ),
    "milestoneFrequencyCount": MILESTONE_FREQUENCY_COUNT,
}

ROUTER_PERFORMANCE: Shape = {
    "id": STRING,
    "openedCount": INT,
    "interactedCount": INT,
    "sessionCountBySchedulerId": JSON,  # [{schedulerId, openedCount}]
}

_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    STRING: (lambda v: isinstance(v, str), "string"),
    DATETIME: (lambda v: isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] == "T", "date-time string"),
    INT: (lambda v: isinstance(v, int) and not isinstance(v, bool), "integer"),
    BOOL: (lambda v: isinstance(v, bool), "boolean"),
    FLOAT: (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "number"),
    STRING_LIST: (lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v), "array of strings"),
    JSON: (lambda v: isinstance(v, list | dict), "array or object"),
}


def first_type_error(record: Record, shape: Shape, prefix: str = "") -> tuple[str, str, object] | None:
    """(field path, expected type, value) of the first field whose type the spec does not allow, else None.

    Missing and null fields are allowed (tolerant reading); fields the spec does not know are ignored here.
    """
    for name, kind in shape.items():
        value = record.get(name)
        if value is None:
            continue
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                return prefix + name, "object", value
            if found := first_type_error(value, kind, f"{prefix}{name}."):
                return found
            continue
        check, expected = _CHECKS[kind]
        if not check(value):
            return prefix + name, expected, value
    return None


# Without these a record cannot be keyed, windowed or deduplicated: missing or null is an error, never a drop.
KEY_FIELDS = ("id", "createdOn", "modifiedOn")


def key_fields(shape: Shape) -> tuple[str, ...]:
    return tuple(name for name in KEY_FIELDS if name in shape)
