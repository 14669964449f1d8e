"""Webhooks through the real daemon: sessions completed and abandoned at the simulator reach `marts/sessions` and
the funnel, and call-back alerts reach a local Slack receiver, with no manual launch.

The warehouse holds every day up to half an hour ago, as a running platform would, and the daemon's loops run a
pass every few seconds of a clock frozen for Dagster and the simulator (served over loopback) together: the sensor
daemon (`webhook_sessions`, `webhook_callbacks` and the rest), the run queue, the asset daemon (`marts_follow_raw`)
and the run queue again, as `dagster-daemon` runs them; runs execute in this process under the same clock. The
simulator's sender then delivers the events of that half hour, each twice under two ids and out of order, to the
real receiver under uvicorn, and the passes go on until the events' sessions are in `marts/sessions`.

The frozen clock stays within hours of the wall clock, behind it: the sensors run in the code server the daemon
starts, which Dagster's frozen clock does not reach, and they compare events with the wall clock (a session's day
with today, a call-back's age with 24 hours).
"""

import dataclasses
import logging
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest
from dagster._core.test_utils import freeze_time
from dagster._daemon.asset_daemon import AssetDaemon
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._daemon.sensor import execute_sensor_iteration

from st_scheduling.definitions import defs
from st_scheduling.defs.partitions import RANGE_END, RANGE_START
from st_scheduling.simulator import ManualClock, Simulator, SimulatorSettings
from st_scheduling.simulator import webhooks as sim_webhooks
from st_scheduling_tests.conftest import Receiver as SlackReceiver
from st_scheduling_tests.conftest import Served, daemon_workspace, failed_ticks, live_environment, run_queued
from st_scheduling_tests.test_webhooks import KEY, file_inbox, settings
from st_scheduling_tests.test_webhooks import Receiver as WebhookReceiver

pytestmark = pytest.mark.slow

WINDOW = timedelta(minutes=30)  # the events delivered: what happened since the warehouse was loaded
STEP = timedelta(seconds=5)  # between passes: a third of the webhook sensors' 15 s, so each of their ticks is on time
LEAD = timedelta(seconds=60)  # passes before the delivery, so each sensor ticks on its own rhythm when it comes
# Of frozen time after the delivery: the path takes at most one webhook_sessions interval (15 s) and one
# marts_follow_raw interval (30 s); the rest is margin.
DEADLINE = timedelta(minutes=2)
SENSOR = "dagster/sensor_name"
LOG = logging.getLogger(__name__)


def _world(epoch: date) -> SimulatorSettings:
    return SimulatorSettings(seed=29, tenant_count=1, schedulers_per_tenant=3, daily_sessions=200.0, epoch=epoch)


def _delivery_moment(world: SimulatorSettings) -> datetime:
    """The latest whole minute of the last 12 hours whose last WINDOW saw the simulator complete a session and
    abandon a qualified one: a quiet hour may see neither."""
    model = Simulator(world).model
    latest = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    for minutes in range(0, 12 * 60, 5):
        end = latest - timedelta(minutes=minutes)
        if {e["type"] for e in _events(model, end)} == {sim_webhooks.COMPLETED, sim_webhooks.ABANDONED_QUALIFIED}:
            return end
    raise AssertionError("the simulator completed and abandoned nothing in 12 hours")


def _events(model, end: datetime) -> list[dict]:
    return list(sim_webhooks.events_between(model, int((end - WINDOW).timestamp()), int(end.timestamp())))


def _key(event: dict) -> tuple[int, str]:
    return event["data"]["tenantId"], event["data"]["session"]["id"]


@dataclasses.dataclass
class Platform:
    workspace: object
    clock: ManualClock
    simulator: Simulator
    receiver: WebhookReceiver
    slack: SlackReceiver
    warehouse: Path
    epoch: date
    delivery: datetime
    queue: QueuedRunCoordinatorDaemon = dataclasses.field(
        default_factory=lambda: QueuedRunCoordinatorDaemon(interval_seconds=0)
    )

    def __post_init__(self):
        self.automation = AssetDaemon(
            settings=self.workspace.instance.get_settings("auto_materialize"), pre_sensor_interval_seconds=0
        )

    def daemon_pass(self, moment: datetime) -> None:
        """One iteration of the sensor daemon, the run queue, the asset daemon and the run queue at `moment`."""
        self.clock.set(moment)
        with freeze_time(moment):
            list(execute_sensor_iteration(self.workspace, LOG, None, None))
            run_queued(self.workspace, self.queue)
            self.automation._run_iteration_impl(
                self.workspace, threadpool_executor=None, amp_tick_futures={}, debug_crash_flags={}
            )
            run_queued(self.workspace, self.queue)

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql).fetchall()

    def sessions(self, keys: set[tuple[int, str]]) -> dict[tuple[int, str], tuple]:
        """(tenant, session) -> (modified_at, is_booked, is_abandoned, scheduler_id, session_date) in marts.sessions,
        for those in `keys`."""
        rows = self.query(
            "SELECT tenant_id, session_id, modified_at, is_booked, is_abandoned, scheduler_id, "
            "session_date FROM marts.sessions"
        )
        return {(tenant, session): tuple(rest) for tenant, session, *rest in rows if (tenant, session) in keys}


@pytest.fixture
def platform(tmp_path, monkeypatch):
    # The world begins on the first partition, so every session an event names is in a partition.
    epoch = (datetime.now(UTC) - timedelta(days=3)).date()
    world = _world(epoch)
    delivery = _delivery_moment(world)
    clock = ManualClock(delivery - WINDOW)
    simulator = Simulator(world, clock=clock, sleep=lambda seconds: None)
    served, slack = Served(simulator), SlackReceiver()
    receiver = WebhookReceiver(file_inbox(tmp_path / "inbox"), settings())
    warehouse = tmp_path / "warehouse.duckdb"
    live_environment(
        monkeypatch,
        served,
        ST_DUCKDB_PATH=str(warehouse),
        ST_START_DATE=epoch.isoformat(),
        ST_WEBHOOK_INBOX=str(receiver.directory),
        ST_WEBHOOK_HMAC_KEY=KEY,
        ST_CALLBACK_WEBHOOK_URL=slack.url,
    )
    try:
        with daemon_workspace(tmp_path / "home") as workspace:
            yield Platform(workspace, clock, simulator, receiver, slack, warehouse, epoch, delivery)
    finally:
        receiver.close()
        served.close()
        slack.close()


def test_webhook_events_reach_the_marts_and_the_callback_receiver_through_the_daemon(platform):
    instance, delivery = platform.workspace.instance, platform.delivery
    loaded = delivery - WINDOW

    # The warehouse as a running platform holds it, then the daemon running before anything is delivered.
    job = defs().resolve_job_def("scheduling_pro_job")
    with freeze_time(loaded):
        initial = job.execute_in_process(
            instance=instance, tags={RANGE_START: platform.epoch.isoformat(), RANGE_END: loaded.date().isoformat()}
        )
    assert initial.success
    platform.daemon_pass(loaded)
    moment = delivery - LEAD
    while moment <= delivery:
        platform.daemon_pass(moment)
        moment += STEP

    events = _events(platform.simulator.model, delivery)
    latest = {_key(e): e for e in sorted(events, key=lambda e: e["time"])}  # each session's last event
    keys = set(latest)

    def as_new(row: tuple, key: tuple[int, str]) -> bool:
        return row[0] >= datetime.fromisoformat(latest[key]["data"]["session"]["modifiedOn"])

    assert not any(as_new(row, key) for key, row in platform.sessions(keys).items()), (
        "before the delivery, the marts hold no session as its event left it"
    )

    with httpx.Client() as client:
        sender = sim_webhooks.Sender(
            platform.receiver.url, KEY, client, faults=sim_webhooks.SenderFaults(duplicate=1.0, reorder=1.0)
        )
        sender.send(events)
    assert sender.accepted == sender.attempts == 2 * len(events), "every delivery acknowledged at once"

    # The daemon's passes until every event's session is in marts/sessions, as new as its event or newer.
    moment = delivery
    while True:
        moment += STEP
        platform.daemon_pass(moment)
        arrived = platform.sessions(keys)
        if arrived.keys() == keys and all(as_new(arrived[key], key) for key in keys):
            break
        assert moment - delivery < DEADLINE, "the events' sessions did not reach marts/sessions"
    for key, event in latest.items():
        _, booked, abandoned, *_ = arrived[key]
        assert booked if event["type"] == sim_webhooks.COMPLETED else abandoned, event["userassignedid"]

    # Launched by the sensors alone: one webhook run over the events' days (UTC: ST_TIMEZONE is unset), the marts
    # after it by marts_follow_raw.
    later = [run for run in instance.get_runs() if run.run_id != initial.run_id]
    assert all(run.tags.get(SENSOR) and run.status == dg.DagsterRunStatus.SUCCESS for run in later), [
        (run.job_name, run.tags.get(SENSOR), run.status) for run in later
    ]
    [webhook_run] = [run for run in later if run.tags[SENSOR] == "webhook_sessions"]
    days = sorted(datetime.fromisoformat(e["data"]["session"]["createdOn"]).date().isoformat() for e in events)
    assert webhook_run.job_name == "raw_sessions_job"
    assert (webhook_run.tags[RANGE_START], webhook_run.tags[RANGE_END]) == (days[0], days[-1])
    [raw] = instance.fetch_materializations(dg.AssetKey(["raw", "scheduler_sessions"]), limit=1).records
    assert raw.run_id == webhook_run.run_id
    for mart in ("sessions", "milestone_funnel"):
        [record] = instance.fetch_materializations(dg.AssetKey(["marts", mart]), limit=1).records
        assert record.storage_id > raw.storage_id, mart
        assert instance.get_run_by_id(record.run_id).tags[SENSOR] == "marts_follow_raw", mart

    # The funnel counts them: its day rows for the events' schedulers and days agree with marts/sessions on
    # sessions, abandoned and booked (a completed event moved its session to booked since the warehouse was loaded).
    rows = platform.query("""
        SELECT f.tenant_id, f.scheduler_id, f.period_start, f.sessions, f.abandoned_sessions, f.sessions_reached,
               count(*) FILTER (WHERE NOT s.is_bot), count(*) FILTER (WHERE NOT s.is_bot AND s.is_abandoned),
               count(*) FILTER (WHERE NOT s.is_bot AND s.is_booked)
        FROM marts.milestone_funnel AS f
        JOIN marts.sessions AS s
            ON s.tenant_id = f.tenant_id AND s.scheduler_id = f.scheduler_id AND s.session_date = f.period_start
        WHERE f.grain = 'day' AND f.milestone = 'booked'
        GROUP BY ALL""")
    groups = {(tenant, scheduler, day) for (tenant, _), (*_, scheduler, day) in arrived.items()}
    funnel = {
        (tenant, scheduler, day): counts
        for tenant, scheduler, day, *counts in rows
        if (tenant, scheduler, day) in groups
    }
    assert funnel.keys() == groups
    assert all(counts[:3] == counts[3:] for counts in funnel.values()), funnel

    # Each qualified abandonment posted once, though delivered twice.
    posted = Counter(re.search(r"session: (\S+);", message["text"]).group(1) for message in platform.slack.received)
    assert posted == Counter(
        e["data"]["session"]["id"] for e in events if e["type"] == sim_webhooks.ABANDONED_QUALIFIED
    )
    assert failed_ticks(instance) == []
