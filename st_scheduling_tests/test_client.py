"""The client against the simulator over real loopback HTTP: OAuth, paging, retries, errors, secrets."""

import logging
from datetime import UTC, datetime

import pytest

from st_scheduling.servicetitan import (
    ApiResponseError,
    AuthenticationError,
    ConfigurationError,
    Credentials,
    Endpoints,
    MalformedResponseError,
    RecordTypeError,
    RetriesExhaustedError,
    RetryPolicy,
    ServiceTitanClient,
)
from st_scheduling.servicetitan.paging import DistinctIds, parse_records
from st_scheduling.servicetitan.retry import RateLimiter
from st_scheduling.simulator.model import Window
from st_scheduling_tests.conftest import NOW

START, END = datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 16, tzinfo=UTC)


def sessions_of(client, tenant, scheduler_id, **window) -> dict[str, dict]:
    found = {}
    for batch in client.scheduler_sessions(scheduler_id, **window):
        for record in batch:
            assert record["id"] not in found or found[record["id"]]["modifiedOn"] < record["modifiedOn"]
            found[record["id"]] = record
    return found


def expected_ids(simulator, tenant, scheduler) -> set[str]:
    window = Window(int(START.timestamp()), int(END.timestamp()))
    return {r["id"] for _, r in simulator.model.records(tenant, scheduler, window, simulator.now())}


@pytest.fixture
def tenant(simulator):
    return simulator.tenants[0]


def test_one_token_for_a_long_paging_run(served, simulator, tenant):
    with served.client() as client:
        for scheduler in tenant.schedulers:
            got = set()
            for batch in client.collect(
                client.path("schedulers", scheduler.id, "sessions"), shape={}, created_from=START, created_before=END
            ):
                got |= {r["id"] for r in batch}
            assert got == expected_ids(simulator, tenant, scheduler)
        assert client.stats.token_fetches == 1
        assert simulator.calls["token"] == 1
        assert simulator.calls["scheduler_sessions"] >= 3


def test_small_pages_and_a_token_expiring_mid_pagination_lose_and_double_nothing(served, simulator, tenant):
    scheduler = tenant.schedulers[0]
    with served.client() as client:
        pages = list(
            client.pages(
                client.path("schedulers", scheduler.id, "sessions"),
                {"createdOnOrAfter": "2026-09-01T00:00:00Z"},
                parse_records({}),
                page_size=25,
            )
        )
        assert len(pages) > 5 and pages[0].total_count == sum(len(p.records) for p in pages)
        simulator.faults.queue(*["token_expiry"] * 1)
        got = sessions_of(client, tenant, scheduler.id, created_from=START, created_before=END)
        assert set(got) == expected_ids(simulator, tenant, scheduler)
        assert client.stats.token_fetches == 2
        assert simulator.faults.injected["token_expiry"] == 1


def test_a_token_refreshes_before_it_expires(served, simulator, tenant, clock):
    now = [0.0]
    with served.client(clock=lambda: now[0]) as client:
        list(client.schedulers())
        now[0] = 800.0
        clock.advance(800)
        list(client.schedulers())
        assert client.stats.token_fetches == 1
        now[0] = 845.0  # within 60 s of expiry: fetch a new one instead of risking a 401
        clock.advance(45)
        list(client.schedulers())
        assert client.stats.token_fetches == 2


def test_a_429_storm_is_honoured_as_retry_after_says(served, simulator, tenant):
    slept = []
    simulator.faults.queue(*["rate_limit"] * 4)
    with served.client(sleep=slept.append, wall_clock=simulator.clock) as client:
        assert list(client.schedulers())
    # Retry-After alternates between "1" (seconds) and an HTTP date one second after the server's now.
    assert len(slept) == 4 and all(abs(s - 1.0) < 1e-6 for s in slept)
    assert client.stats.problems["429"] == 4


def test_retry_after_is_capped(served, simulator, tenant):
    slept = []
    simulator.faults = type(simulator.faults)(type(simulator.faults.rates)(retry_after_seconds=3600))
    simulator.faults.queue("rate_limit", "rate_limit")
    retry = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=20, max_total_seconds=1000)
    with served.client(sleep=slept.append, retry=retry, wall_clock=simulator.clock) as client:
        list(client.schedulers())
    assert slept == [20, 20]


def test_five_503s_then_success(served, simulator, tenant):
    slept = []
    simulator.faults.queue(*["server_error"] * 5)
    with served.client(
        sleep=slept.append, jitter=lambda: 1.0, retry=RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=30)
    ) as client:
        assert len([r for b in client.schedulers() for r in b]) == 3
    assert slept == [0.5, 1.0, 2.0, 4.0, 8.0], "exponential backoff"
    assert client.stats.retries == 5


def test_retries_exhausted_raise_a_clear_error(served, simulator, tenant):
    simulator.faults.queue(*["maintenance"] * 10)
    with served.client(retry=RetryPolicy(max_attempts=4, base_delay=0.01)) as client:
        with pytest.raises(
            RetriesExhaustedError,
            match=r"/schedulers page 1 still failing after 4 attempts; last problem: 409 maintenance",
        ):
            list(client.schedulers())


def test_total_retry_time_is_bounded(served, simulator, tenant):
    simulator.faults.queue(*["server_error"] * 10)
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    retry = RetryPolicy(max_attempts=50, base_delay=10, max_delay=30, max_total_seconds=60)
    with served.client(sleep=sleep, clock=lambda: now[0], jitter=lambda: 1.0, retry=retry) as client:
        with pytest.raises(RetriesExhaustedError):
            list(client.schedulers())
    assert now[0] <= 60


def test_malformed_and_html_bodies_are_retried_then_named(served, simulator, tenant):
    simulator.faults.queue("malformed_json", "html_error")
    with served.client() as client:
        assert list(client.schedulers())
    simulator.faults.queue(*["malformed_json"] * 6)
    with served.client(retry=RetryPolicy(max_attempts=3, base_delay=0.01)) as client:
        with pytest.raises(MalformedResponseError, match=r"/tenant/\d+/schedulers page 1 returned a malformed body"):
            list(client.schedulers())


def test_a_400_names_status_fields_and_trace_id_but_quotes_no_body_text(served, tenant):
    with served.client() as client:
        with pytest.raises(ApiResponseError) as raised:
            client._get(client.path("schedulers", tenant.schedulers[0].id, "sessions"), {"pageSize": 9000}, bytes)
    err = raised.value
    assert err.status == 400 and err.reason == "Bad Request"
    assert err.fields == ["pageSize"] and err.trace_id and err.trace_id in str(err)
    assert "fields: pageSize" in str(err) and "between 1 and 5000" not in str(err)
    with served.client() as client, pytest.raises(ApiResponseError, match="404"):
        list(client.scheduler_sessions("no-such-scheduler"))


def test_page_drift_is_recovered_to_the_exact_set(served, simulator, tenant):
    scheduler = tenant.schedulers[0]
    with served.client() as client:
        path = client.path("schedulers", scheduler.id, "sessions")
        original_pages = client.pages

        def pages_of_50(path, params, parse, page_size=5000):
            return original_pages(path, params, parse, page_size=50)

        client.pages = pages_of_50
        # While a page is read, one record moves to a page already read: a gap the first pass cannot see.
        simulator.faults.queue("page_drift")
        got = set()
        for batch in client.collect(path, {}, created_from=START, created_before=END):
            got |= {r["id"] for r in batch}
    assert simulator.faults.injected["page_drift"] == 1
    assert client.stats.refetched_windows == 1
    assert got == expected_ids(simulator, tenant, scheduler)


def test_distinct_ids_are_counted_exactly_whatever_their_spelling():
    """The re-read check and the staging report count ids packed when they are lowercase UUIDs: every other
    spelling of the same characters is a different id, and pages repeat ids."""
    uuid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    spellings = [
        uuid,
        uuid.upper(),  # not the same id as written: the API's ids are strings
        uuid.replace("-", ""),
        "0f8fad5b-d9cb-469f-a165-70867728950g",  # 36 characters, not hex
        "0f8fad5b_d9cb_469f_a165_70867728950e",  # hex, not hyphens
        "0f8fad5b-d9cb-469f-a165-70867728950é",  # 36 characters, 37 bytes
        "42",
        "",
    ]
    ids = DistinctIds()
    for page in (spellings[:3], [uuid, "42"], spellings[3:], [], spellings[::-1]):
        ids.add(page)
    ids.add([f"{n:08x}-0000-4000-8000-{n:012x}" for n in range(1000)] * 2)
    assert ids.count() == len(spellings) + 1000


def test_unknown_fields_are_kept_and_a_wrong_type_names_field_record_and_page(served, simulator, tenant):
    simulator.faults.queue("schema_drift")
    with served.client() as client:
        batch = next(iter(client.scheduler_sessions(tenant.schedulers[0].id)))
    assert "assignedTechnicianPreference" in batch[0] and "notes" not in batch[0]
    original = simulator.model.tenants[tenant.id].schedulers[0].record

    def bad_record(now):
        return {**original(now), "isDefault": "yes"}

    object.__setattr__(simulator.model.tenants[tenant.id].schedulers[0], "record", bad_record)
    with served.client() as client:
        with pytest.raises(RecordTypeError) as raised:
            list(client.schedulers())
    message = str(raised.value)
    assert "'isDefault' of type str, expected boolean" in message and "page 1: record 0" in message


def test_secrets_never_reach_logs_exceptions_or_reprs(served, simulator, tenant, caplog):
    caplog.set_level(logging.DEBUG)
    creds = served.credentials()
    errors = []
    simulator.faults.queue("server_error", "token_expiry", "malformed_json", "html_error", "rate_limit")
    with served.client() as client:
        list(client.schedulers())
        token = client._tokens.current()
        simulator.faults.queue(*["server_error"] * 10)
        try:
            list(client.schedulers())
        except RetriesExhaustedError as err:
            errors.append(err)
        texts = [repr(client), str(client.stats)]
    bad = ServiceTitanClient(
        Endpoints.resolve(served.base_url), Credentials(creds.client_id, "wrong-secret", creds.app_key), tenant.id
    )
    with bad, pytest.raises(AuthenticationError) as refused:
        list(bad.schedulers())
    errors.append(refused.value)
    with pytest.raises(ConfigurationError) as missing:
        ServiceTitanClient(Endpoints.resolve("production"), Credentials("id", "", "key"), tenant.id)
    errors.append(missing.value)
    texts += [str(e) for e in errors] + [repr(e) for e in errors] + [repr(creds)] + [caplog.text]
    everything = "\n".join(texts)
    assert errors and token
    for secret in (creds.client_secret, "wrong-secret", creds.app_key, token):
        assert secret not in everything


def test_a_client_reads_its_own_tenant_and_names_it_when_refused(served, simulator):
    """A client is bound to the tenant whose credentials it holds: the paths it builds are that tenant's."""
    other = simulator.tenants[1]
    with served.client(other.id) as client:
        assert client.path("schedulers", "../x?y") == f"/tenant/{other.id}/schedulers/..%2Fx%3Fy"
        listed = {r["id"] for batch in client.schedulers() for r in batch}
    assert listed == {s.id for s in simulator.model.schedulers(other, simulator.now())}
    creds = served.credentials(other.id)
    wrong = Credentials(creds.client_id, "wrong-secret", creds.app_key)
    with ServiceTitanClient(Endpoints.resolve(served.base_url), wrong, other.id) as refused:
        with pytest.raises(AuthenticationError, match=f"refused the client credentials for tenant {other.id} "):
            list(refused.schedulers())


def test_production_and_integration_urls_are_the_documented_ones():
    assert Endpoints.resolve("production") == Endpoints(
        "https://api.servicetitan.io", "https://auth.servicetitan.io/connect/token"
    )
    assert Endpoints.resolve("integration") == Endpoints(
        "https://api-integration.servicetitan.io", "https://auth-integration.servicetitan.io/connect/token"
    )
    assert Endpoints.resolve("http://127.0.0.1:9/schedulingpro/v2/") == Endpoints(
        "http://127.0.0.1:9", "http://127.0.0.1:9/connect/token"
    )
    assert Endpoints.resolve("https://h:1", token_url="https://auth/t").token_url == "https://auth/t"
    with pytest.raises(ConfigurationError, match="ST_ENVIRONMENT='staging'"):
        Endpoints.resolve("staging")


def test_the_rate_limiter_keeps_each_tenant_at_60_calls_per_second():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(60, 1.0, lambda: now[0], sleep)
    stamps = []
    for _ in range(150):
        limiter.acquire()
        stamps.append(now[0])
    RateLimiter(60, 1.0, lambda: now[0], sleep).acquire()  # another tenant's client has a budget of its own
    assert max(sum(1 for t in stamps if start <= t < start + 1.0) for start in stamps) == 60
    assert stamps[-1] >= 2.0 and len(slept) >= 2


def test_performance_calls_return_the_api_numbers(served, simulator, tenant):
    with served.client() as client:
        numbers = client.scheduler_performance(
            tenant.schedulers[0].id, datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
        )
        router = client.router_performance(
            tenant.routers[0].id, datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
        )
    assert numbers["id"] == tenant.schedulers[0].id and numbers["totalSessions"] > 0
    assert router["openedCount"] >= sum(s["openedCount"] for s in router["sessionCountBySchedulerId"]) - 0
    assert NOW.year == 2026
