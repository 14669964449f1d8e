"""Asking again, and not asking too often.

Which answers a retry may cure (429, 409, 5xx, deadlines, connection errors, unreadable bodies), how long to wait
before the next attempt (exponential backoff with jitter, or what Retry-After says), within bounded attempts and
a time budget per call; what the client did, counted for run metadata; and the rate limit that keeps a tenant
under the API's 60 calls per second.
"""

from __future__ import annotations

import email.utils
import http
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import httpx
import orjson

from st_scheduling.servicetitan.errors import (
    ApiResponseError,
    ConfigurationError,
    MalformedResponseError,
    RetriesExhaustedError,
    safe_token,
)
from st_scheduling.servicetitan.memory import Body
from st_scheduling.servicetitan.transport import Response, Transient

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0  # also caps how long a Retry-After is honoured
    max_total_seconds: float = 300.0  # one call, across all its attempts and waits


@dataclass
class CallStats:
    """What a client did, for run metadata."""

    calls: int = 0
    retries: int = 0
    token_fetches: int = 0
    refetched_windows: int = 0
    problems: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, **increments: int) -> None:
        with self._lock:
            for name, n in increments.items():
                setattr(self, name, getattr(self, name) + n)

    def problem(self, kind: str) -> None:
        with self._lock:
            self.problems[kind] += 1


class RateLimiter:
    """At most `calls` requests per `period` seconds (a sliding window), whichever thread sends them. Each client
    has its own, and each client is one tenant's: so each tenant has its own budget."""

    def __init__(self, calls: int, period: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.calls, self.period, self.clock, self.sleep = calls, period, clock, sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self.clock()
                while self._sent and now - self._sent[0] >= self.period:
                    self._sent.popleft()
                if len(self._sent) < self.calls:
                    self._sent.append(now)
                    return
                wait = self.period - (now - self._sent[0])
            self.sleep(wait)


class Retrying:
    """Calls made under one `RetryPolicy`, counted in `stats`; notes the server's clock as answers come back."""

    def __init__(
        self,
        policy: RetryPolicy,
        request_seconds: float,
        stats: CallStats,
        *,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        jitter: Callable[[], float],
    ):
        self.policy, self.request_seconds, self.stats = policy, request_seconds, stats
        self.sleep, self.clock, self.wall_clock, self.jitter = sleep, clock, wall_clock, jitter
        self.server_time: datetime | None = None  # from the latest answer's Date header

    def call(
        self, path: str, page: int | None, send: Callable[[float], Response], parse: Callable[[Body], T]
    ) -> tuple[Response, T | None, int]:
        """Send and parse, retrying transient failures with exponential backoff and jitter, within the call's
        budget. Anything else is the server's answer and would come back the same, so it is raised at once.

        `send` gets the seconds its request may take: the request deadline, or what is left of the budget when
        that is less, so the call as a whole ends within its budget.

        Returns a response of status < 300 with its parsed body, or a 401 (which the caller handles) with
        None, and the attempts made; raises for everything else.
        """
        started = self.clock()
        policy = self.policy
        where = path if page is None else f"{path} page {page}"
        for attempt in range(1, policy.max_attempts + 1):
            self.stats.count(calls=1)
            left = policy.max_total_seconds - (self.clock() - started)
            try:
                response = _check(send(max(0.0, min(self.request_seconds, left))), where, self.wall_clock)
                self._note_server_time(response)
                return response, (parse(response.body) if response.status != 401 else None), attempt
            except MalformedResponseError as err:
                if not err.retryable:
                    raise
                problem = Transient(err.problem, kind="malformed")
            except httpx.LocalProtocolError:
                # Raised before anything is sent; h11's message quotes the offending header value.
                raise ConfigurationError(
                    f"{where}: the request is not valid HTTP and was not sent; check "
                    "ST_APP_KEY for spaces or line breaks"
                ) from None
            except (httpx.TimeoutException, httpx.TransportError) as err:
                problem = Transient(
                    f"{type(err).__name__} talking to the API",
                    kind="timeout" if isinstance(err, httpx.TimeoutException) else "transport",
                )
            except Transient as transient:
                problem = transient
                if problem.kind == "deadline" and left < self.request_seconds:
                    problem.problem += f" (what was left of the call's {policy.max_total_seconds:g} s budget)"
            self.stats.problem(problem.kind)
            delay = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1)) * (0.5 + self.jitter() / 2)
            if problem.retry_after is not None:
                delay = min(policy.max_delay, max(problem.retry_after, 0.0))
            if attempt == policy.max_attempts or self.clock() - started + delay > policy.max_total_seconds:
                if problem.kind == "malformed":
                    raise MalformedResponseError(path, page, problem.problem, retryable=True) from None
                raise RetriesExhaustedError(where, attempt, problem.problem)
            self.stats.count(retries=1)
            self.sleep(delay)
        raise AssertionError("unreachable")

    def _note_server_time(self, response: Response) -> None:
        try:
            self.server_time = email.utils.parsedate_to_datetime(response.headers["Date"]).astimezone(UTC)
        except (KeyError, TypeError, ValueError):
            pass


def _check(response: Response, path: str, wall_clock: Callable[[], float]) -> Response:
    """Raises Transient for what a retry may cure and ApiResponseError for the rest; never quotes the body."""
    status = response.status
    if status == 429:
        raise Transient("429 rate limited", _retry_after(response, wall_clock))
    if status == 409:
        raise Transient("409 maintenance", _retry_after(response, wall_clock))
    if status >= 500:
        raise Transient(f"{status} server error ({_content_type(response)}, {len(response.body)} bytes)")
    if status == 401 or status < 300:
        if status < 300 and "html" in _content_type(response):
            raise Transient("an HTML page where JSON was expected", kind="malformed")
        return response
    if 300 <= status < 400:
        raise ApiResponseError(
            path, status, f"{_reason(status)} (a redirect: refused, never followed; check ST_ENVIRONMENT)"
        )
    fields, trace = [], None
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        fields = list(body.get("errors") or {}) if isinstance(body.get("errors"), dict) else []
        trace = safe_token(body.get("traceId"))
    raise ApiResponseError(path, status, _reason(status), fields, trace)


def _retry_after(response: Response, wall_clock: Callable[[], float]) -> float | None:
    """Retry-After in seconds from now, whether it gives seconds or an HTTP date (read on `wall_clock`)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.timestamp() - wall_clock()


def _content_type(response: Response) -> str:
    return response.headers.get("Content-Type", "none").split(";")[0].strip().lower() or "none"


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "error"
