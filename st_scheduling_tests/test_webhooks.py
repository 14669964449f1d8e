"""The webhook receiver served by a real uvicorn on loopback, its inbox, and the simulator's sender with its
faults."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest
import uvicorn
from dagster._core.storage.dagster_run import (
    DagsterRun,
    DagsterRunStatus,
    make_new_run_id,
)

from st_scheduling import config
from st_scheduling.defs import webhooks as webhook_defs
from st_scheduling.defs.partitions import RANGE_END, RANGE_START
from st_scheduling.defs.resources import ServiceTitanResource
from st_scheduling.simulator import ManualClock, Simulator
from st_scheduling.simulator import webhooks as sim_webhooks
from st_scheduling.webhooks import backend, envelope, inbox, pg_inbox
from st_scheduling.webhooks.app import PATH, ReceiverSettings, create_app
from st_scheduling_tests import postgres
from st_scheduling_tests.conftest import NOW, SMALL
from st_scheduling_tests.conftest import Receiver as SlackReceiver

KEY = "k" * 40
PG_BIN = postgres.binaries()
SIGNED = {"Content-Type": "application/cloudevents+json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """The receiver app under a real uvicorn server in a thread, on the inbox `where`."""

    def __init__(self, where: backend.Inbox, settings: ReceiverSettings, now=lambda: datetime.now(UTC)):
        self.where = where
        self.inbox = where.open()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}{PATH}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, self.inbox, now),
                host="127.0.0.1",
                port=port,
                access_log=False,
                log_level="warning",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    @property
    def directory(self) -> Path:
        """The file inbox's directory."""
        return Path(str(self.where.directory))

    def stored(self) -> list[dict]:
        return [record.event for record in self.where.read(None, 10**6)[0]]

    def close(self) -> None:
        if self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(timeout=10)
            self.inbox.close()


def settings(**overrides) -> ReceiverSettings:
    values = {
        "key": KEY,
        "signature_header": config.SIGNATURE_HEADER,
        "signature_format": "sha256=hex",
        "max_body_bytes": 64 * 1024,
        "max_age": timedelta(hours=168),
        **overrides,
    }
    return ReceiverSettings(**values)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[postgres.Server]:
    if PG_BIN is None:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed (Debian package `postgresql`; .ci/run installs it)")
    with postgres.running(PG_BIN) as server:
        yield server


@pytest.fixture(params=["file", "postgres"])
def where(request, tmp_path, monkeypatch) -> Iterator[backend.Inbox]:
    """An empty inbox of each backend, chosen as the receiver and the sensors choose it: from the environment."""
    monkeypatch.setenv("ST_WEBHOOK_INBOX", str(tmp_path / "inbox"))
    if request.param == "file":
        yield backend.chosen(config.Settings.from_env().webhooks)
        return
    server = request.getfixturevalue("pg_server")
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    chosen = backend.chosen(config.Settings.from_env().webhooks)
    assert chosen.server is not None
    yield chosen
    server.query(f"DROP SCHEMA IF EXISTS {pg_inbox.SCHEMA} CASCADE; SELECT 1")


def file_inbox(directory: Path) -> backend.Inbox:
    return backend.Inbox(str(directory), None)


@pytest.fixture
def receiver(where) -> Iterator[Receiver]:
    served = Receiver(where, settings())
    yield served
    served.close()


def event(
    uid: str = "tn.sp.session-completed:s1:1",
    kind: str = envelope.COMPLETED,
    delivery: str = "d1",
    at: datetime | None = None,
    tenant: int = 1001,
    created: str = "2026-12-01T10:00:00Z",
) -> dict:
    return {
        "specversion": "1.0",
        "id": delivery,
        "type": kind,
        "time": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": "https://webhooks.servicetitan.io",
        "userassignedid": uid,
        "datacontenttype": "application/json",
        "data": {
            "tenantId": tenant,
            "tenantName": "Acme",
            "session": {"id": uid.split(":")[1] if ":" in uid else uid, "createdOn": created},
        },
    }


def post(
    url: str, body: bytes, key: str | None = KEY, headers: dict | None = None, client: httpx.Client | None = None
) -> httpx.Response:
    signed = {config.SIGNATURE_HEADER: envelope.signature(body, key, "sha256=hex")} if key else {}
    return (client or httpx).post(url, content=body, headers={**SIGNED, **signed, **(headers or {})}, timeout=10)


def dumps(document) -> bytes:
    return json.dumps(document).encode()


def test_a_signed_event_is_stored_and_acknowledged_and_the_health_endpoint_counts_it(receiver):
    response = post(receiver.url, dumps(event()))
    assert response.status_code == 200 and response.json() == {"status": "stored"}
    assert [e["userassignedid"] for e in receiver.stored()] == ["tn.sp.session-completed:s1:1"]
    health = httpx.get(receiver.url.replace(PATH, "/health"))
    assert health.status_code == 200 and health.json() == {"status": "ok", "events": 1, "signed": True}
    if receiver.where.server is None:
        mode = os.stat(receiver.directory).st_mode & 0o777
        assert mode == 0o700 and all(os.stat(p).st_mode & 0o777 == 0o600 for p in receiver.directory.glob("*.jsonl"))


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("forged", 401),
        ("unsigned", 401),
        ("signed with another key", 401),
        ("oversized", 413),
        ("oversized, chunked", 413),
        ("not JSON", 400),
        ("not an object", 400),
        ("no userassignedid", 400),
        ("tenant not an integer", 400),
        ("session without createdOn", 400),
        ("wrong type", 422),
        ("replayed after the maximum age", 422),
        ("form-encoded", 415),
    ],
)
def test_refused_deliveries_get_their_status_and_store_nothing(receiver, case, status):
    body = dumps(event())
    if case == "forged":
        response = post(receiver.url, body, headers={config.SIGNATURE_HEADER: "sha256=" + "0" * 64})
    elif case == "unsigned":
        response = post(receiver.url, body, key=None)
    elif case == "signed with another key":
        response = post(receiver.url, body, key="x" * 40)
    elif case == "oversized":
        response = post(receiver.url, dumps({**event(), "pad": "x" * 70_000}))
    elif case == "oversized, chunked":
        big = dumps({**event(), "pad": "x" * 70_000})
        response = httpx.post(
            receiver.url,
            content=iter([big[:1000], big[1000:]]),
            headers={**SIGNED, config.SIGNATURE_HEADER: envelope.signature(big, KEY, "sha256=hex")},
        )
    elif case == "not JSON":
        response = post(receiver.url, b"{not json")
    elif case == "not an object":
        response = post(receiver.url, b"[1, 2]")
    elif case == "no userassignedid":
        response = post(receiver.url, dumps({k: v for k, v in event().items() if k != "userassignedid"}))
    elif case == "tenant not an integer":
        broken = event()
        broken["data"]["tenantId"] = "1001"
        response = post(receiver.url, dumps(broken))
    elif case == "session without createdOn":
        broken = event()
        del broken["data"]["session"]["createdOn"]
        response = post(receiver.url, dumps(broken))
    elif case == "wrong type":
        response = post(receiver.url, dumps(event(kind="tn.jpm.job-created")))
    elif case == "replayed after the maximum age":
        response = post(receiver.url, dumps(event(at=datetime.now(UTC) - timedelta(hours=169))))
    else:
        response = post(receiver.url, body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == status, response.text
    assert receiver.stored() == []


def test_a_replay_or_a_redelivery_under_a_new_id_is_acknowledged_and_stored_once(receiver):
    body = dumps(event(delivery="first"))
    assert post(receiver.url, body).json() == {"status": "stored"}
    assert post(receiver.url, body).json() == {"status": "duplicate"}  # the same delivery replayed
    assert post(receiver.url, dumps(event(delivery="second"))).json() == {"status": "duplicate"}
    assert [e["id"] for e in receiver.stored()] == ["first"]


def test_the_signature_header_and_encoding_are_settings(tmp_path):
    served = Receiver(
        file_inbox(tmp_path / "inbox"), settings(signature_header="X-ST-Signature", signature_format="base64")
    )
    try:
        body = dumps(event())
        wrong_header = post(served.url, body)
        right = httpx.post(
            served.url, content=body, headers={**SIGNED, "X-ST-Signature": envelope.signature(body, KEY, "base64")}
        )
        assert (wrong_header.status_code, right.status_code) == (401, 200)
    finally:
        served.close()


def test_unsigned_events_are_accepted_only_without_a_key(tmp_path):
    served = Receiver(file_inbox(tmp_path / "inbox"), settings(key=None))
    try:
        assert post(served.url, dumps(event()), key=None).status_code == 200
    finally:
        served.close()


def test_a_second_receiver_cannot_open_the_same_inbox(receiver):
    with pytest.raises(inbox.InboxLocked):
        receiver.where.open()


def test_webhook_settings_are_refused_at_load_by_name_without_quoting_the_key(monkeypatch):
    monkeypatch.setenv("ST_WEBHOOK_HMAC_KEY", "short-secret")
    monkeypatch.setenv("ST_WEBHOOK_SIGNATURE_HEADER", "Bad Header:")
    monkeypatch.setenv("ST_WEBHOOK_SIGNATURE_FORMAT", "sha1")
    monkeypatch.setenv("ST_CALLBACK_WEBHOOK_URL", "hooks.slack.com/services/T0/B0/secret")
    monkeypatch.setenv("ST_CALLBACK_INCLUDE_CONTACT", "maybe")
    with pytest.raises(config.SettingsError) as refused:
        config.Settings.from_env()
    message = str(refused.value)
    for variable in (
        "ST_WEBHOOK_HMAC_KEY",
        "ST_WEBHOOK_SIGNATURE_HEADER",
        "ST_WEBHOOK_SIGNATURE_FORMAT",
        "ST_CALLBACK_WEBHOOK_URL",
        "ST_CALLBACK_INCLUDE_CONTACT",
    ):
        assert variable in message
    assert "short-secret" not in message and "services/T0" not in message


def test_the_inbox_reads_from_a_position_and_a_restart_truncates_a_torn_tail(tmp_path):
    directory = tmp_path / "inbox"
    first = inbox.FileInbox(directory)
    assert [first.submit(f"u{i}", event(f"u{i}")).result(5) for i in (1, 2, 1)] == [True, True, False]
    records, position = inbox.read(directory, None)
    assert [r.event["userassignedid"] for r in records] == ["u1", "u2"]
    segment = next(directory.glob("*.jsonl"))
    with open(segment, "ab") as file:
        file.write(b'{"received_at": "torn')  # the writer died in the middle of a line it never acknowledged
    assert inbox.read(directory, position) == ([], position)
    os.close(first._lock)  # the process that held the inbox is gone
    second = inbox.FileInbox(directory)
    assert not segment.read_bytes().endswith(b"torn")
    assert second.submit("u3", event("u3")).result(5) is True
    assert second.submit("u2", event("u2")).result(5) is False
    later, _ = inbox.read(directory, position)
    assert [r.event["userassignedid"] for r in later] == ["u3"]


def test_the_simulator_sender_retries_on_servicetitans_schedule_then_gives_up():
    clock = ManualClock(NOW)
    answers = iter([503, 503, 200] + [500] * 10)
    seen: list[tuple[float, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((clock(), json.loads(request.content)["userassignedid"]))
        return httpx.Response(next(answers))

    start = NOW.timestamp()
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        sender = sim_webhooks.Sender("http://receiver.invalid/hook", "s3cret", client, clock=clock)
        sender.send([event("a"), event("b")])
        for _ in range(500):
            clock.advance(1)
            sender.retry_due()
    assert sender.accepted == 1 and [e["userassignedid"] for e in sender.given_up] == ["b"]
    times = {uid: [t - start for t, u in seen if u == uid] for uid in ("a", "b")}
    assert times == {"a": [0, 10], "b": [0, 10, 40, 100, 400]}  # each retry 10, 30, 60, 300 s after the last


def test_the_simulator_sender_faults_duplicate_reorder_and_forge(receiver):
    simulator = Simulator(SMALL, clock=ManualClock(datetime.now(UTC)))
    now = int(datetime.now(UTC).timestamp())
    events = list(sim_webhooks.events_between(simulator.model, now - 2 * 86400, now))
    assert len(events) > 20
    faults = sim_webhooks.SenderFaults(duplicate=0.5, reorder=1.0, bad_signature=0.2, seed=3)
    with httpx.Client() as client:
        sender = sim_webhooks.Sender(receiver.url, KEY, client, faults=faults, delays=(0.0,) * 6)
        sender.send(events)
        assert sender.attempts > len(events) * 1.4 and sender.waiting > 0, "duplicates sent, some signatures bad"
        while sender.waiting:
            sender.retry_due()
    stored = receiver.stored()
    assert sorted(e["userassignedid"] for e in stored) == sorted(e["userassignedid"] for e in events)
    assert [e["userassignedid"] for e in stored] != [e["userassignedid"] for e in events], "delivered out of order"
    assert not sender.given_up


def _serve(port: int) -> subprocess.Popen:
    """`python -m st_scheduling.webhooks serve` on the inbox the environment chooses (the `where` fixture's)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "st_scheduling.webhooks", "serve", "--port", str(port)],
        env={**os.environ, "ST_WEBHOOK_HMAC_KEY": KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_receiver_killed_mid_burst_loses_no_acknowledged_event(where):
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    events = [event(f"u{i}", delivery=f"d{i}") for i in range(3000)]
    acknowledged: set[str] = set()
    process = _serve(port)
    client = httpx.Client(limits=httpx.Limits(max_connections=16))

    def deliver(document: dict) -> None:
        try:
            if post(url, dumps(document), client=client).status_code == 200:
                acknowledged.add(document["userassignedid"])
        except httpx.HTTPError:
            pass  # the sender retries it later

    killer = threading.Timer(0.5, lambda: process.send_signal(signal.SIGKILL))
    killer.start()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(deliver, events))
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    assert 0 < len(acknowledged) < len(events), "killed in the middle of the burst"
    stored = [r.event["userassignedid"] for r in where.read(None, 10**6)[0]]
    assert acknowledged <= set(stored) and len(stored) == len(set(stored))

    process = _serve(port)  # restarted; the sender retries everything it has no 2xx for
    try:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(deliver, [e for e in events if e["userassignedid"] not in acknowledged]))
    finally:
        process.terminate()
        process.wait(timeout=10)
        client.close()
    stored = [r.event["userassignedid"] for r in where.read(None, 10**6)[0]]
    assert len(acknowledged) == len(events)
    assert sorted(stored) == sorted(e["userassignedid"] for e in events), "every event once"


def test_readers_read_on_from_their_position_in_storage_order(where):
    writer = where.open()
    try:
        assert [writer.submit(f"u{i}", event(f"u{i}")).result(5) for i in (1, 2, 1, 3)] == [True, True, False, True]
        everything, end = where.read(None, 100)
        assert [r.event["userassignedid"] for r in everything] == ["u1", "u2", "u3"] and end == everything[-1].position
        first, position = where.read(None, 1)
        rest, _ = where.read(position, 100)
        assert [r.event["userassignedid"] for r in first + rest] == ["u1", "u2", "u3"]
        assert where.read(end, 100) == ([], end), "nothing new: the position stays"
        foreign = "pg:2" if where.server is None else "1:120"
        assert where.read(foreign, 100)[0] == everything, "another backend's position reads from the first"
        assert writer.submit("u4", event("u4")).result(5) is True
        assert [r.event["userassignedid"] for r in where.read(end, 100)[0]] == ["u4"]
    finally:
        writer.close()


def test_readers_starting_together_on_a_new_postgresql_inbox_all_read_it(pg_server, monkeypatch):
    for name, value in pg_server.environment().items():
        monkeypatch.setenv(name, value)
    server = pg_inbox.Server.from_env()
    assert server is not None
    drop = f"DROP SCHEMA IF EXISTS {pg_inbox.SCHEMA} CASCADE; SELECT 1"
    pg_server.query(drop)
    try:
        with ThreadPoolExecutor(8) as pool:  # the sensors' first ticks, each creating the table when missing
            assert list(pool.map(lambda _: pg_inbox.read(server, None, 10), range(8))) == [([], None)] * 8
    finally:
        pg_server.query(drop)


def _customer_events(receiver: Receiver) -> tuple[list[dict], str]:
    """The simulator's events of the last 20 hours, stored through the receiver, and the email of a customer with
    the most of them."""
    simulator = Simulator(SMALL, clock=ManualClock(datetime.now(UTC)))
    now = int(datetime.now(UTC).timestamp())
    events = list(sim_webhooks.events_between(simulator.model, now - 20 * 3600, now))
    with httpx.Client() as client:
        sender = sim_webhooks.Sender(receiver.url, KEY, client)
        sender.send(events)
    assert sender.accepted == len(events)
    emails = Counter(e["data"]["session"]["customer"]["email"] for e in events) - Counter({None: len(events)})
    [(email, _)] = emails.most_common(1)
    return events, email


def _erase(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "st_scheduling", "erase", *args],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _inbox_bytes(where: backend.Inbox, server: postgres.Server | None) -> bytes:
    """Every byte the inbox keeps its events in: the directory's files, or the table's rows as text."""
    if server is None:
        return b"".join(f.read_bytes() for f in Path(str(where.directory)).rglob("*") if f.is_file())
    return "".join(text for (text,) in server.query(f"SELECT event::text FROM {pg_inbox.TABLE}")).encode()


def test_erase_removes_the_customers_events_from_the_inbox_and_the_sensors_read_on(
    where, receiver, tmp_path, monkeypatch, request
):
    events, email = _customer_events(receiver)
    server = request.getfixturevalue("pg_server") if where.server else None
    monkeypatch.setenv("ST_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    duckdb.connect(str(tmp_path / "warehouse.duckdb")).close()  # an empty warehouse: this test is about the inbox
    theirs = [e["userassignedid"] for e in events if e["data"]["session"]["customer"]["email"] == email]
    assert len(theirs) >= 1 and email.encode() in _inbox_bytes(where, server)
    # A sensor's cursor in the middle of the inbox, before the customer's last event.
    last = max(i for i, e in enumerate(events) if e["userassignedid"] in theirs)
    read_before, cursor = where.read(None, last)
    positions = {r.event["userassignedid"]: r.position for r in where.read(None, 10**6)[0]}

    if where.server is None:
        refused = _erase("--email", email.upper())
        assert refused.returncode == 1 and "stop the receiver, erase again, then start it" in refused.stderr
        assert "nothing was erased" in refused.stderr and email not in refused.stdout + refused.stderr
        assert len(receiver.stored()) == len(events), "refused: nothing changed"
        receiver.close()  # the operator stops the receiver; PostgreSQL takes the erasure while it runs
    done = _erase("--email", f" {email.upper()} ")
    assert done.returncode == 0, done.stderr
    assert "event(s) of the customer erased" in done.stdout and f": {len(theirs)} event(s)" in done.stdout
    assert email not in done.stdout + done.stderr

    assert email.encode() not in _inbox_bytes(where, server), "not a byte of them in the inbox"
    others = [e for e in events if e["userassignedid"] not in theirs]
    assert receiver.stored() == others, "everyone else intact, in order"
    after, _ = where.read(cursor, 10**6)
    assert [r.event for r in after] == [e for e in events[len(read_before) :] if e["userassignedid"] not in theirs]
    assert all(r.position == positions[r.event["userassignedid"]] for r in where.read(None, 10**6)[0]), "none moved"
    # A receiver started again stores new events after them, and the sensor's cursor reaches those too.
    again = Receiver(where, settings()) if where.server is None else receiver
    try:
        assert post(again.url, dumps(event("new"))).json() == {"status": "stored"}
        assert [r.event["userassignedid"] for r in where.read(cursor, 10**6)[0]][-1] == "new"
    finally:
        if again is not receiver:
            again.close()


# The sensors: pure functions, then one pass through Dagster's sensor machinery from the simulator's events.


def test_affected_days_are_the_configured_tenants_creation_days_and_the_rest_is_reported():
    events = [
        event("a", tenant=1, created="2026-10-03T23:30:00Z"),
        event("b", tenant=1, created="2026-10-05T01:00:00Z"),
        event("c", tenant=2),
        event("d", tenant=2),
        event("e", tenant=1, created="2020-01-01T00:00:00Z"),
        event("f", tenant=1, created="2026-10-09T00:00:00Z"),
    ]
    found = webhook_defs.affected_days(events, {1}, today="2026-10-08")
    assert found == webhook_defs.Affected({"2026-10-03", "2026-10-05"}, {2: 2}, 2)
    assert webhook_defs.report(found)[0].startswith(
        "tenant 2: 2 webhook events, but the tenant is not in ST_TENANT_IDS"
    )
    request = webhook_defs.sessions_request(found.days, "3:1200")
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("2026-10-03", "2026-10-05")
    assert request.run_key == "webhooks:3:1200" and request.tags[webhook_defs.TRIGGER_TAG] == "webhooks"


def _abandoned() -> dict:
    document = event(
        "tn.sp.session-abandoned-qualified:s9:1",
        kind=envelope.ABANDONED_QUALIFIED,
        at=datetime(2026, 10, 15, 15, 6, tzinfo=UTC),
    )
    document["data"]["session"].update(
        {
            "schedulerId": "sch-1",
            "lastStep": "TimeslotSelection",
            "category": "Plumbing & Drains",
            "customer": {"firstName": "Ada", "lastName": "Lovelace", "phone": "5125550100", "email": "ada@example.com"},
        }
    )
    return document


def test_a_callback_alert_says_who_where_when_and_what_and_quotes_contact_details_only_when_opted_in():
    steps = {"TimeslotSelection": "schedule"}
    text = webhook_defs.callback_text(
        _abandoned(), "Main website", steps, "America/Chicago", False, "http://dagster.example"
    )
    assert "Main website (Acme, tenant 1001)" in text and "2026-10-15 10:06 America/Chicago" in text
    assert "Plumbing &amp; Drains" in text and "left at: schedule ('TimeslotSelection')" in text
    assert "<http://dagster.example/assets/marts/customer_follow_ups|the call-back list>" in text
    assert not any(pii in text for pii in ("Ada", "Lovelace", "5125550100", "ada@example.com"))
    with_contact = webhook_defs.callback_text(_abandoned(), None, steps, "UTC", True, None)
    assert "contact: Ada Lovelace, 5125550100, ada@example.com" in with_contact and "sch-1" in with_contact


def _tick(sensor, cursor=None, **kwargs):
    """The sensor's answer: a SkipReason or a SensorResult."""
    instance = kwargs.pop("instance", None) or dg.DagsterInstance.ephemeral()
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, **kwargs))


def test_simulator_events_lead_to_a_run_for_their_days_and_one_callback_each(receiver, monkeypatch):
    simulator = Simulator(SMALL, clock=ManualClock(datetime.now(UTC)))
    now = int(datetime.now(UTC).timestamp())
    events = list(sim_webhooks.events_between(simulator.model, now - 20 * 3600, now))
    configured, other = (t.id for t in simulator.tenants)
    with httpx.Client() as client:
        sender = sim_webhooks.Sender(receiver.url, KEY, client)
        sender.send(events)
    assert sender.accepted == len(events)
    resource = ServiceTitanResource(environment="http://127.0.0.1:9", tenant_ids=str(configured))
    instance = dg.DagsterInstance.ephemeral()

    first = _tick(webhook_defs.webhook_sessions, instance=instance, resources={"servicetitan": resource})
    [request] = first.run_requests
    days = sorted({e["data"]["session"]["createdOn"][:10] for e in events if e["data"]["tenantId"] == configured})
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (days[0], days[-1])
    again = _tick(webhook_defs.webhook_sessions, first.cursor, instance=instance, resources={"servicetitan": resource})
    assert again.skip_message == "no new webhook events"

    # Events of a tenant not in the settings are kept and reported; a run in flight holds new events back.
    instance.add_run(
        DagsterRun(
            job_name="raw_sessions_job",
            run_id=make_new_run_id(),
            status=DagsterRunStatus.STARTED,
            tags={webhook_defs.TRIGGER_TAG: webhook_defs.TRIGGER},
        )
    )
    late = event("late", tenant=other, created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert post(receiver.url, dumps(late)).status_code == 200
    held = _tick(webhook_defs.webhook_sessions, first.cursor, instance=instance, resources={"servicetitan": resource})
    assert "wait for the last webhook run" in held.skip_message
    reported = _tick(webhook_defs.webhook_sessions, first.cursor, resources={"servicetitan": resource})
    assert reported.run_requests == [] and f"tenant {other}: 1 webhook events" in reported.skip_reason.skip_message

    callbacks = SlackReceiver()
    try:
        assert _tick(webhook_defs.webhook_callbacks).skip_message == "ST_CALLBACK_WEBHOOK_URL is not set"
        monkeypatch.setenv("ST_CALLBACK_WEBHOOK_URL", callbacks.url)
        posted = _tick(webhook_defs.webhook_callbacks)
        abandoned = [e for e in events if e["type"] == envelope.ABANDONED_QUALIFIED]
        assert len(abandoned) > 0 and len(callbacks.received) == len(abandoned)
        assert posted.skip_reason.skip_message == f"posted {len(abandoned)} call-backs"
        assert _tick(webhook_defs.webhook_callbacks, posted.cursor).skip_message == "no new webhook events"
        assert len(callbacks.received) == len(abandoned), "never twice"
        emails = {e["data"]["session"]["customer"]["email"] for e in abandoned} - {None}
        assert not any(email in post["text"] for post in callbacks.received for email in emails)
    finally:
        callbacks.close()
