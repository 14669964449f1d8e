"""Fault injection: the bad days of a real API, off by default, seeded and reproducible.

Each API request (not the token endpoint) first takes any fault queued with `FaultInjector.queue` (exact
sequences for tests: "five 503s, then success"), else rolls each kind's rate in a fixed order from a
random stream seeded by (seed, request number).
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from dataclasses import dataclass

KINDS = (
    "rate_limit",  # 429 with Retry-After
    "maintenance",  # 409
    "server_error",  # 500 / 502 / 503 with an ApiErrorResponse body
    "slow",  # the response is delayed by `slow_seconds`
    "malformed_json",  # 200 with a truncated JSON body
    "html_error",  # 502 with an HTML page, as a proxy in front of the API would send
    "token_expiry",  # every token issued so far stops working (401)
    "page_drift",  # a record moves to an earlier page while the client pages (a gap)
    "schema_drift",  # records carry a field the spec does not know and lack a nullable one
)


@dataclass(frozen=True)
class FaultRates:
    """Probability per request of each fault kind; all zero by default."""

    rate_limit: float = 0.0
    maintenance: float = 0.0
    server_error: float = 0.0
    slow: float = 0.0
    malformed_json: float = 0.0
    html_error: float = 0.0
    token_expiry: float = 0.0
    page_drift: float = 0.0
    schema_drift: float = 0.0
    seed: int = 0
    retry_after_seconds: int = 1
    slow_seconds: float = 2.0

    @classmethod
    def parse(cls, spec: str, **extra) -> FaultRates:
        """'rate_limit=0.1,server_error=0.05' -> FaultRates (for the CLI and environment)."""
        values: dict = dict(extra)
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, value = part.partition("=")
            if name not in KINDS:
                raise ValueError(f"unknown fault kind {name!r}; known: {', '.join(KINDS)}")
            values[name] = float(value)
        return cls(**values)


class FaultInjector:
    def __init__(self, rates: FaultRates | None = None):
        self.rates = rates or FaultRates()
        self._queued: deque[str] = deque()
        self._requests = 0
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()  # faults injected so far, by kind

    def queue(self, *kinds: str) -> None:
        """Force these faults, in order, on the next requests."""
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}")
        with self._lock:
            self._queued.extend(kinds)

    def next_fault(self) -> str | None:
        with self._lock:
            self._requests += 1
            if self._queued:
                kind = self._queued.popleft()
            else:
                rng = random.Random(f"faults/{self.rates.seed}/{self._requests}")
                kind = next((k for k in KINDS if rng.random() < getattr(self.rates, k)), None)
            if kind is not None:
                self.injected[kind] += 1
            return kind
