"""A week of operation in minutes: the real daemon's scheduler, sensor and automation loops on a controlled clock.

Each simulated hour the test freezes Dagster's clock and the simulator's (served over loopback) at the same
moment, then runs one iteration of each daemon as `dagster-daemon` would: the scheduler (hourly refresh, nightly
look-back), the asset daemon (`marts_follow_raw`) and the sensor daemon (late updates, scheduler changes, alerts).
The freshness daemon evaluates every freshness policy. Runs go through the instance's run launcher,
executed in this process under the frozen clock. Mid-week the API
fails for three hours, a scheduler goes silent, a release renames a `lastStep` value for three hours, a campaign
is renamed and a scheduler launches. At the end: no failed tick, every materialization's checks evaluated, the
alerts posted are exactly those the faults explain, raw equals a fresh read of the API, and every mart equals a
full rebuild from scratch.
"""

import dataclasses
import logging
import os
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.test_utils import freeze_time
from dagster._daemon.asset_daemon import AssetDaemon
from dagster._daemon.freshness import FreshnessDaemon
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._daemon.sensor import execute_sensor_iteration
from dagster._scheduler.scheduler import launch_scheduled_runs

from st_scheduling.definitions import defs
from st_scheduling.defs.marts.assets import MART_ASSETS
from st_scheduling.defs.resources import DuckDBWarehouse
from st_scheduling.simulator import ManualClock, Simulator, SimulatorSettings
from st_scheduling.simulator.faults import FaultInjector, FaultRates
from st_scheduling.transform.catalogue import MARTS
from st_scheduling.warehouse.raw_tables import RAW_TABLES
from st_scheduling_tests.conftest import (
    Receiver,
    Served,
    daemon_workspace,
    failed_ticks,
    live_environment,
    materialize,
    raw_assets,
    run_queued,
)

pytestmark = [pytest.mark.slow, pytest.mark.week]

START = datetime(2026, 11, 9, 0, 10, tzinfo=UTC)  # a Monday, 00:10
DAYS = 7
EPOCH = (START - timedelta(days=25)).date()  # enough history for the alarm's four-week baselines
HOUR = timedelta(hours=1)
OUTAGE = (START + timedelta(days=1, hours=9), START + timedelta(days=1, hours=12))  # every call fails
SILENCE = START + timedelta(days=2, hours=14)  # a busy scheduler's embed breaks
RELABEL = (START + timedelta(days=4, hours=9), START + timedelta(days=4, hours=12))  # a new lastStep name, rolled back
# The relabelled sessions keep their modifiedOn when the release is rolled back, so the hourly read of changes cannot
# see the rollback: the vocabulary check holds the marts until the nightly look-back replaces those days.
RELABEL_HELD = (RELABEL[0], (RELABEL[1] + timedelta(days=1)).replace(hour=2, minute=30))
RENAME = START + timedelta(days=3, hours=6)
UNKNOWN_STEP = "ZipConfirmedV2"


def _world() -> SimulatorSettings:
    base = SimulatorSettings(seed=23, tenant_count=1, schedulers_per_tenant=6, daily_sessions=30.0, epoch=EPOCH)
    [tenant] = Simulator(base).tenants
    end = (START + timedelta(days=DAYS)).timestamp()
    launched = [s for s in tenant.schedulers if START.timestamp() < s.created < end]
    assert launched, "a scheduler launches during the week"
    busy = max(tenant.schedulers[:2], key=lambda s: s.weight)
    campaign = _a_campaign(Simulator(base, clock=ManualClock(START)), tenant)
    return dataclasses.replace(
        base,
        silenced=((busy.id, int(SILENCE.timestamp())),),
        renamed_campaigns=((campaign, f"{campaign} (renamed)", int(RENAME.timestamp())),),
        relabeled_steps=(
            (tenant.schedulers[1].id, UNKNOWN_STEP, int(RELABEL[0].timestamp()), int(RELABEL[1].timestamp())),
        ),
    )


def _a_campaign(simulator: Simulator, tenant) -> str:
    names = Counter(
        record.get("campaignName")
        for scheduler in tenant.schedulers
        for day in simulator.model.days(int(START.timestamp()) - 86400 * 3, int(START.timestamp()))
        for _, record in simulator.model.day_records(tenant, scheduler, day, _everything(), int(START.timestamp()))
    )
    names.pop(None, None)
    return names.most_common(1)[0][0]


def _everything():
    from st_scheduling.simulator.model import Window

    return Window()


@pytest.fixture
def week(tmp_path, monkeypatch):
    clock = ManualClock(START)
    simulator = Simulator(_world(), clock=clock, sleep=lambda seconds: None)
    served, receiver = Served(simulator), Receiver()
    live_environment(
        monkeypatch,
        served,
        ST_DUCKDB_PATH=str(tmp_path / "warehouse.duckdb"),
        ST_START_DATE=EPOCH.isoformat(),
        ST_LOOKBACK_DAYS="30",
        ST_ALERT_WEBHOOK_URL=receiver.url,
        ST_API_MAX_ATTEMPTS="2",
        ST_API_RETRY_BASE_SECONDS="0.01",
        ST_API_MAX_RETRY_SECONDS="5",
        ST_API_TIMEOUT_SECONDS="30",
    )
    with daemon_workspace(tmp_path / "home") as workspace:
        yield Week(workspace.instance, workspace, simulator, clock, receiver, served, tmp_path)
    served.close()
    receiver.close()


@dataclasses.dataclass
class Week:
    instance: dg.DagsterInstance
    workspace: object
    simulator: Simulator
    clock: ManualClock
    receiver: Receiver
    served: Served
    tmp_path: Path
    queue: QueuedRunCoordinatorDaemon = dataclasses.field(
        default_factory=lambda: QueuedRunCoordinatorDaemon(interval_seconds=0)
    )
    freshness: FreshnessDaemon = dataclasses.field(default_factory=lambda: FreshnessDaemon(interval_seconds=0))

    def hour(self, now: datetime, logger: logging.Logger, schedule_times: dict, asset_daemon: AssetDaemon) -> None:
        """The daemons' loops over the first minutes of an hour: each pass runs the scheduler, the freshness
        daemon, the sensor daemon and the asset daemon once at a frozen moment, and the runs they queue. Passes a
        minute apart, as the loops' own intervals are, let the automation see the marts' runs end before raw
        changes again."""
        faults = FaultRates(server_error=1.0) if OUTAGE[0] <= now < OUTAGE[1] else None
        self.simulator.faults = FaultInjector(faults)
        for minute in range(3):
            moment = now + timedelta(minutes=minute)
            self.clock.set(moment)
            with freeze_time(moment):
                list(launch_scheduled_runs(self.workspace, logger, moment, schedule_times))
                run_queued(self.workspace, self.queue)
                list(self.freshness.run_iteration(self.workspace))
                list(execute_sensor_iteration(self.workspace, logger, None, None))
                run_queued(self.workspace, self.queue)
                # Last in the pass, as the daemon's loops interleave: raw written by a sensor's run in the last
                # pass of the week is followed too.
                asset_daemon._run_iteration_impl(
                    self.workspace, threadpool_executor=None, amp_tick_futures={}, debug_crash_flags={}
                )
                run_queued(self.workspace, self.queue)


def _differences(path: str, other: str, qualified: str, leave_out=("ingested_at", "run_id", "commit_number")) -> tuple:
    """Rows only in `path`'s table, rows only in `other`'s (as multisets), the writer's own columns left out."""
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{path}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{other}' AS b (READ_ONLY)")
        columns = ", ".join(
            c
            for (c,) in con.execute(f"SELECT column_name FROM (DESCRIBE a.{qualified})").fetchall()
            if c not in leave_out
        )
        return tuple(
            con.execute(
                f"SELECT count(*) FROM (SELECT {columns} FROM {x}.{qualified} EXCEPT ALL "
                f"SELECT {columns} FROM {y}.{qualified})"
            ).fetchone()[0]
            for x, y in (("a", "b"), ("b", "a"))
        )


def _in(window: tuple[datetime, datetime], moment: datetime, grace: timedelta = timedelta(0)) -> bool:
    return window[0] <= moment < window[1] + grace


def test_a_week_left_running_stays_right(week):
    logger = logging.getLogger("week_of_operation")
    schedule_times: dict = {}
    asset_daemon = AssetDaemon(settings=week.instance.get_settings("auto_materialize"), pre_sensor_interval_seconds=0)
    alerts_at: list[tuple[datetime, str]] = []
    now = START
    while now <= START + timedelta(days=DAYS):
        posted = len(week.receiver.received)
        week.hour(now, logger, schedule_times, asset_daemon)
        alerts_at += [(now, text) for text in week.receiver.texts()[posted:]]
        now += HOUR
    final = now - HOUR
    instance = week.instance

    # No tick failed: an unreachable API makes the sensors skip, naming it.
    assert failed_ticks(instance) == []

    # Every materialization's checks evaluated, in the run that materialized it.
    declared = defs().resolve_asset_graph().asset_check_keys
    runs, missing = instance.get_runs(), []
    for run in runs:
        materialized = {
            e.dagster_event.asset_key
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        }
        evaluated = {
            e.dagster_event.event_specific_data.asset_check_key
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        }
        missing += [
            (run.job_name, key.to_user_string()) for key in declared - evaluated if key.asset_key in materialized
        ]
    assert missing == []
    # The marts followed raw all week, hour after hour, with no manual launch.
    raw_sessions, mart_sessions = dg.AssetKey(["raw", "scheduler_sessions"]), dg.AssetKey(["marts", "sessions"])
    [last_raw] = instance.fetch_materializations(raw_sessions, limit=1).records
    [last_mart] = instance.fetch_materializations(mart_sessions, limit=1).records
    assert last_raw.storage_id < last_mart.storage_id
    followed = [r for r in runs if r.tags.get("dagster/sensor_name") == "marts_follow_raw"]
    assert len(followed) >= 20 * DAYS, "the marts follow nearly every hourly refresh (the nightly job builds its own)"

    # Alerts: each fault explained, nothing else.
    unexplained = []
    for at, text in alerts_at:
        if _in(OUTAGE, at, HOUR) and "run failed" in text:
            continue
        if _in(OUTAGE, at, 2 * HOUR) and ("data is late" in text or "data is fresh again" in text):
            continue
        if at >= SILENCE and "scheduler_volume_alarm" in text:
            continue
        if _in(RELABEL, at, timedelta(days=2)) and ("vocabulary" in text or "run failed" in text):
            continue
        if _in(RELABEL_HELD, at, 3 * HOUR) and ("data is late" in text or "data is fresh again" in text):
            continue
        unexplained.append((at.isoformat(), text))
    assert unexplained == []
    assert any(_in(OUTAGE, at, HOUR) and "run failed" in text for at, text in alerts_at), "the outage was posted"
    assert any(_in(OUTAGE, at, 2 * HOUR) and "data is late" in text for at, text in alerts_at), "raw went stale"
    assert any("scheduler_volume_alarm" in text for _, text in alerts_at), "the silent scheduler was posted"
    assert any(_in(RELABEL, at, HOUR) and "vocabulary" in text for at, text in alerts_at), "the new step was posted"
    held = [(at, text) for at, text in alerts_at if _in(RELABEL_HELD, at, 3 * HOUR) and "marts/sessions" in text]
    assert not held or ("fresh again" in held[-1][1] and held[-1][0] >= RELABEL_HELD[1]), (
        "the look-back freed the marts"
    )

    # Raw equals a fresh read of the API at the final clock.
    warehouse_path = os.environ["ST_DUCKDB_PATH"]
    fresh = DuckDBWarehouse(database=str(week.tmp_path / "fresh.duckdb"))
    with freeze_time(final):
        read = materialize(raw_assets(), week.served.resource(), fresh, EPOCH.isoformat(), final.date().isoformat())
    assert read.success
    for table in RAW_TABLES:
        assert _differences(warehouse_path, fresh.path, table.qualified) == (0, 0), table.qualified

    # Every mart equals a full rebuild from scratch (the same raw and salt, in a copy of the warehouse).
    rebuilt_path = str(week.tmp_path / "rebuilt.duckdb")
    shutil.copy(warehouse_path, rebuilt_path)
    with duckdb.connect(rebuilt_path) as con:
        for mart in MARTS:
            con.execute(f"DROP TABLE IF EXISTS {mart.qualified}")
    config = {"ops": {f"marts__{m.name}": {"config": {"full_rebuild": True}} for m in MARTS}}
    rebuild = dg.materialize(
        list(MART_ASSETS.values()),
        resources={"warehouse": DuckDBWarehouse(database=rebuilt_path)},
        run_config=config,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert rebuild.success
    for mart in MARTS:
        assert _differences(warehouse_path, rebuilt_path, mart.qualified, ()) == (0, 0), mart.qualified
