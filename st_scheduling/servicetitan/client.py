"""One tenant's Scheduling Pro API: its endpoints, and paging through a window of a list endpoint.

The client is bound to its tenant, whose credentials it holds: every path it builds is under that tenant, and
every call it makes counts against that tenant's rate limit. It puts together the pieces beneath it: the wire
(`transport`), asking again (`retry`) and the bearer token (`oauth`).
"""

from __future__ import annotations

import dataclasses
import functools
import random
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TypedDict, TypeVar, Unpack, cast
from urllib.parse import quote

import httpx

from st_scheduling.servicetitan import models
from st_scheduling.servicetitan.errors import AuthenticationError, ConfigurationError, IncompleteWindowError
from st_scheduling.servicetitan.memory import Body
from st_scheduling.servicetitan.oauth import Credentials, Tokens
from st_scheduling.servicetitan.paging import (
    MAX_PAGE_SIZE,
    DistinctIds,
    Page,
    PageBounds,
    PageParser,
    check_record,
    instant,
    parse_records,
)
from st_scheduling.servicetitan.retry import CallStats, RateLimiter, Retrying, RetryPolicy
from st_scheduling.servicetitan.transport import API_PATH, Endpoints, Limits, Response, Transport, json_body

T = TypeVar("T")
R = TypeVar("R")
EARLIEST = datetime.min.replace(tzinfo=UTC)
TOKENS_PER_CALL = 3


class WindowBounds(TypedDict, total=False):
    """The created/modified window of a list endpoint; a bound left out, or None, is not sent."""

    created_from: datetime | None
    created_before: datetime | None
    modified_from: datetime | None
    modified_before: datetime | None


def segment(value: object) -> str:
    """An id as one URL path segment: `../x?y` stays inside its segment."""
    return quote(str(value), safe="")


class ServiceTitanClient:
    """One tenant's API over one pooled httpx client for one run, safe to share between threads. Use as a
    context manager."""

    def __init__(
        self,
        endpoints: Endpoints,
        credentials: Credentials,
        tenant: int,
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
    ):
        if not (credentials.client_id and credentials.client_secret and credentials.app_key):
            raise ConfigurationError("client id, client secret and app key are all required")
        self.endpoints, self.tenant, self._credentials = endpoints, tenant, credentials
        self.limits = limits or Limits()
        self.stats = CallStats()
        self._transport = Transport(self.limits, transport, max_connections)
        self._retrying = Retrying(
            retry or RetryPolicy(),
            self.limits.request_seconds,
            self.stats,
            sleep=sleep,
            clock=clock,
            wall_clock=wall_clock,
            jitter=jitter,
        )
        self._tokens = Tokens(
            credentials,
            endpoints.token_url,
            f"tenant {tenant}",
            self._transport,
            self._retrying,
            clock=clock,
            refresh_margin=token_refresh_margin,
        )
        self._limiter = RateLimiter(rate_limit_per_second, 1.0, clock, sleep)

    def __repr__(self) -> str:
        return (
            f"ServiceTitanClient(api={self.endpoints.api_base!r}, tenant={self.tenant!r}, "
            f"client_id={self._credentials.client_id!r})"
        )

    def __enter__(self) -> ServiceTitanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    @property
    def server_time(self) -> datetime | None:
        """The API's clock, from the latest answer's Date header."""
        return self._retrying.server_time

    # -- endpoints ------------------------------------------------------------------------------------
    def path(self, *parts: object) -> str:
        """The path of `parts` under this client's tenant, each part one URL segment."""
        return "/".join(("", "tenant", segment(self.tenant), *map(segment, parts)))

    def schedulers(self, **window: Unpack[WindowBounds]) -> Iterator[list[models.Record]]:
        """Every scheduler of the tenant (optionally filtered by created/modified window), complete and deduped."""
        return self.collect(self.path("schedulers"), models.SCHEDULER, **window)

    def scheduler_sessions(self, scheduler_id: str, **window: Unpack[WindowBounds]) -> Iterator[list[models.Record]]:
        """A scheduler's sessions in a created/modified window, complete and deduped, in batches."""
        return self.collect(self.path("schedulers", scheduler_id, "sessions"), models.SESSION, **window)

    def router_sessions(self, router_id: str, **window: Unpack[WindowBounds]) -> Iterator[list[models.Record]]:
        return self.collect(self.path("routers", router_id, "sessions"), models.SESSION, **window)

    def scheduler_performance(self, scheduler_id: str, start: datetime, end: datetime) -> models.Record:
        """The API's performance numbers for sessions created in [start, end)."""
        path = self.path("schedulers", scheduler_id, "performance")
        return self._performance(path, models.SCHEDULER_PERFORMANCE, start, end)

    def router_performance(self, router_id: str, start: datetime, end: datetime) -> models.Record:
        return self._performance(self.path("routers", router_id, "performance"), models.ROUTER_PERFORMANCE, start, end)

    def _performance(self, path: str, shape: models.Shape, start: datetime, end: datetime) -> models.Record:
        body, _ = self._get(
            path,
            {"sessionCreatedOnOrAfter": _iso(start), "sessionCreatedBefore": _iso(end)},
            lambda raw: json_body(raw, path),
        )
        return check_record(body, shape, path, None, None)

    # -- paging -----------------------------------------------------------------------------------------
    def pages(
        self, path: str, params: dict[str, str], parse: PageParser[R], page_size: int = MAX_PAGE_SIZE
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
            page, retries = self._get(path, query, _page_parser(parse, path, number), page=number)
            page = dataclasses.replace(page, retries=retries)
            bounds.admit(page)
            yield page
            if not page.has_more or not len(page.ids):
                return
            number += 1

    def read_window(
        self,
        path: str,
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
        seen = DistinctIds()
        total: int | None = None
        for _ in range(max_passes):
            for page in self.pages(path, params, parse, page_size):
                if page.number == 1:
                    total = page.total_count
                seen.add(page.ids)
                yield page
            distinct = seen.count()
            if total is None or distinct >= total:
                return
            self.stats.count(refetched_windows=1)
        raise IncompleteWindowError(path, distinct, total or 0, max_passes)

    def collect(
        self,
        path: str,
        shape: models.Shape,
        *,
        max_passes: int = 3,
        page_size: int = MAX_PAGE_SIZE,
        **window: Unpack[WindowBounds],
    ) -> Iterator[list[models.Record]]:
        """Batches of records of a window as dicts, each id once at its greatest modifiedOn (as an instant)."""
        seen: dict[object, datetime] = {}  # by id, as the records give it
        for page in self.read_window(path, parse_records(shape), max_passes=max_passes, page_size=page_size, **window):
            fresh = []
            for record in page.records:
                modified = instant(record["modifiedOn"]) if "modifiedOn" in shape else EARLIEST
                key = record.get("id")
                if key not in seen or seen[key] < modified:
                    seen[key] = modified
                    fresh.append(record)
            if fresh:
                yield fresh

    # -- one authorized GET -----------------------------------------------------------------------------
    def _get(
        self,
        path: str,
        params: Mapping[str, str | int],
        parse: Callable[[Body], T],
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
            token = self._tokens.current()
            response, parsed, attempts = self._retrying.call(
                path, page, functools.partial(self._send, url, params, token), parse
            )
            retries += attempts - 1
            if response.status != 401:
                return cast(T, parsed), retries  # `Retrying.call` gives None in place of a body only with a 401
            refused += 1
            if refused >= TOKENS_PER_CALL:
                raise AuthenticationError(
                    f"{path} refused {refused} tokens in a row (401) for {self._tokens.owner}: check "
                    "ST_APP_KEY and that these credentials are connected to this tenant"
                )
            self._tokens.invalidate(token)

    def _send(self, url: str, params: Mapping[str, str | int], token: str, seconds: float) -> Response:
        self._limiter.acquire()
        headers = {"Authorization": f"Bearer {token}", "ST-App-Key": self._credentials.app_key}
        return self._transport.get(url, params, headers, seconds)


def _page_parser(parse: PageParser[R], endpoint: str, number: int) -> Callable[[Body], Page[R]]:
    """`parse` bound to one page of `endpoint`."""
    return lambda body: parse(body, endpoint, number)


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
