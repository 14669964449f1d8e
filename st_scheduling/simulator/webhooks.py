"""Scheduling Pro webhooks: CloudEvents for completed and abandoned-qualified sessions, HMAC-signed.

A session *completes* when it books a job or booking; it is *abandoned-qualified* when it is abandoned after
the customer left a phone or email. Each event carries the session as it was at that moment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

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
                    elif (
                        record["sessionOutcome"] == world.abandoned
                        and "lastStep" in _changes
                        and (customer["phone"] or customer["email"])
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


# ServiceTitan retries a delivery answered with anything but 2xx after these many seconds, then gives up: the event can
# only be resent by hand from the developer portal.
RETRY_DELAYS = (10.0, 30.0, 60.0, 300.0)
FAULT_KINDS = ("duplicate", "reorder", "bad_signature")


@dataclass(frozen=True)
class SenderFaults:
    """The sender's faults, seeded: `duplicate` and `bad_signature` are shares of deliveries (a second delivery of
    the event under a new id; a signature made with another key), `reorder` the share of batches sent shuffled."""

    duplicate: float = 0.0
    reorder: float = 0.0
    bad_signature: float = 0.0
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> SenderFaults:
        """`duplicate=0.1,reorder=1,bad_signature=0.05`; an empty text is no fault."""
        rates = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            kind, _, rate = part.partition("=")
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown webhook fault {kind!r} (kinds: {', '.join(FAULT_KINDS)})")
            rates[kind] = float(rate)
        return cls(**rates)


@dataclass
class _Delivery:
    event: dict
    attempts: int = 0
    due: float = 0.0


@dataclass
class Sender:
    """Delivers events as ServiceTitan does: each POSTed signed, one answered with anything but 2xx (or not
    answered) again after each of `delays`, then given up. `retry_due` sends the retries whose time has come."""

    url: str
    secret: str
    client: httpx.Client
    faults: SenderFaults = field(default_factory=SenderFaults)
    delays: tuple[float, ...] = RETRY_DELAYS
    clock: Callable[[], float] = time.monotonic
    accepted: int = 0
    attempts: int = 0
    given_up: list[dict] = field(default_factory=list)
    _pending: list[_Delivery] = field(default_factory=list)
    _random: random.Random = field(init=False)

    def __post_init__(self):
        self._random = random.Random(self.faults.seed)

    def send(self, events: Iterable[dict]) -> None:
        batch = []
        for event in events:
            batch.append(event)
            if self._random.random() < self.faults.duplicate:
                batch.append({**event, "id": f"{event['id']}:again:{self._random.getrandbits(32):08x}"})
        if self._random.random() < self.faults.reorder:
            self._random.shuffle(batch)
        for event in batch:
            self._attempt(_Delivery(event))

    def retry_due(self) -> None:
        now = self.clock()
        due = [d for d in self._pending if d.due <= now]
        self._pending = [d for d in self._pending if d.due > now]
        for delivery in due:
            self._attempt(delivery)

    @property
    def waiting(self) -> int:
        """Deliveries waiting for their next retry."""
        return len(self._pending)

    def next_due(self) -> float | None:
        return min((d.due for d in self._pending), default=None)

    def _attempt(self, delivery: _Delivery) -> None:
        body = json.dumps(delivery.event, separators=(",", ":")).encode()
        key = self.secret + "-wrong" if self._random.random() < self.faults.bad_signature else self.secret
        self.attempts += 1
        try:
            ok = self.client.post(
                self.url,
                content=body,
                headers={"Content-Type": "application/cloudevents+json", SIGNATURE_HEADER: sign(body, key)},
            ).is_success
        except httpx.HTTPError:
            ok = False
        if ok:
            self.accepted += 1
        elif delivery.attempts < len(self.delays):
            delivery.due = self.clock() + self.delays[delivery.attempts]
            delivery.attempts += 1
            self._pending.append(delivery)
        else:
            self.given_up.append(delivery.event)
