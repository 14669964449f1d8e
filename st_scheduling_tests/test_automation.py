"""Schedules, sensors and marts following raw data, evaluated on a Dagster instance against the simulator."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from st_scheduling.defs import automation
from st_scheduling.defs.marts.assets import MART_ASSETS
from st_scheduling.simulator.model import DAY
from st_scheduling_tests.conftest import NOW, materialize, raw_assets


def _tags(request: dg.RunRequest) -> tuple[str, str]:
    return request.tags[automation.RANGE_START], request.tags[automation.RANGE_END]


def test_the_hourly_refresh_covers_yesterday_and_today():
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 10, 15, 10, 5, tzinfo=UTC))
    assert _tags(automation.refresh_recent_days(context)) == ("2026-10-14", "2026-10-15")
    first_day = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 9, 1, 0, 5, tzinfo=UTC))
    assert _tags(automation.refresh_recent_days(first_day)) == ("2026-09-01", "2026-09-01")


def test_the_nightly_refresh_looks_back_and_stops_at_the_first_partition():
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 10, 15, 2, 30, tzinfo=UTC))
    assert _tags(automation.refresh_lookback(context)) == ("2026-09-15", "2026-10-15")
    early = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 9, 10, 2, 30, tzinfo=UTC))
    assert _tags(automation.refresh_lookback(early)) == ("2026-09-01", "2026-09-10")


def _late_changes(simulator, start: int, end: int) -> list[tuple[int, str]]:
    """(time, creation day) of every session change in [start, end] to a session created before yesterday."""
    found = []
    for tenant in simulator.tenants:
        for scheduler in tenant.schedulers:
            for day in range((start - 15 * DAY) // DAY, end // DAY + 1):
                for plan in simulator.model.scheduler_sessions(tenant, scheduler, day):
                    for at, _ in plan.events:
                        if start <= at <= end and plan.created // DAY < at // DAY - 1:
                            found.append((at, datetime.fromtimestamp(plan.created, UTC).date().isoformat()))
    return sorted(found)


@pytest.fixture
def quiet_moment(simulator):
    """A moment E when a session created 9+ days earlier changes, with no other late change nearby."""
    base = int(NOW.timestamp())
    changes = _late_changes(simulator, base, base + 40 * DAY)
    for previous, (at, created_day), following in zip(changes, changes[1:], changes[2:]):
        old = datetime.fromtimestamp(at, UTC).date() - datetime.fromisoformat(created_day).date() >= timedelta(days=9)
        if old and at - previous[0] > 3600 and following[0] - at > 600:
            return at, created_day
    pytest.fail("no isolated late change in the simulated data")


def _tick(sensor, resource, instance, cursor=None):
    """(what the sensor asked for: run requests or a skip reason, the cursor it leaves)."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"servicetitan": resource})
    result = sensor(context)
    if isinstance(result, dg.SkipReason):
        return result, cursor
    return (result.run_requests or dg.SkipReason(result.skip_reason.skip_message)), result.cursor


def test_late_update_sensor_requests_exactly_the_changed_old_partition(served, simulator, clock, quiet_moment):
    changed_at, created_day = quiet_moment
    instance = dg.DagsterInstance.ephemeral()
    resource = served.resource()
    clock.set(datetime.fromtimestamp(changed_at - 1800, UTC))

    first, cursor = _tick(automation.late_session_updates, resource, instance)
    assert isinstance(first, dg.SkipReason) and set(json.loads(cursor)) == {str(t.id) for t in simulator.tenants}

    quiet, same_cursor = _tick(automation.late_session_updates, resource, instance, cursor)
    assert isinstance(quiet, dg.SkipReason) and "no sessions" in quiet.skip_message
    assert same_cursor == cursor

    clock.set(datetime.fromtimestamp(changed_at + 60, UTC))
    requests, advanced = _tick(automation.late_session_updates, resource, instance, cursor)
    assert [_tags(r) for r in requests] == [(created_day, created_day)]
    assert max(json.loads(advanced).values()) == datetime.fromtimestamp(changed_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # Seen again through the look-back overlap: the same run key, so Dagster launches it once.
    again, _ = _tick(automation.late_session_updates, resource, instance, advanced)
    assert [r.run_key for r in again] == [r.run_key for r in requests]


def test_late_update_sensor_skips_when_the_api_is_down_and_keeps_its_cursor(served, simulator):
    instance = dg.DagsterInstance.ephemeral()
    resource = served.resource()
    _, cursor = _tick(automation.late_session_updates, resource, instance)
    simulator.faults.queue(*["server_error"] * 50)
    result, after = _tick(automation.late_session_updates, resource, instance, cursor)
    assert isinstance(result, dg.SkipReason) and "could not read the API" in result.skip_message
    assert after == cursor


def test_scheduler_sensor_refreshes_when_a_scheduler_appears(served, simulator, clock):
    instance = dg.DagsterInstance.ephemeral()
    resource = served.resource()
    launch = max(s.created for t in simulator.tenants for s in t.schedulers)
    clock.set(datetime.fromtimestamp(launch - 60, UTC))
    first, cursor = _tick(automation.scheduler_changes, resource, instance)
    [first] = first
    unchanged, same = _tick(automation.scheduler_changes, resource, instance, cursor)
    assert isinstance(unchanged, dg.SkipReason) and same == cursor
    clock.set(datetime.fromtimestamp(launch + 60, UTC))
    [appeared], changed = _tick(automation.scheduler_changes, resource, instance, cursor)
    assert changed != cursor and appeared.run_key != first.run_key


def test_marts_are_requested_after_raw_partitions_are_materialized(served, warehouse):
    instance = dg.DagsterInstance.ephemeral()
    defs = dg.Definitions(
        assets=[*raw_assets(), *MART_ASSETS.values()],
        resources={"servicetitan": served.resource(), "warehouse": warehouse},
    )
    marts = {dg.AssetKey(["marts", name]) for name in MART_ASSETS}
    initial = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert materialize(
        [*raw_assets(), *MART_ASSETS.values()],
        served.resource(),
        warehouse,
        "2026-10-01",
        "2026-10-02",
        instance=instance,
    ).success
    settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=initial.cursor)
    assert settled.total_requested == 0, "marts built in the same run as their raw data are current"

    assert materialize(
        raw_assets(), served.resource(), warehouse, "2026-10-03", "2026-10-03", instance=instance
    ).success
    after_raw = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
    requested = {key for key in marts if after_raw.get_num_requested(key)}
    assert requested == marts


NOW_UTC = datetime(2026, 10, 15, 18, 0, tzinfo=UTC)


def test_late_changes_are_the_days_older_than_yesterday_and_the_cursor_moves_to_the_latest_change():
    records = [
        {"createdOn": "2026-10-02T10:00:00Z", "modifiedOn": "2026-10-15T17:00:00Z"},
        {"createdOn": "2026-10-02T11:00:00Z", "modifiedOn": "2026-10-15T17:30:00Z"},
        {"createdOn": "2026-10-14T09:00:00Z", "modifiedOn": "2026-10-15T17:45:00Z"},  # yesterday: hourly's
        {"createdOn": "2026-08-01T09:00:00Z", "modifiedOn": "2026-10-15T16:00:00Z"},
    ]  # before the first day
    found = automation.tenant_changes("2026-10-15T16:50:00Z", NOW_UTC, records)
    assert found == automation.TenantChanges("2026-10-15T17:45:00Z", {"2026-10-02": "2026-10-15T17:30:00Z"})
    assert automation.tenant_changes(None, NOW_UTC, records) == automation.TenantChanges("2026-10-15T18:00:00Z", {})
    assert [r.run_key for r in automation.late_update_requests(found.days)] == [
        "late-update:2026-10-02:2026-10-15T17:30:00Z"
    ]


def test_a_modified_on_in_the_future_is_reported_and_never_moves_the_cursor_past_the_api_clock():
    records = [
        {"createdOn": "2026-10-02T10:00:00Z", "modifiedOn": "2099-01-01T00:00:00Z"},
        {"createdOn": "2026-10-03T10:00:00Z", "modifiedOn": "2026-10-15T17:30:00Z"},
    ]
    found = automation.tenant_changes("2026-10-15T16:50:00Z", NOW_UTC, records)
    assert found == automation.TenantChanges(
        "2026-10-15T17:30:00Z", {"2026-10-02": "2099-01-01T00:00:00Z", "2026-10-03": "2026-10-15T17:30:00Z"}, 1
    )
    later = automation.tenant_changes(
        found.cursor,
        NOW_UTC + timedelta(hours=1),
        [{"createdOn": "2026-10-04T10:00:00Z", "modifiedOn": "2026-10-15T18:40:00Z"}],
    )
    assert later.days == {"2026-10-04": "2026-10-15T18:40:00Z"}, "a real change after the future one is still seen"


def test_the_scheduler_fingerprint_changes_with_any_scheduler_and_not_with_order():
    a, b = (1, "s1", "2026-10-01T00:00:00Z"), (1, "s2", "2026-10-02T00:00:00Z")
    assert automation.scheduler_fingerprint([a, b]) == automation.scheduler_fingerprint([b, a])
    assert automation.scheduler_fingerprint([a]) != automation.scheduler_fingerprint([a, b])
    assert automation.scheduler_fingerprint([a, b]) != automation.scheduler_fingerprint(
        [a, (1, "s2", "2026-10-03T00:00:00Z")]
    )


def _hourly(at: datetime) -> dict[str, str]:
    """The tags of the hourly schedule's run at `at`."""
    return automation.refresh_recent_days(dg.build_schedule_context(scheduled_execution_time=at)).tags


def _session_changed_at(path: str, table: str, column: str, at: int) -> list[tuple]:
    import duckdb

    with duckdb.connect(path, read_only=True) as con:
        return con.execute(
            f"SELECT session_id, {column} FROM {table} WHERE {column} = to_timestamp(?) ORDER BY ALL"
            if table.startswith("marts")
            else f"SELECT id, CAST(timezone('UTC', created_on) AS DATE)::VARCHAR FROM {table} "
            "WHERE modified_on = to_timestamp(?) ORDER BY ALL",
            [at],
        ).fetchall()


def test_one_hourly_run_brings_a_change_to_a_session_of_any_past_day_into_raw_and_the_marts(
    served, simulator, clock, warehouse, quiet_moment
):
    changed_at, created_day = quiet_moment
    before = datetime.fromtimestamp(changed_at - 1800, UTC)
    clock.set(before)
    instance = dg.DagsterInstance.ephemeral()
    everything = [*raw_assets(), *MART_ASSETS.values()]
    assert materialize(
        everything, served.resource(), warehouse, "2026-09-01", before.date().isoformat(), instance=instance
    ).success
    assert not _session_changed_at(warehouse.path, "raw.scheduler_sessions", "modified_on", changed_at)

    clock.set(datetime.fromtimestamp(changed_at + 60, UTC))
    hourly = _hourly(datetime.fromtimestamp(changed_at + 60, UTC))
    assert hourly[automation.READ] == automation.CHANGES
    result = dg.materialize(
        everything,
        resources={"servicetitan": served.resource(), "warehouse": warehouse},
        tags=hourly,
        instance=instance,
    )
    assert result.success
    assert hourly[automation.RANGE_START] > created_day, "the changed day is outside the hourly run's days"
    [(session_id, day)] = _session_changed_at(warehouse.path, "raw.scheduler_sessions", "modified_on", changed_at)
    assert day == created_day
    assert _session_changed_at(warehouse.path, "marts.sessions", "modified_at", changed_at) == [
        (session_id, datetime.fromtimestamp(changed_at, UTC))
    ]
    marks = [
        m.materialization.metadata["run_read_marks"].value
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey(["raw", "scheduler_sessions"])
    ]
    api_clock = datetime.fromtimestamp(changed_at + 60, UTC).isoformat()
    assert marks == [{str(t.id): api_clock for t in simulator.tenants}] * 2, "on both days: the next read starts here"
