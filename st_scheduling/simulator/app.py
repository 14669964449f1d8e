"""The Scheduling Pro API as a WSGI application over the tenant model.

It serves every path of the spec under ``/schedulingpro/v2`` plus ``POST /connect/token``, with the spec's
parameters, envelopes, validation and ``ApiErrorResponse`` bodies. The same object runs in-process (as an
``httpx.WSGITransport``) and behind a real HTTP server (``python -m st_scheduling.simulator serve``).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import parse_qs

import httpx
import orjson
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from st_scheduling.simulator import performance
from st_scheduling.simulator.auth import Credentials, TokenAuthority
from st_scheduling.simulator.day_cache import DayCache
from st_scheduling.simulator.faults import FaultInjector, FaultRates
from st_scheduling.simulator.model import (
    DAY,
    MAX_LIFETIME,
    SimulatorSettings,
    Tenant,
    TenantModel,
    Window,
    epoch_seconds,
)
from st_scheduling.simulator.problems import ApiError, parse_bool, parse_datetime, parse_int, problem

API_PREFIX = "/schedulingpro/v2"
TOKEN_PATH = "/connect/token"
MAX_PAGE_SIZE = 5000
DEFAULT_PAGE_SIZE = 50

ROUTES = (
    ("schedulers", re.compile(r"^/tenant/(?P<tenant>[^/]+)/schedulers$")),
    ("scheduler_sessions", re.compile(r"^/tenant/(?P<tenant>[^/]+)/schedulers/(?P<id>[^/]+)/sessions$")),
    ("scheduler_performance", re.compile(r"^/tenant/(?P<tenant>[^/]+)/schedulers/(?P<id>[^/]+)/performance$")),
    ("router_sessions", re.compile(r"^/tenant/(?P<tenant>[^/]+)/routers/(?P<id>[^/]+)/sessions$")),
    ("router_performance", re.compile(r"^/tenant/(?P<tenant>[^/]+)/routers/(?P<id>[^/]+)/performance$")),
)


class ManualClock:
    """A clock tests set and advance by hand."""

    def __init__(self, moment: datetime):
        self._now = moment.timestamp()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, moment: datetime) -> None:
        self._now = moment.timestamp()


class Simulator:
    """A simulated Scheduling Pro API: the tenant model, a clock, auth, faults — and a WSGI callable."""

    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        faults: FaultRates | None = None,
        credentials: Credentials | None = None,
        sleep: Callable[[float], None] = time.sleep,
        cache_path: str | None = None,
    ):
        self.model = TenantModel(settings)
        self.day_cache = DayCache(cache_path) if cache_path else None
        self.clock = clock
        self.faults = FaultInjector(faults)
        self.credentials = credentials or Credentials()
        self.auth = TokenAuthority(self.credentials, self.model.settings.seed, self.now)
        self.sleep = sleep
        self.calls: Counter[str] = Counter()  # requests served, by route ("token", "scheduler_sessions", ...)

    # -- public helpers -------------------------------------------------------------------------------
    def now(self) -> int:
        return int(self.clock())

    def transport(self) -> httpx.WSGITransport:
        """An httpx transport that calls this simulator in-process."""
        return httpx.WSGITransport(app=self)

    @property
    def tenants(self) -> list[Tenant]:
        return list(self.model.tenants.values())

    # -- WSGI -------------------------------------------------------------------------------------------
    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        try:
            if path == TOKEN_PATH:
                self.calls["token"] += 1
                if method != "POST":
                    raise ApiError(405, "Method not allowed.", headers=[("Allow", "POST")])
                return self._respond(start_response, 200, self.auth.issue(environ, self.model.tenants))
            if not path.startswith(API_PREFIX):
                raise ApiError(404, "Not found.")
            if method != "GET":
                raise ApiError(405, "Method not allowed.", headers=[("Allow", "GET")])
            query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
            scope = self.auth.tenant_of(environ, query)
            return self._serve_api(start_response, path[len(API_PREFIX) :], query, scope)
        except ApiError as err:
            headers = [*err.headers, *([("WWW-Authenticate", "Bearer")] if err.status == 401 else [])]
            return self._respond(start_response, err.status, problem(err.status, err.title, err.errors), headers)

    def _respond(self, start_response, status: int, body: dict, headers: list | None = None) -> list[bytes]:
        payload = orjson.dumps(body)
        reason = {
            200: "OK",
            400: "Bad Request",
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not Found",
            405: "Method Not Allowed",
            409: "Conflict",
            429: "Too Many Requests",
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Service Unavailable",
        }[status]
        start_response(
            f"{status} {reason}",
            [
                ("Content-Type", "application/json; charset=utf-8"),
                ("Content-Length", str(len(payload))),
                self._date_header(),
                *(headers or []),
            ],
        )
        return [payload]

    def _date_header(self) -> tuple[str, str]:
        """The server's own time (the simulated clock), as every HTTP server sends it."""
        return "Date", format_datetime(datetime.fromtimestamp(self.now(), UTC), usegmt=True)

    # -- API --------------------------------------------------------------------------------------------
    def _serve_api(self, start_response, path: str, query: dict, scope: int) -> Iterable[bytes]:
        for name, pattern in ROUTES:  # noqa: B007 - the matching route's name is counted after the loop
            if match := pattern.match(path):
                break
        else:
            raise ApiError(404, "Not found.")
        self.calls[name] += 1
        tenant = self._tenant(match["tenant"])
        if tenant.id != scope:
            raise ApiError(403, f"This token was issued for another tenant, not tenant {tenant.id}.")
        fault = self.faults.next_fault()
        if fault is not None and (early := self._early_fault(start_response, fault)) is not None:
            return early
        now = self.now()
        if name.endswith("performance"):
            body = self._performance(name, tenant, match["id"], query, now)
        else:
            body = self._page(name, tenant, match.groupdict().get("id"), query, now, drift=fault == "page_drift")
            if fault == "schema_drift":
                body["data"] = [_drifted(orjson.loads(record)) for record in body["data"]]
            else:
                body["data"] = [orjson.Fragment(record) for record in body["data"]]  # already serialized
        if fault == "malformed_json":
            payload = orjson.dumps(body)
            start_response("200 OK", [("Content-Type", "application/json; charset=utf-8"), self._date_header()])
            return [payload[: max(1, len(payload) // 2)]]
        return self._respond(start_response, 200, body)

    def _early_fault(self, start_response, fault: str) -> list[bytes] | None:
        rates = self.faults.rates
        if fault == "rate_limit":
            # Alternate the two forms Retry-After may take: delay-seconds and an HTTP date.
            if self.faults.injected.total() % 2:
                retry_after = str(rates.retry_after_seconds)
            else:
                moment = datetime.fromtimestamp(self.clock() + rates.retry_after_seconds, UTC)
                retry_after = format_datetime(moment, usegmt=True)
            return self._respond(
                start_response, 429, problem(429, "Too many requests."), [("Retry-After", retry_after)]
            )
        if fault == "maintenance":
            return self._respond(start_response, 409, problem(409, "The service is under maintenance."))
        if fault == "server_error":
            status = (500, 502, 503)[self.faults.injected.total() % 3]
            return self._respond(start_response, status, problem(status, "An unexpected error occurred."))
        if fault == "html_error":
            page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
            start_response(
                "502 Bad Gateway",
                [("Content-Type", "text/html"), ("Content-Length", str(len(page))), self._date_header()],
            )
            return [page]
        if fault == "token_expiry":
            self.auth.revoke_issued()
            raise ApiError(401, "The access token has expired.")
        if fault == "slow":
            self.sleep(rates.slow_seconds)
        return None

    def _tenant(self, raw: str) -> Tenant:
        try:
            tenant_id = int(raw)
        except ValueError:
            raise ApiError(
                400, "One or more validation errors occurred.", {"tenant": [f"The value '{raw}' is not valid."]}
            ) from None
        tenant = self.model.tenants.get(tenant_id)
        if tenant is None:
            raise ApiError(404, f"Tenant {tenant_id} was not found.")
        return tenant

    def _window(self, query: dict) -> Window:
        def moment(name: str) -> datetime | None:
            return parse_datetime(name, query[name]) if query.get(name) else None

        created_from, created_before = moment("createdOnOrAfter"), moment("createdBefore")
        modified_from, modified_before = moment("modifiedOnOrAfter"), moment("modifiedBefore")
        return Window(
            created_from=epoch_seconds(created_from) if created_from else None,
            created_before=epoch_seconds(created_before) if created_before else None,
            modified_from=_iso_ceiling(modified_from) if modified_from else None,
            modified_before=_iso_ceiling(modified_before) if modified_before else None,
        )

    def _page(self, name: str, tenant: Tenant, owner_id: str | None, query: dict, now: int, drift: bool) -> dict:
        page = parse_int("page", query["page"], 1, 2**31 - 1) if query.get("page") else 1
        size = (
            parse_int("pageSize", query["pageSize"], 1, MAX_PAGE_SIZE) if query.get("pageSize") else DEFAULT_PAGE_SIZE
        )
        include_total = parse_bool("includeTotal", query["includeTotal"]) if query.get("includeTotal") else False
        window = self._window(query)
        # Page drift: one record that belonged on this page moved to an earlier one while the client paged.
        skip = (page - 1) * size + (1 if drift else 0)
        if name == "schedulers":
            records = [orjson.dumps(r) for r in self._scheduler_records(tenant, window, now)]
            data, total = records[skip : skip + size], len(records)
        else:
            owner = (
                self._scheduler(tenant, owner_id, now)
                if name == "scheduler_sessions"
                else self._router(tenant, owner_id)
            )
            data, total = self._session_page(tenant, owner, window, now, skip, size, include_total)
        body = {"page": page, "pageSize": size, "hasMore": total > skip + size}
        if include_total:
            body["totalCount"] = total
        body["data"] = data
        return body

    def _session_page(
        self, tenant: Tenant, owner, window: Window, now: int, skip: int, size: int, include_total: bool
    ) -> tuple[list[bytes], int]:
        """Records [skip, skip + size), serialized, and the count seen (all of them with include_total, else
        enough to know whether more follow). Whole days are skipped by their cached counts, so deep pages
        stay cheap."""
        data: list[bytes] = []
        seen = 0
        for day in self.model.days(*window.day_span(self.model.epoch_ts, now)):
            if len(data) == size and not include_total and seen > skip + size:
                break  # the page is full and at least one record follows it
            count = self.model.day_count(tenant, owner, day, window, now)
            if seen + count <= skip or len(data) == size:
                seen += count
                continue
            for body in self._day_bodies(tenant, owner, day, window, now):
                if skip <= seen < skip + size:
                    data.append(body)
                seen += 1
        return data, seen

    def _day_bodies(self, tenant: Tenant, owner, day: int, window: Window, now: int) -> Iterator[bytes]:
        """The serialized records of one day matching `window`; from the disk cache once the day is settled."""
        if self.day_cache is None or now < (day + 1) * DAY + MAX_LIFETIME:
            yield from (
                orjson.dumps(self.model.served(owner.id, plan, record, now))
                for plan, record in self.model.day_records(tenant, owner, day, window, now)
            )
            return

        def produce() -> list[tuple[int, str, bytes]]:
            everything = Window()
            return [
                (plan.created, record["modifiedOn"], orjson.dumps(self.model.served(owner.id, plan, record, now)))
                for plan, record in self.model.day_records(tenant, owner, day, everything, now)
            ]

        settings = self.model.settings  # one cache file can serve several seeds and vocabularies
        key = (
            f"{settings.seed}/{settings.vocabulary}/{settings.silenced}/{settings.renamed_campaigns}/"
            f"{settings.relabeled_steps}/{owner.id}"
        )
        for created, modified, body in self.day_cache.day(key, day, produce):
            if window.matches(created, modified):
                yield body

    def _scheduler_records(self, tenant: Tenant, window: Window, now: int) -> Iterator[dict]:
        for scheduler in self.model.schedulers(tenant, now):
            record = scheduler.record(now)
            if window.matches(scheduler.created, record["modifiedOn"]):
                yield record

    def _scheduler(self, tenant: Tenant, scheduler_id: str, now: int):
        scheduler = tenant.scheduler(scheduler_id)
        if scheduler is None or scheduler.created > now:
            raise ApiError(404, f"Scheduler {scheduler_id} was not found.")
        return scheduler

    def _router(self, tenant: Tenant, router_id: str):
        router = tenant.router(router_id)
        if router is None:
            raise ApiError(404, f"Router {router_id} was not found.")
        return router

    def _performance(self, name: str, tenant: Tenant, owner_id: str, query: dict, now: int) -> dict:
        missing = [p for p in ("sessionCreatedOnOrAfter", "sessionCreatedBefore") if not query.get(p)]
        if missing:
            raise ApiError(
                400, "One or more validation errors occurred.", {p: [f"The {p} field is required."] for p in missing}
            )
        start = epoch_seconds(parse_datetime("sessionCreatedOnOrAfter", query["sessionCreatedOnOrAfter"]))
        end = epoch_seconds(parse_datetime("sessionCreatedBefore", query["sessionCreatedBefore"]))
        window = Window(created_from=start, created_before=end)
        if name == "scheduler_performance":
            scheduler = self._scheduler(tenant, owner_id, now)
            return performance.scheduler_performance(
                self.model.settings.world, scheduler, self.model.records(tenant, scheduler, window, now), now
            )
        router = self._router(tenant, owner_id)
        return performance.router_performance(
            self.model.settings.world, router.id, self.model.records(tenant, router, window, now)
        )


class _RequestHandler(WSGIRequestHandler):
    def send_response(self, code: int, message: str | None = None) -> None:
        # As BaseHTTPRequestHandler does, minus its Date header: the app sends the simulated clock's.
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())


def http_server(simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> BaseWSGIServer:
    """A threaded HTTP/1.1 server for the simulator (port 0 picks a free one); call serve_forever()."""
    # Request lines could carry the app key as a query parameter: keep them out of logs.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return make_server(host, port, simulator, threaded=True, request_handler=_RequestHandler)


def _iso_ceiling(moment: datetime) -> str:
    """The record timestamps have whole seconds: compare against the first whole second at or after `moment`."""
    seconds = epoch_seconds(moment) + (1 if moment.microsecond else 0)
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")  # years < 1000 zero-padded


def _drifted(record: dict) -> dict:
    """A record as a newer API version might send it: one field more, one nullable field fewer."""
    drifted = {k: v for k, v in record.items() if k != "notes"}
    drifted["assignedTechnicianPreference"] = {"preferred": True, "note": "synthetic field the spec does not know"}
    return drifted
