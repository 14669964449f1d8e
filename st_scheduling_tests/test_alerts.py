"""The broken-scheduler alarm and alerting: quiet over normal weeks, firing on a silenced scheduler; failed runs,
failed checks and failed freshness posted to a local webhook receiver, short, linked and without record values."""

import dataclasses
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
from dagster._core.events import StepMaterializationData
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.freshness import FreshnessDaemon

from st_scheduling import definitions
from st_scheduling.config import SettingsError, ui_url
from st_scheduling.defs import alerts
from st_scheduling.defs.check_results import check_result
from st_scheduling.defs.marts.assets import MART_ASSETS
from st_scheduling.defs.raw.checks import scheduler_volume_alarm
from st_scheduling.defs.resources import DuckDBWarehouse
from st_scheduling.quality import volume
from st_scheduling.simulator import ManualClock
from st_scheduling.simulator.model import SimulatorSettings, TenantModel, Window
from st_scheduling.vocabulary import load, render
from st_scheduling.warehouse.store import WarehouseSettings, connect
from st_scheduling_tests.conftest import Receiver, materialize, put_sessions, raw_assets, serve, session_record

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
    fired = [
        k for k in range(0, 13) if volume.scheduler_alarm(counts, datetime(2026, 9, 1), start + timedelta(hours=k))
    ]
    assert fired and fired[0] <= 6 and 0 not in fired


def test_poisson_tail():
    assert volume.poisson_at_most(0, 12.0) == pytest.approx(6.144e-6, rel=1e-3)
    assert volume.poisson_at_most(12, 12.0) == pytest.approx(0.5760, rel=1e-3)


@pytest.fixture
def receiver(monkeypatch):
    hook = Receiver()
    monkeypatch.setenv(alerts.WEBHOOK, hook.url)
    yield hook
    hook.close()


def test_the_alarm_check_names_the_broken_scheduler_and_its_alert_is_posted(tmp_path, receiver):
    now = SILENCE + timedelta(hours=8)
    scheduler = busiest_scheduler(BUSY)
    served = serve(dataclasses.replace(BUSY, silenced=((scheduler, int(SILENCE.timestamp())),)), ManualClock(now))
    try:
        warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"))
        first = str((now - timedelta(weeks=5)).date())
        instance = dg.DagsterInstance.ephemeral()
        loaded = materialize(
            [*raw_assets(), scheduler_volume_alarm],
            served.resource(),
            warehouse,
            first,
            str(now.date()),
            instance=instance,
        )
    finally:
        served.close()
    [alarm] = [e for e in loaded.get_asset_check_evaluations() if e.check_name == "scheduler_volume_alarm"]
    assert not alarm.passed
    [example] = alarm.metadata["examples"].value
    assert example["scheduler_id"] == scheduler and example["seen"] == "0" and float(example["expected"]) >= 12
    assert f"({scheduler}): 0 session(s)" in alarm.description

    run = instance.get_run_by_id(loaded.run_id)
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_failed_checks",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=loaded.get_run_success_event(),
    )
    alerts.alert_on_failed_checks(context)
    [message] = receiver.received
    assert "raw/scheduler_sessions scheduler_volume_alarm" in message["text"] and scheduler in message["text"]


def test_a_failed_run_is_posted_with_its_failed_step_and_checks_and_a_link(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("ST_UI_URL", "http://dagster.test/")
    path = str(tmp_path / "w.duckdb")
    with connect(WarehouseSettings(path)) as con:
        put_sessions(con, [session_record("u1")])
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [MART_ASSETS["sessions"]],
        resources={"warehouse": DuckDBWarehouse(database=path)},
        instance=instance,
        raise_on_error=False,
    )
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    alerts.alert_on_run_failure(context)
    [message] = receiver.received
    text = message["text"]
    assert f"<http://dagster.test/runs/{result.run_id}|{result.run_id}>" in text
    assert "step marts__sessions failed" in text
    assert (
        "<http://dagster.test/assets/marts/sessions?view=checks&amp;checkDetail=vocabulary_known|marts/sessions "
        "vocabulary_known>: 2 unknown vocabulary value(s)"
    ) in text


def test_an_unknown_value_carrying_a_customer_s_details_is_described_never_quoted(tmp_path, receiver):
    """A lastStep holding a name, an email and a phone reaches neither the check, the event log, the alert nor the
    published snapshot: the check describes it by its shape, and the mart says only that it was unknown."""
    canary = "Jane Doe jane@example.com 555-0100"
    path, published, home = str(tmp_path / "w.duckdb"), tmp_path / "published", tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with connect(WarehouseSettings(path)) as con:
        put_sessions(
            con,
            [
                *(session_record(f"c{n}", canary, "Abandoned") for n in range(3)),
                session_record("z", "zip-checked", "Abandoned"),
                *(session_record(f"k{n}", "DetailsConfirmed", "Abandoned") for n in range(2)),
            ],
        )
    lenient = tmp_path / "lenient.toml"
    lenient.write_text(render(dataclasses.replace(load(), unknown_threshold=0.9)))
    shape = (
        "a value of 34 characters with letters, digits, spaces, '@' and other symbols (first in tenant 1's session c0)"
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        failed = dg.materialize(
            [MART_ASSETS["sessions"]],
            instance=instance,
            raise_on_error=False,
            resources={"warehouse": DuckDBWarehouse(database=path, publish_dir=str(published))},
        )
        [check] = failed.get_asset_check_evaluations()
        assert not check.passed
        assert f"lastStep {shape} × 3; lastStep 'zip-checked' × 1" in check.description
        alerts.alert_on_run_failure(
            dg.build_run_status_sensor_context(
                sensor_name="alert_on_run_failure",
                dagster_instance=instance,
                dagster_run=instance.get_run_by_id(failed.run_id),
                dagster_event=failed.get_run_failure_event(),
            ).for_run_failure()
        )
        passed = dg.materialize(
            [MART_ASSETS["sessions"]],
            instance=instance,
            resources={
                "warehouse": DuckDBWarehouse(database=path, publish_dir=str(published), vocabulary_file=str(lenient))
            },
        )
        assert passed.success
    [message] = receiver.received
    assert "2 unknown vocabulary value(s) cover 66.7%" in message["text"] and canary not in json.dumps(message)
    # The instance's own files: the event log (SQLite, events as JSON text), run storage and compute logs.
    stored = {f: f.read_bytes() for f in home.rglob("*") if f.is_file()}
    assert [f for f, data in stored.items() if shape.encode() in data], "the finding is in the event log, by its shape"
    assert not [f for f, data in stored.items() if canary.encode() in data]
    snapshot = pq.read_table(published / "sessions.parquet")
    assert sorted(snapshot.column("last_step").to_pylist()) == ["(unknown)"] * 4 + ["DetailsConfirmed"] * 2
    assert canary not in json.dumps(snapshot.to_pylist(), default=str)
    assert not [f for f in published.iterdir() if canary.encode() in f.read_bytes()]
    with duckdb.connect(path, read_only=True) as con:
        assert (
            con.execute("SELECT count(*) FROM raw.scheduler_sessions WHERE last_step = ?", [canary]).fetchone()[0] == 3
        )


@dg.asset(key=["raw", "customers"])
def customers_with_a_bad_date() -> None:
    duckdb.connect().execute("SELECT CAST('jane.doe@example.com' AS DATE)")


def test_a_failed_run_names_the_error_class_never_its_text(receiver, monkeypatch):
    monkeypatch.delenv("ST_UI_URL", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([customers_with_a_bad_date], instance=instance, raise_on_error=False)
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "jane.doe@example.com" in failure.event_specific_data.error.to_string(), "the value is in the error"
    alerts.alert_on_run_failure(
        dg.build_run_status_sensor_context(
            sensor_name="alert_on_run_failure",
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            dagster_event=result.get_run_failure_event(),
        ).for_run_failure()
    )
    [message] = receiver.received
    assert "step raw__customers failed (ConversionException)" in message["text"]
    assert "jane" not in message["text"] and "http" not in message["text"]


def test_a_failed_check_is_quoted_by_its_first_sentence_never_its_example_row():
    result = check_result(
        [("7", "s-1", "jane.doe@example.com")], ("tenant_id", "id", "email"), "one row per (tenant_id, id)"
    )
    assert "jane.doe@example.com" in result.description, "check_result shows the first offending row"
    text = alerts.failed_checks_text(
        "raw_sessions_job", "r-1", [(dg.AssetKey(["raw", "scheduler_sessions"]), "unique_key", result.description)]
    )
    assert "raw/scheduler_sessions unique_key: 1 row(s) break the rule: one row per (tenant_id, id)." in text
    assert "jane" not in text and "s-1" not in text and "First" not in text


def test_shorten_ends_at_a_sentence_with_an_ellipsis_and_stays_under_the_limit():
    text = "The first sentence is here. The second one is a little longer than that. " + "Third " * 40 + "end."
    short = alerts.shorten(text, 80)
    assert short == "The first sentence is here. The second one is a little longer than that. …"
    assert len(short) <= 80
    listed = "; ".join(f"tenant {n}, scheduler S{n}: 0 session(s) where about 14.2 are usual" for n in range(9))
    short = alerts.shorten(listed, 150)
    assert short.endswith("14.2 are usual …") and len(short) <= 150 and short[:-2] in listed
    assert alerts.shorten("one line\nand another that is far too long for it", 20) == "one line …"
    assert alerts.shorten("no sentence ends anywhere in this long line of words", 29) == "no sentence ends anywhere …"
    assert alerts.shorten("short. text", 30) == "short. text"


def test_a_long_alarm_is_cut_at_a_sentence_not_at_400_characters():
    description = "; ".join(
        f"tenant {n}, scheduler Website booking {n} (S{n}): 0 session(s) from 2026-11-19 "
        f"14:00 to 2026-11-19 20:00 where about 14.2 are usual (chance 7.0e-07)"
        for n in range(8)
    )
    text = alerts.failed_checks_text(
        "job", "r-1", [(dg.AssetKey(["raw", "scheduler_sessions"]), "scheduler_volume_alarm", description)]
    )
    line = text.splitlines()[1]
    assert line.endswith("(chance 7.0e-07) …") and len(line) < 2 + 60 + alerts.LINE_LIMIT


def test_links_are_the_ui_routes_when_st_ui_url_is_set_and_absent_otherwise():
    key = dg.AssetKey(["raw", "scheduler sessions"])
    linked = alerts.failed_checks_text("job", "r-1", [(key, "unique_key", "3 row(s) < 0.")], "https://ui.example/d")
    assert "(<https://ui.example/d/runs/r-1|r-1>)" in linked
    assert (
        "<https://ui.example/d/assets/raw/scheduler%20sessions?view=checks&amp;checkDetail=unique_key|"
        "raw/scheduler sessions unique_key>: 3 row(s) &lt; 0."
    ) in linked
    plain = alerts.failed_checks_text("job", "r-1", [(key, "unique_key", "3 row(s) < 0.")], None)
    assert "http" not in plain and "<" not in plain and "(r-1)" in plain
    fresh = alerts.freshness_text(
        [(key, "not updated within 3 h", datetime(2026, 11, 19, 14, 5, tzinfo=UTC))],
        [dg.AssetKey(["marts", "sessions"])],
        "http://localhost:3000",
    )
    assert (
        "<http://localhost:3000/assets/raw/scheduler%20sessions|raw/scheduler sessions>: not updated within 3 h"
        " (failing since 2026-11-19 14:05 UTC)" in fresh
    )
    assert "fresh again: <http://localhost:3000/assets/marts/sessions|marts/sessions>" in fresh


def test_st_ui_url_must_be_an_http_address(monkeypatch):
    monkeypatch.setenv("ST_UI_URL", "https://dagster.example.com/prefix/")
    assert ui_url() == "https://dagster.example.com/prefix"
    monkeypatch.setenv("ST_UI_URL", "")
    assert ui_url() is None
    for bad in ("localhost:3000", "ftp://host", "http://", "http://host/?tab=1"):
        monkeypatch.setenv("ST_UI_URL", bad)
        with pytest.raises(SettingsError, match="ST_UI_URL="):
            ui_url()


def test_freshness_changes_post_a_failure_once_and_a_recovery_once():
    assert alerts.freshness_changes([], {"a": "FAIL", "b": "PASS", "c": "UNKNOWN"}) == (["a"], [], ["a"])
    assert alerts.freshness_changes(["a"], {"a": "FAIL", "b": "WARN"}) == ([], [], ["a"])
    assert alerts.freshness_changes(["a"], {"a": "PASS", "b": "FAIL"}) == (["b"], ["a"], ["b"])
    assert alerts.freshness_changes(["a"], {"a": "WARN"}) == ([], ["a"], [])
    assert alerts.freshness_changes(["a"], {"a": "NOT_APPLICABLE"}) == ([], [], []), "policy removed: no news"
    assert alerts.freshness_changes(["a"], {}) == ([], [], [])


def backdated_materialization(instance: dg.DagsterInstance, key: dg.AssetKey, when: datetime) -> None:
    """A materialization recorded as if it happened at `when`, as report_runless_asset_event records one now."""
    instance.report_dagster_event(
        dg.DagsterEvent(
            dg.DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name=RUNLESS_JOB_NAME,
            event_specific_data=StepMaterializationData(dg.AssetMaterialization(key)),
        ),
        run_id=RUNLESS_RUN_ID,
        timestamp=when.timestamp(),
    )


def test_a_stale_asset_is_posted_once_with_its_link_and_its_recovery_once(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("ST_DUCKDB_PATH", str(tmp_path / "never.duckdb"))
    monkeypatch.setenv("ST_UI_URL", "http://dagster.test")
    sessions = dg.AssetKey(["raw", "scheduler_sessions"])
    project = definitions.defs()
    target = InProcessTestWorkspaceLoadTarget(
        InProcessCodeLocationOrigin(
            LoadableTargetOrigin(module_name="st_scheduling.definitions", attribute="defs"),
            location_name="st_scheduling",
        )
    )
    with dg.instance_for_test() as instance, create_test_daemon_workspace_context(target, instance) as workspace:
        daemon = FreshnessDaemon()

        def tick(cursor: str | None):
            list(daemon.run_iteration(workspace))  # Dagster's own freshness evaluation, as `dagster dev` runs it
            return alerts.alert_on_stale_assets(
                dg.build_sensor_context(instance=instance, cursor=cursor, definitions=project)
            )

        backdated_materialization(instance, sessions, datetime.now(UTC) - timedelta(hours=4))
        monkeypatch.delenv(alerts.WEBHOOK)
        waiting = tick(None)
        assert instance.get_freshness_state_records([sessions])[sessions].freshness_state.value == "FAIL"
        assert isinstance(waiting, dg.SkipReason) and not receiver.received, "no webhook: the cursor stays"

        monkeypatch.setenv(alerts.WEBHOOK, receiver.url)
        first = tick(None)
        [late] = receiver.received
        assert late["text"].startswith(":hourglass: st_scheduling data is late")
        assert (
            "<http://dagster.test/assets/raw/scheduler_sessions|raw/scheduler_sessions>: not updated within 3 h"
            in late["text"]
        )
        assert late["text"].count("• ") == 1, "assets never materialized are UNKNOWN, not late"

        again = tick(first.cursor)
        assert len(receiver.received) == 1 and again.cursor == first.cursor, "evaluated again: no second post"

        instance.report_runless_asset_event(dg.AssetMaterialization(sessions))
        recovered = tick(again.cursor)
        assert receiver.received[1]["text"] == (
            ":white_check_mark: st_scheduling data is fresh again: "
            "<http://dagster.test/assets/raw/scheduler_sessions|"
            "raw/scheduler_sessions>"
        )
        tick(recovered.cursor)
        assert len(receiver.received) == 2
    assert not (tmp_path / "never.duckdb").exists(), "the sensor never opens the warehouse"


def test_nothing_is_posted_while_no_webhook_is_set(monkeypatch):
    monkeypatch.delenv(alerts.WEBHOOK, raising=False)
    assert alerts.post("hello") is False
