"""The Scheduling Pro API client: OAuth2 client credentials, paging, retries, rate limiting, tolerant reading."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import orjson

from st_scheduling.servicetitan import models
from st_scheduling.servicetitan.errors import (
    ApiResponseError,
    AuthenticationError,
    ConfigurationError,
    IncompleteWindowError,
    MalformedResponseError,
    RecordTypeError,
    RetriesExhaustedError,
)

API_PATH = "/schedulingpro/v2"
ENVIRONMENTS = {
    "production": ("https://api.servicetitan.io", "https://auth.servicetitan.io/connect/token"),
    "integration": ("https://api-integration.servicetitan.io", "https://auth-integration.servicetitan.io/connect/token"),
}
MAX_PAGE_SIZE = 5000

# httpx logs every request URL at INFO; keep request lines out of logs entirely.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Endpoints:
    api_base: str  # scheme://host, without the /schedulingpro/v2 path
    token_url: str

    @classmethod
    def resolve(cls, environment: str, token_url: str | None = None) -> Endpoints:
        """`production`, `integration`, or a base URL of any server speaking the API (e.g. the simulator)."""
        if environment in ENVIRONMENTS:
            api, default_token_url = ENVIRONMENTS[environment]
        elif environment.startswith(("http://", "https://")):
            api = environment.rstrip("/").removesuffix(API_PATH)
            default_token_url = f"{api}/connect/token"
        else:
            raise ConfigurationError(
                f"ST_ENVIRONMENT={environment!r} is not one of simulator, integration, production or an http(s) URL"
            )
        return cls(api, token_url or default_token_url)


@dataclass(frozen=True, repr=False)
class Credentials:
    client_id: str
    client_secret: str
    app_key: str

    def __repr__(self) -> str:
        return f"Credentials(client_id={self.client_id!r}, client_secret=***, app_key=***)"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0  # also caps how long a Retry-After is honoured
    max_total_seconds: float = 300.0


@dataclass
class CallStats:
    """What a client did, for run metadata."""

    calls: int = 0
    retries: int = 0
    token_fetches: int = 0
    refetched_windows: int = 0
    totals: dict[str, int] = field(default_factory=dict)  # path -> totalCount of the last window read
    problems: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass(frozen=True)
class Page:
    number: int
    records: list[dict]
    has_more: bool
    total_count: int | None


class RateLimiter:
    """At most `calls` requests per `period` seconds for each tenant (a sliding window)."""

    def __init__(self, calls: int, period: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.calls, self.period, self.clock, self.sleep = calls, period, clock, sleep
        self._sent: dict[object, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def acquire(self, key: object) -> None:
        while True:
            with self._lock:
                now = self.clock()
                sent = self._sent[key]
                while sent and now - sent[0] >= self.period:
                    sent.popleft()
                if len(sent) < self.calls:
                    sent.append(now)
                    return
                wait = self.period - (now - sent[0])
            self.sleep(wait)


class _Transient(Exception):
    def __init__(self, problem: str, retry_after: float | None = None, kind: str | None = None):
        self.problem, self.retry_after = problem, retry_after
        self.kind = kind or problem.split(" ")[0]


class ServiceTitanClient:
    """One pooled httpx client for one run. Use as a context manager."""

    def __init__(
        self,
        endpoints: Endpoints,
        credentials: Credentials,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 100.0,
        retry: RetryPolicy | None = None,
        rate_limit_per_second: int = 60,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        token_refresh_margin: float = 60.0,
    ):
        if not (credentials.client_id and credentials.client_secret and credentials.app_key):
            raise ConfigurationError("client id, client secret and app key are all required")
        self.endpoints, self._credentials = endpoints, credentials
        self.retry = retry or RetryPolicy()
        self.sleep, self.clock, self.wall_clock, self.jitter = sleep, clock, wall_clock, jitter
        self.stats = CallStats()
        self._http = httpx.Client(transport=transport, timeout=httpx.Timeout(timeout, connect=10.0),
                                  limits=httpx.Limits(max_connections=8, max_keepalive_connections=8))
        self._limiter = RateLimiter(rate_limit_per_second, 1.0, clock, sleep)
        self._margin = token_refresh_margin
        self._token: str | None = None
        self._token_expires = 0.0
        self.server_time: datetime | None = None  # from the latest response's Date header
        self._token_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ServiceTitanClient(api={self.endpoints.api_base!r}, client_id={self._credentials.client_id!r})"

    def __enter__(self) -> ServiceTitanClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- endpoints ------------------------------------------------------------------------------------
    def schedulers(self, tenant: int, **window: datetime | None) -> Iterator[list[dict]]:
        """Every scheduler of a tenant (optionally filtered by created/modified window), complete and deduped."""
        return self.collect(f"/tenant/{tenant}/schedulers", models.SCHEDULER, tenant, **window)

    def scheduler_sessions(self, tenant: int, scheduler_id: str, **window: datetime | None) -> Iterator[list[dict]]:
        """A scheduler's sessions in a created/modified window, complete and deduped, in batches."""
        return self.collect(f"/tenant/{tenant}/schedulers/{scheduler_id}/sessions", models.SESSION, tenant, **window)

    def router_sessions(self, tenant: int, router_id: str, **window: datetime | None) -> Iterator[list[dict]]:
        return self.collect(f"/tenant/{tenant}/routers/{router_id}/sessions", models.SESSION, tenant, **window)

    def scheduler_performance(self, tenant: int, scheduler_id: str, start: datetime, end: datetime) -> dict:
        """The API's performance numbers for sessions created in [start, end)."""
        return self._performance(f"/tenant/{tenant}/schedulers/{scheduler_id}/performance",
                                 models.SCHEDULER_PERFORMANCE, tenant, start, end)

    def router_performance(self, tenant: int, router_id: str, start: datetime, end: datetime) -> dict:
        return self._performance(f"/tenant/{tenant}/routers/{router_id}/performance",
                                 models.ROUTER_PERFORMANCE, tenant, start, end)

    # -- paging -----------------------------------------------------------------------------------------
    def pages(self, path: str, shape: dict, tenant: int, params: dict, page_size: int = MAX_PAGE_SIZE) -> Iterator[Page]:
        """Pages from 1 until hasMore is false, each record checked against the spec's types."""
        number = 1
        while True:
            query = {**params, "page": number, "pageSize": page_size}
            if number == 1:
                query["includeTotal"] = "true"
            body = self._get(path, tenant, query, page=number)
            try:
                records, has_more = body["data"], body["hasMore"]
                if not isinstance(records, list) or not isinstance(has_more, bool):
                    raise TypeError
            except (KeyError, TypeError):
                raise MalformedResponseError(path, number, str(body)[:200])
            if not all(isinstance(record, dict) for record in records):
                raise MalformedResponseError(path, number, str(records)[:200])
            if not models.page_conforms(records, shape):
                for record in records:
                    if problem := models.first_type_error(record, shape):
                        raise RecordTypeError(path, number, record.get("id"), *problem)
            yield Page(number, records, has_more, body.get("totalCount"))
            if not has_more or not records:
                return
            number += 1

    def collect(self, path: str, shape: dict, tenant: int, *, max_passes: int = 3,
                **window: datetime | None) -> Iterator[list[dict]]:
        """Batches of records of a window, each id once at its greatest modifiedOn seen.

        The API's order is unspecified and records change while we page, so a record can slip to a page
        already read. When the distinct ids fall short of the first page's totalCount the window is read
        again (yielding only records new or newer than before), at most `max_passes` times.
        """
        params = _window_params(window)
        seen: dict[str, str] = {}
        total = 0
        for attempt in range(1, max_passes + 1):
            total = None
            for page in self.pages(path, shape, tenant, params):
                if total is None:
                    total = page.total_count
                fresh = [r for r in page.records if seen.get(r["id"], "") < r["modifiedOn"]]
                for record in fresh:
                    seen[record["id"]] = record["modifiedOn"]
                if fresh:
                    yield fresh
            if total is not None:
                self.stats.totals[path] = total
            if total is None or len(seen) >= total:
                return
            self.stats.refetched_windows += 1
        raise IncompleteWindowError(path, len(seen), total or 0, max_passes)

    def _performance(self, path: str, shape: dict, tenant: int, start: datetime, end: datetime) -> dict:
        body = self._get(path, tenant, {"sessionCreatedOnOrAfter": _iso(start), "sessionCreatedBefore": _iso(end)})
        if not isinstance(body, dict):
            raise MalformedResponseError(path, None, str(body)[:200])
        if problem := models.first_type_error(body, shape):
            raise RecordTypeError(path, None, body.get("id"), *problem)
        return body

    # -- HTTP -------------------------------------------------------------------------------------------
    def _get(self, path: str, tenant: int, params: dict, page: int | None = None) -> object:
        url = f"{self.endpoints.api_base}{API_PATH}{path}"
        refreshed = False
        while True:
            token = self._access_token()
            response, body = self._with_retries(path, page, lambda: self._send_api(url, tenant, params, token))
            if response.status_code != 401:
                return body
            if refreshed:
                raise AuthenticationError(f"{path} refused a freshly issued token (401): check ST_APP_KEY")
            self._invalidate(token)
            refreshed = True

    def _send_api(self, url: str, tenant: int, params: dict, token: str) -> httpx.Response:
        self._limiter.acquire(tenant)
        headers = {"Authorization": f"Bearer {token}", "ST-App-Key": self._credentials.app_key}
        return self._http.get(url, params=params, headers=headers)

    def _with_retries(
        self, path: str, page: int | None, send: Callable[[], httpx.Response]
    ) -> tuple[httpx.Response, object]:
        """Send and parse, retrying transient failures with exponential backoff and jitter, within budget.

        Returns the response and its parsed JSON body (None for a 401, which the caller handles).
        """
        started = self.clock()
        policy = self.retry
        where = path if page is None else f"{path} page {page}"
        for attempt in range(1, policy.max_attempts + 1):
            self.stats.calls += 1
            try:
                response = send()
                self._note_server_time(response)
                return response, self._parse(response, path)
            except (httpx.TimeoutException, httpx.TransportError) as err:
                problem = _Transient(f"{type(err).__name__} talking to the API")
            except _Transient as transient:
                problem = transient
            self.stats.problems[problem.kind] += 1
            delay = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1)) * (0.5 + self.jitter() / 2)
            if problem.retry_after is not None:
                delay = min(policy.max_delay, max(problem.retry_after, 0.0))
            if attempt == policy.max_attempts or self.clock() - started + delay > policy.max_total_seconds:
                if problem.kind == "malformed":
                    raise MalformedResponseError(path, page, problem.problem)
                raise RetriesExhaustedError(where, attempt, problem.problem)
            self.stats.retries += 1
            self.sleep(delay)
        raise AssertionError("unreachable")

    def _parse(self, response: httpx.Response, path: str) -> object:
        """The JSON body of a success; raises _Transient for what a retry may cure, ApiResponseError else."""
        status = response.status_code
        if status == 429:
            raise _Transient("429 rate limited", self._retry_after(response))
        if status == 409:
            raise _Transient("409 maintenance", self._retry_after(response))
        if status >= 500:
            raise _Transient(f"{status} server error: {_excerpt(response)}")
        if status == 401:
            return None
        body = _safe_json(response)
        if status < 400:
            if body is None:
                raise _Transient(_excerpt(response), kind="malformed")
            return body
        if isinstance(body, dict) and "title" in body:
            raise ApiResponseError(path, status, str(body.get("title")), body.get("errors"), body.get("traceId"))
        raise ApiResponseError(path, status, _excerpt(response), None, None)

    def _note_server_time(self, response: httpx.Response) -> None:
        try:
            self.server_time = email.utils.parsedate_to_datetime(response.headers["Date"]).astimezone(UTC)
        except (KeyError, TypeError, ValueError):
            pass

    def _retry_after(self, response: httpx.Response) -> float | None:
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
        return moment.timestamp() - self.wall_clock()

    # -- OAuth ------------------------------------------------------------------------------------------
    def _access_token(self) -> str:
        """The cached token, fetched (once, even with many callers) when missing or about to expire."""
        with self._token_lock:
            if self._token is None or self.clock() >= self._token_expires - self._margin:
                self._fetch_token()
            return self._token  # type: ignore[return-value]

    def _invalidate(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:
                self._token = None

    def _fetch_token(self) -> None:
        form = {"grant_type": "client_credentials", "client_id": self._credentials.client_id,
                "client_secret": self._credentials.client_secret}
        try:
            response, body = self._with_retries("token endpoint", None,
                                                lambda: self._http.post(self.endpoints.token_url, data=form))
        except ApiResponseError as err:
            response, body = None, err
        self.stats.token_fetches += 1
        if response is None or response.status_code == 401:
            raise AuthenticationError(
                "the token endpoint refused the client credentials: check ST_CLIENT_ID and ST_CLIENT_SECRET"
            )
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise MalformedResponseError("token endpoint", None, "a body without access_token")
        self._token = body["access_token"]
        self._token_expires = self.clock() + float(body.get("expires_in") or 900)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("API windows need timezone-aware datetimes")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _window_params(window: dict[str, datetime | None]) -> dict[str, str]:
    names = {"created_from": "createdOnOrAfter", "created_before": "createdBefore",
             "modified_from": "modifiedOnOrAfter", "modified_before": "modifiedBefore"}
    unknown = set(window) - set(names)
    if unknown:
        raise TypeError(f"unknown window arguments {sorted(unknown)}")
    return {names[k]: _iso(v) for k, v in window.items() if v is not None}


def _safe_json(response: httpx.Response) -> object:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _excerpt(response: httpx.Response) -> str:
    text = response.text[:160].replace("\n", " ")
    return f"{response.headers.get('Content-Type', 'no content type')}: {text}"
