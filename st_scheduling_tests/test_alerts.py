"""The broken-scheduler alarm and alerting: quiet over normal weeks, firing on a silenced scheduler, and
failed runs and checks posted to a local webhook receiver."""

import dataclasses
import json
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from st_scheduling.defs import alerts
from st_scheduling.defs.marts.assets import MART_ASSETS
from st_scheduling.defs.raw.checks import scheduler_volume_alarm
from st_scheduling.defs.resources import DuckDBWarehouse
from st_scheduling.simulator import ManualClock
from st_scheduling.simulator.model import SimulatorSettings, TenantModel, Window
from st_scheduling.warehouse import volume
from st_scheduling.warehouse.store import WarehouseSettings, connect
from st_scheduling_tests.conftest import materialize, put_sessions, raw_assets, serve, session_record

BUSY = SimulatorSettings(seed=5, tenant_count=2, schedulers_per_tenant=3, daily_sessions=40.0, epoch=date(2026, 9, 1))
WEEK_END = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
SILENCE = datetime(2026, 11, 19, 14, tzinfo=UTC)  # a Thursday afternoon


def hourly_counts(settings: SimulatorSettings, end: datetime) -> dict[tuple, Counter]:
    """Sessions per UTC hour of every scheduler over the five weeks before `end`, straight from the model."""
    model, now = TenantModel(settings), int(end.timestamp())
    start = int((end - timedelta(weeks=5, days=1)).timestamp())
    found = {}
    for tenant in model.tenants.values():
        for scheduler in model.schedulers(tenant, now):
            counts = Counter()
            for _, record in model.records(tenant, scheduler, Window(start, now), now):
                created = datetime.fromisoformat(record["createdOn"].replace("Z", "+00:00"))
                counts[created.replace(tzinfo=None, minute=0, second=0)] += 1
            found[(tenant.id, scheduler.id, scheduler.weight)] = counts
    return found


def busiest_scheduler(settings: SimulatorSettings) -> str:
    model = TenantModel(settings)
    tenant = next(iter(model.tenants.values()))
    return max(model.schedulers(tenant, int(WEEK_END.timestamp())), key=lambda s: s.weight).id


@pytest.mark.parametrize("seed", [5, 11])
def test_the_alarm_stays_quiet_over_a_normal_week_nights_and_weekend_included(seed):
    first = datetime(2026, 9, 1)
    for key, counts in hourly_counts(dataclasses.replace(BUSY, seed=seed), WEEK_END).items():
        for hour in range(24 * 7):
            now = WEEK_END.replace(tzinfo=None) - timedelta(days=7, hours=-hour)
            assert volume.scheduler_alarm(counts, first, now) is None, (key, now)


def test_a_silenced_scheduler_fires_within_six_busy_hours_and_not_before():
    scheduler = busiest_scheduler(BUSY)
    silenced = dataclasses.replace(BUSY, silenced=((scheduler, int(SILENCE.timestamp())),))
    counts = next(c for (_, s, _), c in hourly_counts(silenced, WEEK_END).items() if s == scheduler)
    start = SILENCE.replace(tzinfo=None)
    fired = [k for k in range(0, 13) if volume.scheduler_alarm(counts, datetime(2026, 9, 1),
                                                                start + timedelta(hours=k))]
    assert fired and fired[0] <= 6 and 0 not in fired


def test_poisson_tail():
    assert volume.poisson_at_most(0, 12.0) == pytest.approx(6.144e-6, rel=1e-3)
    assert volume.poisson_at_most(12, 12.0) == pytest.approx(0.5760, rel=1e-3)


class Receiver:
    """A local Slack-compatible webhook that keeps what it is sent."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(monkeypatch):
    hook = Receiver()
    monkeypatch.setenv(alerts.WEBHOOK, hook.url)
    yield hook
    hook.server.shutdown()


def test_the_alarm_check_names_the_broken_scheduler_and_its_alert_is_posted(tmp_path, receiver):
    now = SILENCE + timedelta(hours=8)
    scheduler = busiest_scheduler(BUSY)
    served = serve(dataclasses.replace(BUSY, silenced=((scheduler, int(SILENCE.timestamp())),)), ManualClock(now))
    try:
        warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
        first = str((now - timedelta(weeks=5)).date())
        instance = dg.DagsterInstance.ephemeral()
        loaded = materialize([*raw_assets(), scheduler_volume_alarm], served.resource(), warehouse, first,
                             str(now.date()), instance=instance)
    finally:
        served.close()
    [alarm] = [e for e in loaded.get_asset_check_evaluations() if e.check_name == "scheduler_volume_alarm"]
    assert not alarm.passed
    [example] = alarm.metadata["examples"].value
    assert example["scheduler_id"] == scheduler and example["seen"] == "0" and float(example["expected"]) >= 12
    assert f"({scheduler}): 0 session(s)" in alarm.description

    run = instance.get_run_by_id(loaded.run_id)
    context = dg.build_run_status_sensor_context(sensor_name="alert_on_failed_checks", dagster_instance=instance,
                                                 dagster_run=run, dagster_event=loaded.get_run_success_event())
    alerts.alert_on_failed_checks(context)
    [message] = receiver.received
    assert "raw/scheduler_sessions scheduler_volume_alarm" in message["text"] and scheduler in message["text"]


def test_a_failed_run_is_posted_with_its_cause(tmp_path, receiver):
    path = str(tmp_path / "w.duckdb")
    with connect(WarehouseSettings(path)) as con:
        put_sessions(con, [session_record("u1")])
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([MART_ASSETS["sessions"]], resources={"warehouse": DuckDBWarehouse(path=path)},
                            instance=instance, raise_on_error=False)
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure", dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id), dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    alerts.alert_on_run_failure(context)
    [message] = receiver.received
    assert result.run_id in message["text"] and "marts/sessions: 2 unknown vocabulary value(s)" in message["text"]


def test_nothing_is_posted_while_no_webhook_is_set(monkeypatch):
    monkeypatch.delenv(alerts.WEBHOOK, raising=False)
    assert alerts.post("hello") is False
