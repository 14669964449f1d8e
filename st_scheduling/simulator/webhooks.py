"""Scheduling Pro webhooks: CloudEvents for completed and abandoned-qualified sessions, HMAC-signed.

A session *completes* when it books a job or booking; it is *abandoned-qualified* when it is abandoned after
the customer left a phone or email. Each event carries the session as it was at that moment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import httpx

from st_scheduling.simulator.model import TenantModel, Window, iso
from st_scheduling.simulator.performance import is_booked

SIGNATURE_HEADER = "ST-Webhook-Signature"
COMPLETED = "tn.sp.session-completed"
ABANDONED_QUALIFIED = "tn.sp.session-abandoned-qualified"


def sign(body: bytes, secret: str) -> str:
    """The signature header's value: hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def events_between(model: TenantModel, since: int, until: int) -> Iterator[dict]:
    """CloudEvents for sessions whose completion or qualified abandonment happened in (since, until]."""
    window = Window(modified_from=iso(since + 1), modified_before=iso(until + 1))
    world = model.settings.world
    for tenant in model.tenants.values():
        for scheduler in model.schedulers(tenant, until):
            for plan, _ in model.records(tenant, scheduler, window, until):
                for at, _changes in plan.events:
                    if not since < at <= until:
                        continue
                    record = plan.at(at)
                    customer = record["customer"]
                    completed = record["lastStep"] == world.step("booked") and _changes.get("lastStep")
                    if is_booked(world, record) and completed:
                        kind = COMPLETED
                    elif record["sessionOutcome"] == world.abandoned and "lastStep" in _changes and (
                        customer["phone"] or customer["email"]
                    ):
                        kind = ABANDONED_QUALIFIED
                    else:
                        continue
                    yield {
                        "specversion": "1.0",
                        "id": f"{plan.id}:{at}",
                        "type": kind,
                        "time": iso(at),
                        "source": "https://webhooks.servicetitan.io",
                        "userassignedid": f"{kind}:{plan.id}:{at}",
                        "datacontenttype": "application/json",
                        "data": {"session": record, "tenantId": tenant.id, "tenantName": tenant.name},
                    }


def deliver(events: Iterator[dict], url: str, secret: str, client: httpx.Client) -> int:
    """POST each event to `url`, signed; returns how many the receiver accepted (2xx)."""
    accepted = 0
    for event in events:
        body = json.dumps(event, separators=(",", ":")).encode()
        response = client.post(url, content=body, headers={
            "Content-Type": "application/cloudevents+json", SIGNATURE_HEADER: sign(body, secret)})
        accepted += response.is_success
    return accepted
