"""Raw ingestion: partition ranges in one run, idempotent and atomic writes, drift, tenants, checks."""

import dataclasses
import hashlib
import itertools
import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

import dagster as dg
import duckdb
import orjson
import pyarrow.parquet as pq

from st_scheduling.defs.raw.assets import raw_scheduler_sessions
from st_scheduling.defs.raw.checks import raw_table_checks
from st_scheduling.defs.raw.metadata import not_configured_text
from st_scheduling.ingest import LoadOptions, load, sources
from st_scheduling.servicetitan import Credentials, Endpoints, ServiceTitanClient
from st_scheduling.simulator import ManualClock, Simulator
from st_scheduling.simulator.app import http_server
from st_scheduling.simulator.model import Window
from st_scheduling.warehouse.raw_tables import RAW_TABLES, SCHEDULER_SESSIONS
from st_scheduling.warehouse.store import (
    Removal,
    StagedOwner,
    WarehouseSettings,
    commit_tenant,
    connect,
    read_marks,
    removals,
)
from st_scheduling_tests.conftest import NOW, SMALL, materialize, raw_assets

FIRST, LAST = "2026-09-01", "2026-10-15"


def stored_fingerprint(path: str, table: str = "raw.scheduler_sessions") -> dict:
    """Per (tenant, scheduler, day): row count and a checksum of every API column (not ingestion columns)."""
    groups = defaultdict(list)
    with duckdb.connect(path, read_only=True) as con:
        for row in con.execute(
            f"SELECT * EXCLUDE (ingested_at, run_id, commit_number) FROM {table} ORDER BY tenant_id, id"
        ).fetchall():
            groups[(row[0], row[1], str(row[3])[:10])].append(repr(row))
    return {k: (len(v), hashlib.md5("".join(v).encode()).hexdigest()) for k, v in groups.items()}


def served_fingerprint(simulator, first=FIRST, last=LAST) -> dict:
    """Per (tenant, scheduler, day): count and checksum of (id, modifiedOn) of what the simulator serves."""
    start = int(datetime.fromisoformat(first).replace(tzinfo=UTC).timestamp())
    end = int(datetime.fromisoformat(last).replace(tzinfo=UTC).timestamp()) + 86400
    found = defaultdict(list)
    for tenant in simulator.tenants:
        for scheduler in simulator.model.schedulers(tenant, simulator.now()):
            for _, r in simulator.model.records(tenant, scheduler, Window(start, end), simulator.now()):
                found[(tenant.id, scheduler.id, r["createdOn"][:10])].append(f"{r['id']}|{r['modifiedOn']}")
    return {k: (len(v), hashlib.md5("".join(sorted(v)).encode()).hexdigest()) for k, v in found.items()}


def test_a_partition_range_loads_in_one_run_and_equals_what_the_simulator_serves(served, simulator, warehouse):
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(raw_assets(), served.resource(), warehouse, FIRST, LAST, instance=instance)
    assert result.success
    assert len(instance.get_runs()) == 1
    keys = {
        e.partition
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["raw", "scheduler_sessions"])
    }
    assert len(keys) == 45 and min(keys) == FIRST and max(keys) == LAST
    # Count and checksum per tenant, scheduler and day.
    with duckdb.connect(warehouse.path, read_only=True) as con:
        rows = con.execute("""
            SELECT tenant_id, listed_by_id, strftime(created_on AT TIME ZONE 'UTC', '%Y-%m-%d'),
                   list(id || '|' || strftime(modified_on AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'))
            FROM raw.scheduler_sessions GROUP BY ALL""").fetchall()
    stored = {(t, s, d): (len(v), hashlib.md5("".join(sorted(v)).encode()).hexdigest()) for t, s, d, v in rows}
    assert stored == served_fingerprint(simulator)
    metadata = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["raw", "scheduler_sessions"])
    ).materialization.metadata
    assert metadata["dagster/row_count"].value == sum(n for n, _ in stored.values())
    # Each day of the single run records that day's own rows, not the run's total.
    per_day = {
        e.partition: e.materialization.metadata["dagster/partition_row_count"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["raw", "scheduler_sessions"])
    }
    by_day = defaultdict(int)
    for (_, _, day), (n, _) in stored.items():
        by_day[day] += n
    assert per_day == {day: by_day.get(day, 0) for day in keys} and len(set(per_day.values())) > 10
    # Beside a day's own numbers, the run's say they are the run's (and the table's, the table's).
    own = {"dagster/partition_row_count", "partition_window", "about_these_numbers", "dagster/row_count"}
    assert {k for k in metadata if k not in own and not k.startswith("run_")} == set()
    assert metadata["about_these_numbers"].value == (
        f"dagster/partition_row_count and partition_window: this day's own. run_*: the whole run (45 days, {FIRST} "
        f"to {LAST}). dagster/row_count: the whole table after the run."
    )
    assert metadata["run_rows_stored"].value == sum(metadata["run_rows_stored_per_tenant"].value.values())
    assert metadata["run_api_calls"].value > 0
    assert metadata["run_lock_held_seconds"].value < metadata["run_seconds"].value
    report = metadata["run_load_report"].value
    assert len(report) == 6 and all(r["stored"] == r["total_count"] == r["distinct_ids"] for r in report.values())
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"complete_against_total_count": True}


def test_the_same_partition_twice_gives_identical_rows_and_no_duplicates(served, warehouse):
    for _ in range(2):
        assert materialize([raw_scheduler_sessions], served.resource(), warehouse, "2026-10-01", "2026-10-01").success
        if _ == 0:
            first = stored_fingerprint(warehouse.path)
    assert stored_fingerprint(warehouse.path) == first and first
    with duckdb.connect(warehouse.path, read_only=True) as con:
        assert (
            con.execute("SELECT count(*) - count(DISTINCT (tenant_id, id)) FROM raw.scheduler_sessions").fetchone()[0]
            == 0
        )


def test_a_failure_part_way_through_a_window_keeps_the_previous_rows(served, simulator, warehouse):
    assert materialize([raw_scheduler_sessions], served.resource(), warehouse, FIRST, LAST).success
    before = stored_fingerprint(warehouse.path)
    calls = itertools.count()
    healthy = simulator.faults.next_fault
    # The first pages go through (and are staged), then the API breaks for good.
    simulator.faults.next_fault = lambda: "server_error" if next(calls) >= 4 else healthy()
    result = materialize([raw_scheduler_sessions], served.resource(), warehouse, FIRST, LAST)
    assert not result.success
    assert stored_fingerprint(warehouse.path) == before
    simulator.faults.next_fault = healthy
    assert materialize([raw_scheduler_sessions], served.resource(), warehouse, FIRST, LAST).success
    assert stored_fingerprint(warehouse.path) == before


def _stage(tmp_path, name: str, records: list[dict], owner: str = "s") -> StagedOwner:
    from st_scheduling.ingest.arrow_pages import records_parser

    body = orjson.dumps({"data": records, "hasMore": False, "totalCount": len(records)})
    page = records_parser(SCHEDULER_SESSIONS, {"tenant_id": 1, "listed_by_id": owner})(body, "test", 1)
    path = str(tmp_path / f"{name}.parquet")
    pq.write_table(page.records, path)
    return StagedOwner(owner, (path,))


def test_a_commit_keeps_the_latest_instant_refuses_to_shrink_and_keeps_unlisted_owners(tmp_path):
    settings = WarehouseSettings(str(tmp_path / "w.duckdb"))
    window = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC))
    record = {
        "id": "a",
        "createdOn": "2026-10-01T10:00:00Z",
        "modifiedOn": "2026-10-01T10:05:00.500Z",
        "lastCheckinDate": "2026-10-01T10:05:00Z",
        "customer": {"isBot": False},
        "sourceTracking": {},
    }
    # The same id twice: the copy at .500 is the later instant even though it sorts first as text.
    first = _stage(tmp_path, "first", [record, {**record, "modifiedOn": "2026-10-01T10:05:00Z"}, {**record, "id": "b"}])
    other = _stage(tmp_path, "other", [{**record, "id": "c"}], owner="t")
    with connect(settings) as con:
        done = commit_tenant(con, SCHEDULER_SESSIONS, 1, window, [first, other], ["s", "t"], run_id="r1")
        assert done.stored == {"s": 2, "t": 1} and not done.refused
        stored = con.execute("SELECT id, modified_on FROM raw.scheduler_sessions WHERE id = 'a'").fetchall()
        assert stored == [("a", datetime(2026, 10, 1, 10, 5, 0, 500000, tzinfo=UTC))]
        shrunk = _stage(tmp_path, "shrunk", [record])
        refused = commit_tenant(con, SCHEDULER_SESSIONS, 1, window, [shrunk], ["s"], run_id="r2")
        assert refused.refused == {"s": Removal(2, 1, {"2026-10-01": 1})} and refused.unlisted == {"t": 1}
        assert not refused.stored
        assert con.execute("SELECT count(*) FROM raw.scheduler_sessions").fetchone()[0] == 3, "nothing deleted"
        allowed = commit_tenant(con, SCHEDULER_SESSIONS, 1, window, [shrunk], ["s"], run_id="r3", allow_shrink=True)
        assert allowed.stored == {"s": 1}
        assert con.execute("SELECT count(*) FROM raw.scheduler_sessions").fetchone()[0] == 2, "t kept its row"


def test_an_upsert_of_changes_replaces_only_their_keys_and_moves_the_mark_only_when_every_owner_was_read(tmp_path):
    settings = WarehouseSettings(str(tmp_path / "w.duckdb"))
    record = {"createdOn": "2026-09-03T10:00:00Z", "modifiedOn": "2026-09-03T10:05:00Z", "customer": {}}
    history = [{**record, "id": f"old-{n}"} for n in range(3)]
    changed = {**record, "id": "old-1", "modifiedOn": "2026-10-15T09:00:00Z", "sessionOutcome": "Job"}
    new = {**record, "id": "new", "createdOn": "2026-10-15T08:00:00Z", "modifiedOn": "2026-10-15T08:30:00Z"}
    first_read, second_read = datetime(2026, 10, 15, 9, 30, tzinfo=UTC), datetime(2026, 10, 15, 10, 30, tzinfo=UTC)
    with connect(settings) as con:
        commit_tenant(con, SCHEDULER_SESSIONS, 1, None, [_stage(tmp_path, "all", history)], ["s"], run_id="r0")
        partial = commit_tenant(
            con,
            SCHEDULER_SESSIONS,
            1,
            None,
            [_stage(tmp_path, "changes", [changed, new])],
            ["s", "t"],  # t was listed but not read in full
            run_id="r1",
            upsert=True,
            read_mark=first_read,
        )
        assert partial.stored == {"s": 2} and not partial.refused
        rows = con.execute("SELECT id, session_outcome FROM raw.scheduler_sessions ORDER BY id").fetchall()
        assert rows == [("new", None), ("old-0", None), ("old-1", "Job"), ("old-2", None)], "nothing else removed"
        assert read_marks(con, SCHEDULER_SESSIONS) == {}, "an owner not read: the next read starts where this one did"
        commit_tenant(con, SCHEDULER_SESSIONS, 1, None, [], ["s"], run_id="r2", upsert=True, read_mark=first_read)
        commit_tenant(
            con,
            SCHEDULER_SESSIONS,
            1,
            None,
            [_stage(tmp_path, "quiet", [])],
            ["s"],
            run_id="r3",
            upsert=True,
            read_mark=second_read,
        )
        assert read_marks(con, SCHEDULER_SESSIONS) == {1: second_read}
        assert con.execute("SELECT count(*) FROM raw.scheduler_sessions").fetchone()[0] == 4
        # The marts find an upsert's rows by commit number: it is logged replacing no window.
        assert (
            con.execute(
                "SELECT count(*) FROM meta.raw_replaced WHERE window_start IS NULL OR window_start < window_end"
            ).fetchone()[0]
            == 1
        ), "only the first, full commit replaced a window"


def test_a_commit_that_keeps_the_count_but_loses_ids_is_refused_naming_each_day(tmp_path):
    settings = WarehouseSettings(str(tmp_path / "w.duckdb"))
    window = (datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
    record = {
        "createdOn": "2026-05-02T10:00:00Z",
        "modifiedOn": "2026-05-02T10:05:00Z",
        "customer": {},
        "sourceTracking": {},
    }
    may = [
        {**record, "id": f"{day}-{n}", "createdOn": f"2026-05-{day:02d}T10:00:00Z"}
        for day in (2, 3, 30)
        for n in range(2 if day < 30 else 1)
    ]
    grown = [r for r in may if not r["id"].startswith("2-")] + [
        {**record, "id": f"new-{n}", "createdOn": "2026-05-30T11:00:00Z"} for n in range(3)
    ]
    with connect(settings) as con:
        assert not commit_tenant(
            con, SCHEDULER_SESSIONS, 1, window, [_stage(tmp_path, "may", may)], ["s"], run_id="r1"
        ).refused
        refused = commit_tenant(
            con, SCHEDULER_SESSIONS, 1, window, [_stage(tmp_path, "grown", grown)], ["s"], run_id="r2"
        )
        assert refused.refused == {"s": Removal(5, 6, {"2026-05-02": 2})}, "more rows than stored, yet two deleted"
        assert "no longer lists 2 stored ids (2026-05-02: 2)" in refused.refused["s"].describe()
        assert con.execute("SELECT count(*) FROM raw.scheduler_sessions").fetchone()[0] == 5, "nothing deleted"


def test_removals_group_the_missing_ids_per_owner_and_day():
    missing = [("a", "2026-05-02", 3), ("a", "2026-05-03", 1), ("b", "all", 2)]
    assert removals(missing, {"a": 10, "b": 2}, {"a": 12}) == {
        "a": Removal(10, 12, {"2026-05-02": 3, "2026-05-03": 1}),
        "b": Removal(2, 0, {"all": 2}),
    }
    assert removals([], {"a": 1}, {}) == {}


def test_a_schema_drift_page_is_stored_with_nothing_lost(served, simulator, warehouse):
    simulator.faults.queue("rate_limit", "schema_drift", "schema_drift", "schema_drift")
    assert materialize([raw_scheduler_sessions], served.resource(), warehouse, "2026-10-01", "2026-10-07").success
    with duckdb.connect(warehouse.path, read_only=True) as con:
        drifted = con.execute("""SELECT count(*), count(notes) FROM raw.scheduler_sessions
                                 WHERE extra->>'$.assignedTechnicianPreference.preferred' = 'true'""").fetchone()
        total = con.execute("SELECT count(*) FROM raw.scheduler_sessions").fetchone()[0]
    assert drifted[0] > 0 and drifted[1] == 0, "the unknown field is kept; the missing nullable one is null"
    assert total == sum(n for n, _ in served_fingerprint(simulator, "2026-10-01", "2026-10-07").values())


def test_a_failing_tenant_keeps_the_others_rows_and_is_named(served, simulator, warehouse):
    good = simulator.tenants[0].id
    resource = served.resource(tenant_ids=f"{good},424242")
    result = materialize([raw_scheduler_sessions], resource, warehouse, "2026-10-01", "2026-10-03")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = (
        failure.step_failure_data.error.cause.message
        if failure.step_failure_data.error.cause
        else failure.step_failure_data.error.message
    )
    assert (
        "424242" in failure.step_failure_data.error.to_string()
        and "424242" in message + failure.step_failure_data.error.to_string()
    )
    with duckdb.connect(warehouse.path, read_only=True) as con:
        tenants = dict(con.execute("SELECT tenant_id, count(*) FROM raw.scheduler_sessions GROUP BY ALL").fetchall())
    assert set(tenants) == {good} and tenants[good] > 0


def test_a_tenant_dropped_from_the_settings_is_named_with_its_rows_kept(served, simulator, warehouse):
    kept, dropped = (t.id for t in simulator.tenants)
    assert materialize([raw_scheduler_sessions], served.resource(), warehouse, "2026-10-01", "2026-10-03").success
    before = stored_fingerprint(warehouse.path)
    rows = sum(count for (tenant, _, _), (count, _) in before.items() if tenant == dropped)
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(
        [raw_scheduler_sessions],
        served.resource(tenant_ids=str(kept)),
        warehouse,
        "2026-10-01",
        "2026-10-03",
        instance=instance,
    )
    assert result.success and rows > 0
    said = {
        event.materialization.metadata["tenants_not_configured"].value
        for event in result.get_asset_materialization_events()
    }
    assert said == {not_configured_text(SCHEDULER_SESSIONS, "ST_TENANT_IDS", {dropped: rows})}
    assert f"tenant {dropped}: {rows:,} rows. Not in ST_TENANT_IDS" in said.pop()
    warnings = [entry.user_message for entry in instance.all_logs(result.run_id) if entry.level == logging.WARNING]
    assert any(f"tenant {dropped}: {rows:,} rows" in message for message in warnings)
    assert {key: row for key, row in stored_fingerprint(warehouse.path).items() if key[0] == dropped} == {
        key: row for key, row in before.items() if key[0] == dropped
    }, "its rows are kept as they were"


def test_the_dropped_tenants_text_says_what_is_kept_and_how_to_erase_it():
    assert not_configured_text(SCHEDULER_SESSIONS, "ST_ROUTER_IDS", {9: 5, 7: 1234}) == (
        "tenant 7: 1,234 rows, tenant 9: 5 rows. Not in ST_ROUTER_IDS: their rows in raw.scheduler_sessions are kept "
        "as they are and no run refreshes them. To erase them, DELETE FROM raw.scheduler_sessions WHERE tenant_id IN "
        "(7, 9), then materialize the marts (README runbook: a tenant left the settings)."
    )


def test_a_window_that_empties_fails_instead_of_wiping(served, simulator, warehouse):
    assert materialize([raw_scheduler_sessions], served.resource(), warehouse, "2026-10-01", "2026-10-01").success
    before = stored_fingerprint(warehouse.path)
    simulator.model.day_plans = lambda *args, **kwargs: []
    simulator.model._day_counts.cache_clear()
    result = materialize([raw_scheduler_sessions], served.resource(), warehouse, "2026-10-01", "2026-10-01")
    assert not result.success
    assert (
        "refusing to delete them"
        in next(
            e for e in result.all_events if e.event_type_value == "STEP_FAILURE"
        ).step_failure_data.error.to_string()
    )
    assert stored_fingerprint(warehouse.path) == before


def _run_checks(served, warehouse):
    checks = [c for table in RAW_TABLES for c in raw_table_checks(table)]
    result = materialize(
        [*raw_assets(), *checks],
        served.resource(),
        warehouse,
        "2026-10-01",
        "2026-10-03",
        selection=dg.AssetSelection.checks(*checks),
    )
    return {f"{c.asset_key.path[-1]}:{c.check_name}": c for c in result.get_asset_check_evaluations()}


def test_raw_checks_pass_on_simulator_data_and_fail_on_a_corrupted_table(served, warehouse):
    assert materialize(raw_assets(), served.resource(), warehouse, "2026-10-01", "2026-10-03").success
    clean = _run_checks(served, warehouse)
    expected = {f"{t.name}:{c}" for t in RAW_TABLES for c in ("unique_key", "required_fields")} | {
        f"{t}:{c}"
        for t in ("scheduler_sessions", "router_sessions")
        for c in ("modified_after_created", "known_vocabulary")
    }
    assert set(clean) == expected and all(c.passed for c in clean.values()), [
        k for k, c in clean.items() if not c.passed
    ]
    with duckdb.connect(warehouse.path) as con:
        con.execute("INSERT INTO raw.scheduler_sessions SELECT * FROM raw.scheduler_sessions LIMIT 1")
        con.execute("""UPDATE raw.scheduler_sessions SET modified_on = created_on - INTERVAL 1 HOUR,
                       last_step = 'TeleportedToMars', last_checkin_date = NULL
                       WHERE id = (SELECT max(id) FROM raw.scheduler_sessions)""")
    corrupted = _run_checks(served, warehouse)
    failed = {k for k, c in corrupted.items() if not c.passed}
    assert failed == {
        "scheduler_sessions:unique_key",
        "scheduler_sessions:modified_after_created",
        "scheduler_sessions:required_fields",
        "scheduler_sessions:known_vocabulary",
    }
    # Each failure explains itself: the rule, and the first offending row with its numbers.
    required = corrupted["scheduler_sessions:required_fields"]
    assert required.description.startswith(
        "1 row(s) break the rule: tenant_id, id, created_on, modified_on, "
        "last_checkin_date are never null. First: column = last_checkin_date, "
        "rows_null = 1"
    )
    copies = corrupted["scheduler_sessions:unique_key"].metadata["examples"].value
    assert len(copies) == 1 and copies[0]["copies"] == "2"
    vocabulary = corrupted["scheduler_sessions:known_vocabulary"]
    assert vocabulary.severity == dg.AssetCheckSeverity.WARN
    assert vocabulary.metadata["unknown_values"].value == {"last_step": {"'TeleportedToMars'": 1}}


def test_each_tenant_is_read_with_its_own_credentials_and_a_token_stays_in_its_tenant(
    served, simulator, warehouse, monkeypatch
):
    first, second = (t.id for t in simulator.tenants)
    resource = served.resource()  # ST_CLIENT_ID_<tenant> / ST_CLIENT_SECRET_<tenant> for both
    assert materialize([raw_scheduler_sessions], resource, warehouse, "2026-10-01", "2026-10-03").success
    assert simulator.calls["token"] == 2, "one token per tenant credential"
    with duckdb.connect(warehouse.path, read_only=True) as con:
        tenants = dict(con.execute("SELECT tenant_id, count(*) FROM raw.scheduler_sessions GROUP BY ALL").fetchall())
    assert set(tenants) == {first, second} and min(tenants.values()) > 0

    # Without its own variables the second tenant falls back to the default client, which is the first
    # tenant's: the API refuses that token on the second tenant's paths, and the run says so by tenant.
    monkeypatch.delenv(f"ST_CLIENT_ID_{second}")
    monkeypatch.delenv(f"ST_CLIENT_SECRET_{second}")
    before = stored_fingerprint(warehouse.path)
    result = materialize([raw_scheduler_sessions], resource, warehouse, "2026-10-01", "2026-10-03")
    assert not result.success
    error = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error
    assert (
        f"tenant {second}: listing its owners failed: ApiResponseError: /tenant/{second}/schedulers page 1 "
        "returned 403 Forbidden" in error.to_string()
    )
    assert stored_fingerprint(warehouse.path) == before


class InFlight:
    """The simulator behind a middleware that holds each session request a moment and records the most requests
    in flight at once, per tenant and in all."""

    HOLD_SECONDS = 0.05

    def __init__(self, app):
        self.app, self.lock = app, threading.Lock()
        self.now, self.peak = defaultdict(int), defaultdict(int)

    def __call__(self, environ, start_response):
        parts = environ["PATH_INFO"].split("/")
        if "sessions" not in parts:
            return self.app(environ, start_response)
        tenant = parts[parts.index("tenant") + 1]
        with self.lock:
            self.now[tenant] += 1
            self.now["all"] += 1
            for key in (tenant, "all"):
                self.peak[key] = max(self.peak[key], self.now[key])
        try:
            time.sleep(self.HOLD_SECONDS)
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.now[tenant] -= 1
                self.now["all"] -= 1


def test_tenants_are_read_in_parallel_each_within_its_own_workers_and_store_the_same_rows(tmp_path):
    simulator = Simulator(dataclasses.replace(SMALL, tenant_count=4), clock=ManualClock(NOW), sleep=lambda s: None)
    watched = InFlight(simulator)
    server = http_server(watched)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tenants = [t.id for t in simulator.tenants]
    creds = simulator.credentials
    clients = {
        t: ServiceTitanClient(
            Endpoints.resolve(f"http://127.0.0.1:{server.server_port}"),
            Credentials(*creds.for_tenant(t), creds.app_key),
            t,
        )
        for t in tenants
    }
    window = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 16, tzinfo=UTC))
    peaks, stored = {}, {}
    try:
        for parallel in (1, 4):
            watched.peak.clear()
            path = str(tmp_path / f"parallel-{parallel}.duckdb")
            result = load(
                sources.scheduler_sessions(clients.__getitem__, window),
                tenants,
                WarehouseSettings(path),
                "run",
                LoadOptions(workers=2, parallel_tenants=parallel),
            )
            assert not result.problems()
            peaks[parallel], stored[parallel] = dict(watched.peak), stored_fingerprint(path)
    finally:
        server.shutdown()
        for client in clients.values():
            client.close()
    assert stored[1] == stored[4]
    served = served_fingerprint(simulator, "2026-09-01", "2026-10-15")
    assert {key: n for key, (n, _) in stored[4].items()} == {key: n for key, (n, _) in served.items()}
    for peak in peaks.values():  # no tenant ever had more than its two workers' requests in flight
        assert max(v for k, v in peak.items() if k != "all") <= 2, peak
    assert peaks[1]["all"] <= 2 < peaks[4]["all"], peaks
