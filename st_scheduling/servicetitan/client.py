"""The Scheduling Pro API client: OAuth2 client credentials, bounded requests, retries, rate limiting, paging."""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import http
import ipaddress
import logging
import random
import re
import threading
import time
import zlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypedDict, TypeVar, Unpack, cast
from urllib.parse import quote, urlsplit

import httpx
import orjson

from st_scheduling.servicetitan import models
from st_scheduling.servicetitan.deadline import Deadline, DeadlineTransport
from st_scheduling.servicetitan.errors import (
    ApiResponseError,
    AuthenticationError,
    ConfigurationError,
    IncompleteWindowError,
    MalformedResponseError,
    ResponseLimitError,
    RetriesExhaustedError,
    safe_token,
)
from st_scheduling.servicetitan.paging import (
    MAX_PAGE_SIZE,
    MIB,
    Page,
    PageBounds,
    PageParser,
    check_record,
    instant,
    parse_records,
)

API_PATH = "/schedulingpro/v2"
ENVIRONMENTS = {
    "production": ("https://api.servicetitan.io", "https://auth.servicetitan.io/connect/token"),
    "integration": (
        "https://api-integration.servicetitan.io",
        "https://auth-integration.servicetitan.io/connect/token",
    ),
}
T = TypeVar("T")
R = TypeVar("R")
EARLIEST = datetime.min.replace(tzinfo=UTC)
TOKENS_PER_CALL = 3
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750's b64token

# httpx logs every request URL at INFO; keep request lines out of logs entirely.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _require_safe_url(url: str, setting: str) -> None:
    """Credentials travel only over https, except to a server on this machine (the simulator, a test)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise ConfigurationError(
        f"{setting} must be an https URL (http is allowed only for a loopback host such as "
        f"127.0.0.1); got scheme {parts.scheme or 'none'!r} for host {parts.hostname!r}"
    )


@dataclass(frozen=True)
class Endpoints:
    api_base: str  # scheme://host, without the /schedulingpro/v2 path
    token_url: str

    def __post_init__(self) -> None:
        _require_safe_url(self.api_base, "ST_ENVIRONMENT")
        _require_safe_url(self.token_url, "ST_TOKEN_URL")

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
    max_total_seconds: float = 300.0  # one call, across all its attempts and waits


@dataclass(frozen=True)
class Limits:
    """What one request, and one read of a window, may cost. Defaults fit a live tenant: the API's own timeout
    is 100 s, and a full 5000-session page is about 10 MB."""

    request_seconds: float = 100.0  # wall clock from connecting to the last byte, however slowly bytes trickle in
    max_wire_bytes: int = 64 * MIB  # as received (compressed)
    max_body_bytes: int = 256 * MIB  # once decompressed
    page_slack: int = 2  # pages allowed beyond ceil(totalCount / pageSize)
    # One read of a window, whatever totalCount says: 1000 full pages are 5 million records, 10 times the
    # largest scheduler-window of the benchmarks; a full page is about 10 MB.
    max_pages_per_window: int = 1000
    max_window_bytes: int = 16 * 1024 * MIB


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


class WindowBounds(TypedDict, total=False):
    """The created/modified window of a list endpoint; a bound left out, or None, is not sent."""

    created_from: datetime | None
    created_before: datetime | None
    modified_from: datetime | None
    modified_before: datetime | None


@dataclass(frozen=True)
class _Response:
    status: int
    headers: httpx.Headers
    body: bytearray


def segment(value: object) -> str:
    """An id as one URL path segment: `../x?y` stays inside its segment."""
    return quote(str(value), safe="")


class ServiceTitanClient:
    """One pooled httpx client for one run, safe to share between threads. Use as a context manager."""

    def __init__(
        self,
        endpoints: Endpoints,
        credentials: Credentials,
        *,
        transport: httpx.BaseTransport | None = None,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        rate_limit_per_second: int = 60,
        max_connections: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        token_refresh_margin: float = 60.0,
        label: str = "",
    ):
        if not (credentials.client_id and credentials.client_secret and credentials.app_key):
            raise ConfigurationError("client id, client secret and app key are all required")
        self.endpoints, self._credentials = endpoints, credentials
        self.limits = limits or Limits()
        self.retry = retry or RetryPolicy()
        self.sleep, self.clock, self.wall_clock, self.jitter = sleep, clock, wall_clock, jitter
        self.label = label  # names whose credentials these are in errors ("tenant 123")
        self.stats = CallStats()
        self._deadline = Deadline()
        pool = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.Client(
            transport=transport or DeadlineTransport(self._deadline, pool),
            follow_redirects=False,
            timeout=httpx.Timeout(self.limits.request_seconds, connect=min(10.0, self.limits.request_seconds)),
        )
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

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- endpoints ------------------------------------------------------------------------------------
    @staticmethod
    def path(tenant: int, *parts: object) -> str:
        return "/".join(("", "tenant", segment(tenant), *map(segment, parts)))

    def schedulers(self, tenant: int, **window: Unpack[WindowBounds]) -> Iterator[list[models.Record]]:
        """Every scheduler of a tenant (optionally filtered by created/modified window), complete and deduped."""
        return self.collect(self.path(tenant, "schedulers"), models.SCHEDULER, tenant, **window)

    def scheduler_sessions(
        self, tenant: int, scheduler_id: str, **window: Unpack[WindowBounds]
    ) -> Iterator[list[models.Record]]:
        """A scheduler's sessions in a created/modified window, complete and deduped, in batches."""
        return self.collect(self.path(tenant, "schedulers", scheduler_id, "sessions"), models.SESSION, tenant, **window)

    def router_sessions(
        self, tenant: int, router_id: str, **window: Unpack[WindowBounds]
    ) -> Iterator[list[models.Record]]:
        return self.collect(self.path(tenant, "routers", router_id, "sessions"), models.SESSION, tenant, **window)

    def scheduler_performance(self, tenant: int, scheduler_id: str, start: datetime, end: datetime) -> models.Record:
        """The API's performance numbers for sessions created in [start, end)."""
        return self._performance(
            self.path(tenant, "schedulers", scheduler_id, "performance"),
            models.SCHEDULER_PERFORMANCE,
            tenant,
            start,
            end,
        )

    def router_performance(self, tenant: int, router_id: str, start: datetime, end: datetime) -> models.Record:
        return self._performance(
            self.path(tenant, "routers", router_id, "performance"), models.ROUTER_PERFORMANCE, tenant, start, end
        )

    # -- paging -----------------------------------------------------------------------------------------
    def pages(
        self, path: str, tenant: int, params: dict[str, str], parse: PageParser[R], page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[Page[R]]:
        """Pages from 1 until hasMore is false, within the bounds of `PageBounds`."""
        limits = self.limits
        window = "window " + " ".join(f"{k}={v}" for k, v in params.items()) if params else "(no window)"
        bounds = PageBounds(
            path, window, page_size, limits.page_slack, limits.max_pages_per_window, limits.max_window_bytes
        )
        number = 1
        while True:
            query: dict[str, str | int] = {**params, "page": number, "pageSize": page_size}
            if number == 1:
                query["includeTotal"] = "true"
            page, retries = self._get(path, tenant, query, _page_parser(parse, path, number), page=number)
            page = dataclasses.replace(page, retries=retries)
            bounds.admit(page)
            yield page
            if not page.has_more or not len(page.ids):
                return
            number += 1

    def read_window(
        self,
        path: str,
        tenant: int,
        parse: PageParser[R],
        *,
        max_passes: int = 3,
        page_size: int = MAX_PAGE_SIZE,
        **window: Unpack[WindowBounds],
    ) -> Iterator[Page[R]]:
        """Every page of a window, read again (whole) while its distinct ids fall short of its totalCount.

        The API's order is unspecified and records change while we page, so a record can slip to a page
        already read; a re-read finds it. Callers keep the greatest modifiedOn of each id.
        """
        params = _window_params(window)
        seen: set[str] = set()
        total: int | None = None
        for _ in range(max_passes):
            for page in self.pages(path, tenant, params, parse, page_size):
                if page.number == 1:
                    total = page.total_count
                seen.update(page.ids)
                yield page
            if total is None or len(seen) >= total:
                return
            self.stats.count(refetched_windows=1)
        raise IncompleteWindowError(path, len(seen), total or 0, max_passes)

    def collect(
        self,
        path: str,
        shape: models.Shape,
        tenant: int,
        *,
        max_passes: int = 3,
        page_size: int = MAX_PAGE_SIZE,
        **window: Unpack[WindowBounds],
    ) -> Iterator[list[models.Record]]:
        """Batches of records of a window as dicts, each id once at its greatest modifiedOn (as an instant)."""
        seen: dict[object, datetime] = {}  # by id, as the records give it
        for page in self.read_window(
            path, tenant, parse_records(shape), max_passes=max_passes, page_size=page_size, **window
        ):
            fresh = []
            for record in page.records:
                modified = instant(record["modifiedOn"]) if "modifiedOn" in shape else EARLIEST
                key = record.get("id")
                if key not in seen or seen[key] < modified:
                    seen[key] = modified
                    fresh.append(record)
            if fresh:
                yield fresh

    def _performance(
        self, path: str, shape: models.Shape, tenant: int, start: datetime, end: datetime
    ) -> models.Record:
        body, _ = self._get(
            path,
            tenant,
            {"sessionCreatedOnOrAfter": _iso(start), "sessionCreatedBefore": _iso(end)},
            lambda raw: _json(raw, path),
        )
        return check_record(body, shape, path, None, None)

    # -- HTTP -------------------------------------------------------------------------------------------
    def _get(
        self,
        path: str,
        tenant: int,
        params: Mapping[str, str | int],
        parse: Callable[[bytearray], T],
        page: int | None = None,
    ) -> tuple[T, int]:
        """The parsed body of a successful GET and the retries it took.

        A 401 drops the token and the call tries a newer one; a call refused with `TOKENS_PER_CALL` distinct
        tokens is an authentication failure. (With calls in flight on several threads, the token another
        thread has just fetched may already be out of date, so one refresh per call is not enough.)
        """
        url = f"{self.endpoints.api_base}{API_PATH}{path}"
        refused, retries = 0, 0
        while True:
            token = self._access_token()
            response, parsed, attempts = self._with_retries(
                path, page, functools.partial(self._send_api, url, tenant, params, token), parse
            )
            retries += attempts - 1
            if response.status != 401:
                return cast(T, parsed), retries  # `_with_retries` gives None in place of a body only with a 401
            refused += 1
            if refused >= TOKENS_PER_CALL:
                raise AuthenticationError(
                    f"{path} refused {refused} tokens in a row (401){self._whose()}: check "
                    "ST_APP_KEY and that these credentials are connected to this tenant"
                )
            self._invalidate(token)

    def _send_api(
        self, url: str, tenant: int, params: Mapping[str, str | int], token: str, seconds: float
    ) -> _Response:
        self._limiter.acquire(tenant)
        headers = {"Authorization": f"Bearer {token}", "ST-App-Key": self._credentials.app_key}
        return self._read(self._http.build_request("GET", url, params=params, headers=headers), seconds)

    def _read(self, request: httpx.Request, seconds: float) -> _Response:
        """Send and read the whole response within `seconds` and the size caps.

        The deadline covers connecting, the status line, the headers and the body, however slowly their bytes
        arrive (see `deadline`).
        """
        request.headers["Accept-Encoding"] = "gzip, deflate"
        with self._deadline.within(seconds) as deadline:
            try:
                response = self._http.send(request, stream=True)
                try:
                    body = self._body(response, request.url.path, deadline)
                finally:
                    response.close()
            except httpx.TimeoutException:
                if not deadline.cut:
                    raise
                body = None
        if body is None:
            raise _Transient(f"deadline: the response took longer than {round(seconds, 1):g} s", kind="deadline")
        return _Response(response.status_code, response.headers, body)

    def _body(self, response: httpx.Response, path: str, deadline: Deadline) -> bytearray | None:
        """The body, decompressed in bounded steps so a small gzip body cannot inflate past the cap before it is
        noticed; None once the deadline has passed."""
        limits = self.limits
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limits.max_wire_bytes:
            raise ResponseLimitError(
                f"{path} announced {int(length)} bytes, more than the {limits.max_wire_bytes}-byte cap"
            )
        inflate = _decompressor(response.headers.get("Content-Encoding", ""), path)
        body, received = bytearray(), 0
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > limits.max_wire_bytes:
                raise ResponseLimitError(f"{path} sent more than the {limits.max_wire_bytes}-byte cap")
            body += _inflate(inflate, chunk, limits.max_body_bytes - len(body) + 1) if inflate else chunk
            if len(body) > limits.max_body_bytes:
                raise ResponseLimitError(f"{path} decompresses to more than the {limits.max_body_bytes}-byte cap")
            if deadline.passed():  # a transport of the caller's own (the in-process simulator) has no deadline
                return None
        return body

    def _with_retries(
        self, path: str, page: int | None, send: Callable[[float], _Response], parse: Callable[[bytearray], T]
    ) -> tuple[_Response, T | None, int]:
        """Send and parse, retrying transient failures (429, 409, 5xx, deadlines, connection errors, unreadable
        bodies) with exponential backoff and jitter, within the call's budget. Anything else is the server's
        answer and would come back the same, so it is raised at once.

        `send` gets the seconds its request may take: the request deadline, or what is left of the budget when
        that is less, so the call as a whole ends within its budget.

        Returns a response of status < 300 with its parsed body, or a 401 (which the caller handles) with
        None, and the attempts made; raises for everything else.
        """
        started = self.clock()
        policy = self.retry
        where = path if page is None else f"{path} page {page}"
        for attempt in range(1, policy.max_attempts + 1):
            self.stats.count(calls=1)
            left = policy.max_total_seconds - (self.clock() - started)
            try:
                response = self._check(send(max(0.0, min(self.limits.request_seconds, left))), where)
                self._note_server_time(response)
                return response, (parse(response.body) if response.status != 401 else None), attempt
            except MalformedResponseError as err:
                if not err.retryable:
                    raise
                problem = _Transient(err.problem, kind="malformed")
            except httpx.LocalProtocolError:
                # Raised before anything is sent; h11's message quotes the offending header value.
                raise ConfigurationError(
                    f"{where}: the request is not valid HTTP and was not sent; check "
                    "ST_APP_KEY for spaces or line breaks"
                ) from None
            except (httpx.TimeoutException, httpx.TransportError) as err:
                problem = _Transient(
                    f"{type(err).__name__} talking to the API",
                    kind="timeout" if isinstance(err, httpx.TimeoutException) else "transport",
                )
            except _Transient as transient:
                problem = transient
                if problem.kind == "deadline" and left < self.limits.request_seconds:
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

    def _check(self, response: _Response, path: str) -> _Response:
        """Raises _Transient for what a retry may cure and ApiResponseError for the rest; never quotes the body."""
        status = response.status
        if status == 429:
            raise _Transient("429 rate limited", self._retry_after(response))
        if status == 409:
            raise _Transient("409 maintenance", self._retry_after(response))
        if status >= 500:
            raise _Transient(f"{status} server error ({_content_type(response)}, {len(response.body)} bytes)")
        if status == 401 or status < 300:
            if status < 300 and "html" in _content_type(response):
                raise _Transient("an HTML page where JSON was expected", kind="malformed")
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

    def _note_server_time(self, response: _Response) -> None:
        try:
            self.server_time = email.utils.parsedate_to_datetime(response.headers["Date"]).astimezone(UTC)
        except (KeyError, TypeError, ValueError):
            pass

    def _retry_after(self, response: _Response) -> float | None:
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
    def _whose(self) -> str:
        return f" for {self.label}" if self.label else ""

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
        form = {
            "grant_type": "client_credentials",
            "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret,
        }
        try:
            response, body, _ = self._with_retries(
                "token endpoint",
                None,
                lambda seconds: self._read(
                    self._http.build_request("POST", self.endpoints.token_url, data=form), seconds
                ),
                lambda raw: _json(raw, "token endpoint"),
            )
        except ApiResponseError as err:
            raise AuthenticationError(
                f"the token endpoint refused the client credentials{self._whose()} "
                f"({err.status} {err.reason}): check the client id and secret"
            ) from None
        finally:
            self.stats.count(token_fetches=1)
        if response.status == 401:
            raise AuthenticationError(
                f"the token endpoint refused the client credentials{self._whose()} (401): "
                "check the client id and secret"
            )
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise MalformedResponseError("token endpoint", None, "no access_token string in the body")
        if not _BEARER_TOKEN.fullmatch(body["access_token"]):
            raise MalformedResponseError(
                "token endpoint", None, "an access_token that is empty or not a bearer token (RFC 6750 characters only)"
            )
        self._token = body["access_token"]
        expires = body.get("expires_in")
        self._token_expires = self.clock() + (float(expires) if isinstance(expires, int | float) else 900.0)


def _page_parser(parse: PageParser[R], endpoint: str, number: int) -> Callable[[bytearray], Page[R]]:
    """`parse` bound to one page of `endpoint`."""
    return lambda body: parse(body, endpoint, number)


def _decompressor(encoding: str, path: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    raise ResponseLimitError(f"{path} came with Content-Encoding {encoding!r}, which was not asked for")


def _inflate(inflate: zlib._Decompress, chunk: bytes, room: int) -> bytes:
    """At most `room` bytes of what `chunk` inflates to (the caller fails the response past its cap)."""
    try:
        return inflate.decompress(chunk, max(room, 1))
    except zlib.error:
        raise MalformedResponseError(
            "response", None, "a compressed body that does not decompress", retryable=True
        ) from None


def _json(raw: bytearray, endpoint: str) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedResponseError(endpoint, None, "not valid JSON", retryable=True) from None


def _content_type(response: _Response) -> str:
    return response.headers.get("Content-Type", "none").split(";")[0].strip().lower() or "none"


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "error"


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("API windows need timezone-aware datetimes")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _window_params(window: WindowBounds) -> dict[str, str]:
    unknown = set(window) - WindowBounds.__optional_keys__  # from callers mypy does not check
    if unknown:
        raise TypeError(f"unknown window arguments {sorted(unknown)}")
    params = {
        "createdOnOrAfter": window.get("created_from"),
        "createdBefore": window.get("created_before"),
        "modifiedOnOrAfter": window.get("modified_from"),
        "modifiedBefore": window.get("modified_before"),
    }
    return {name: _iso(moment) for name, moment in params.items() if moment is not None}
