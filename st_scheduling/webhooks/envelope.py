"""What the receiver accepts: a signed CloudEvents 1.0 JSON envelope of one of Scheduling Pro's two event types.

Every refusal is a `Refused` carrying the HTTP status and a reason built only from names and counts, never from
the body: a refused delivery may be a forgery, and its reason reaches the log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

COMPLETED = "tn.sp.session-completed"
ABANDONED_QUALIFIED = "tn.sp.session-abandoned-qualified"
EVENT_TYPES = frozenset({COMPLETED, ABANDONED_QUALIFIED})
MAX_ID_CHARS = 256  # every accepted userassignedid is kept in memory for deduplication


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def signature(body: bytes, key: str, fmt: str) -> str:
    """The header value ServiceTitan would send for `body`, in `fmt` (config.SIGNATURE_FORMATS)."""
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    encoded = digest.hex() if fmt.endswith("hex") else base64.b64encode(digest).decode()
    return f"sha256={encoded}" if fmt.startswith("sha256=") else encoded


def verify(body: bytes, header: str | None, key: str, fmt: str) -> None:
    """Refuses (401) a delivery without the signature header or whose signature is not the body's. The comparison
    takes the same time wherever the first wrong character is, so a forger learns nothing from timing."""
    if not header:
        raise Refused(401, "unsigned: the signature header is missing")
    if not hmac.compare_digest(header.strip().encode(), signature(body, key, fmt).encode()):
        raise Refused(401, "forged: the signature does not match the body")


@dataclass(frozen=True)
class Event:
    userassignedid: str
    type: str
    time: datetime
    tenant_id: int
    document: dict  # the whole envelope, as received


def parse(body: bytes, now: datetime, max_age: timedelta) -> Event:
    """The event in `body`, or Refused: 400 for what is not a Scheduling Pro CloudEvent, 422 for a well-formed one
    this receiver must not take (another event type, or older than `max_age`: a replayed capture)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refused(400, "malformed: the body is not JSON") from None
    if not isinstance(document, dict):
        raise Refused(400, "malformed: the body is not a JSON object")
    if document.get("specversion") != "1.0":
        raise Refused(400, "malformed: specversion is not 1.0")
    missing = [
        name
        for name in ("id", "type", "source", "userassignedid", "time")
        if not isinstance(document.get(name), str) or not document[name]
    ]
    if missing:
        raise Refused(400, f"malformed: {', '.join(missing)} missing or not a string")
    if len(document["userassignedid"]) > MAX_ID_CHARS:
        raise Refused(400, f"malformed: userassignedid longer than {MAX_ID_CHARS} characters")
    time = _instant(document["time"])
    if time is None:
        raise Refused(400, "malformed: time is not an RFC 3339 date-time")
    data = document.get("data")
    session = data.get("session") if isinstance(data, dict) else None
    tenant = data.get("tenantId") if isinstance(data, dict) else None
    if not isinstance(session, dict) or type(tenant) is not int or tenant <= 0:
        raise Refused(400, "malformed: data must hold a session object and a positive integer tenantId")
    if not isinstance(session.get("id"), str) or _instant(session.get("createdOn")) is None:
        raise Refused(400, "malformed: the session has no string id or no createdOn date-time")
    if document["type"] not in EVENT_TYPES:
        raise Refused(422, "wrong type: not a Scheduling Pro session event")
    if now - time > max_age:
        raise Refused(422, f"too old: the event happened more than {max_age.total_seconds() / 3600:g} h ago")
    return Event(document["userassignedid"], document["type"], time, tenant, document)


def _instant(value: object) -> datetime | None:
    """An RFC 3339 date-time with its offset (`Z` or `±hh:mm`) as an aware datetime; None for anything else."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
