"""Bad days: every fault kind mid-run, a run killed inside a write, overlapping writers, secrets and PII,
and bad configuration. Each ends with the warehouse either as it was or exactly as the API is."""

import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from st_scheduling.defs.marts.assets import MART_ASSETS
from st_scheduling.defs.raw.checks import raw_check_definitions
from st_scheduling.defs.resources import DuckDBWarehouse
from st_scheduling.ingest.staging import AREA_PREFIX, staging_area, sweep
from st_scheduling.simulator import FaultRates, ManualClock, Simulator
from st_scheduling.simulator.faults import KINDS, FaultInjector
from st_scheduling.simulator.model import Window
from st_scheduling.transform import catalogue
from st_scheduling.warehouse.raw_tables import RAW_TABLES
from st_scheduling_tests.conftest import NOW, SMALL, Served, materialize, raw_assets

FIRST, LAST = "2026-10-11", "2026-10-15"
WINDOW = Window(
    int(datetime(2026, 10, 11, tzinfo=UTC).timestamp()), int(datetime(2026, 10, 16, tzinfo=UTC).timestamp())
)
RATES = {kind: 0.2 for kind in KINDS} | {"token_expiry": 0.1}


def everything() -> list:
    return [*raw_assets(), *MART_ASSETS.values(), *raw_check_definitions().asset_checks]


def raw_and_marts() -> list:
    return [*raw_assets(), *MART_ASSETS.values()]


def truth(simulator: Simulator) -> dict[tuple, set]:
    """Per (tenant, scheduler): (id, modifiedOn) of every session the API holds for the window, now."""
    found = defaultdict(set)
    for tenant in simulator.tenants:
        for scheduler in simulator.model.schedulers(tenant, simulator.now()):
            for _, r in simulator.model.records(tenant, scheduler, WINDOW, simulator.now()):
                found[tenant.id, scheduler.id].add((r["id"], r["modifiedOn"]))
    return dict(found)


def stored(path: str) -> dict[tuple, set]:
    found = defaultdict(set)
    if not Path(path).exists():
        return {}
    with duckdb.connect(path, read_only=True) as con:
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'scheduler_sessions'").fetchone()[
            0
        ]:
            return {}
        for tenant, owner, sid, modified in con.execute(
            "SELECT tenant_id, listed_by_id, id, strftime(modified_on AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ') "
            "FROM raw.scheduler_sessions"
        ).fetchall():
            found[tenant, owner].add((sid, modified))
    return dict(found)


def _error_text(result) -> str:
    return "\n".join(
        e.step_failure_data.error.to_string() for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    )


@pytest.fixture
def world(tmp_path):
    clock = ManualClock(NOW)
    served = Served(Simulator(SMALL, clock=clock))  # real sleeps: slow responses must time out for real
    yield served, clock, DuckDBWarehouse(database=str(tmp_path / "warehouse.duckdb"))
    served.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_each_fault_mid_run_completes_exactly_or_fails_cleanly_and_a_clean_run_converges(world, kind):
    served, clock, warehouse = world
    resource = served.resource(timeout_seconds=0.5, max_attempts=6)
    assert materialize(raw_and_marts(), resource, warehouse, FIRST, LAST).success
    before = stored(warehouse.path)
    assert before == truth(served.simulator)

    clock.advance(36 * 3600)  # sessions appear and change: the next run has something to write
    now = truth(served.simulator)
    assert now != before
    served.simulator.faults = FaultInjector(
        FaultRates(**{kind: RATES[kind]}, seed=5, retry_after_seconds=0, slow_seconds=1.0)
    )
    result = materialize(raw_and_marts(), resource, warehouse, FIRST, LAST)
    after = stored(warehouse.path)
    assert served.simulator.faults.injected[kind] > 0
    if result.success:
        assert after == now
    else:
        assert "everything else was committed" in _error_text(result) or "failing after" in _error_text(result)
        for owner in now:  # every scheduler exactly as it was, or exactly as the API is: never a mix
            assert after.get(owner) in (before.get(owner), now[owner])
    print(f"\nfault {kind}: {'completed exactly' if result.success else 'failed cleanly'}")

    served.simulator.faults = FaultInjector()
    assert materialize(raw_and_marts(), resource, warehouse, FIRST, LAST).success
    assert stored(warehouse.path) == now


def _child(served, path: str, *extra: str) -> subprocess.Popen:
    tenants = ",".join(str(t.id) for t in served.simulator.tenants)
    return subprocess.Popen(
        [sys.executable, "-m", "st_scheduling_tests.child_run", served.base_url, tenants, path, FIRST, LAST, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_a_run_killed_inside_a_write_leaves_the_previous_state_and_the_next_run_converges(world):
    served, clock, warehouse = world
    assert materialize(raw_assets(), served.resource(), warehouse, FIRST, LAST).success
    before = stored(warehouse.path)
    clock.advance(36 * 3600)
    child = _child(served, warehouse.path, "--pause-in-transaction")
    try:
        assert child.stdout.readline().strip() == "IN_TRANSACTION"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert stored(warehouse.path) == before, "the open transaction died with the process"
    rerun = _child(served, warehouse.path)
    assert rerun.wait(timeout=300) == 0 and rerun.stdout.read().strip() == "SUCCESS"
    assert stored(warehouse.path) == truth(served.simulator)


@pytest.mark.slow
def test_a_run_killed_while_staging_leaves_nothing_others_can_read_and_the_next_run_sweeps_it(world):
    served, _, warehouse = world
    served.resource()  # each tenant's client in the environment, which the child inherits
    shared = set(Path(tempfile.gettempdir()).glob("st_scheduling_stage_*"))
    child = _child(served, warehouse.path, "--pause-while-staging")
    try:
        assert child.stdout.readline().strip() == "STAGING"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    root = Path(warehouse.path).parent / ".staging"
    left = list(root.rglob("*"))
    assert [f for f in left if f.suffix == ".parquet"], "the killed run left staged customers behind"
    assert {stat.S_IMODE(f.stat().st_mode) for f in [root, *left]} <= {0o700, 0o600}, "readable by this user alone"
    assert set(Path(tempfile.gettempdir()).glob("st_scheduling_stage_*")) <= shared, "nothing in the shared temp"
    rerun = _child(served, warehouse.path)
    assert rerun.wait(timeout=300) == 0 and rerun.stdout.read().strip() == "SUCCESS"
    assert list(root.iterdir()) == [], "the next run swept the dead run's area, and removed its own"
    assert stored(warehouse.path) == truth(served.simulator)


def test_a_sweep_removes_only_the_areas_of_runs_that_are_gone(tmp_path):
    root = tmp_path / "staging"
    with staging_area(root) as alive:
        (alive / "staged.parquet").write_bytes(b"rows")
        dead = root / f"{AREA_PREFIX}999999-dead"  # no process holds its lock
        (dead / "inner").mkdir(parents=True)
        (dead / "inner" / "staged.parquet").write_bytes(b"rows")
        assert sweep(root) == 1
        assert not dead.exists() and (alive / "staged.parquet").exists(), "a live run's area is kept"
        with staging_area(root) as other:
            assert alive.exists() and other != alive
    assert list(root.iterdir()) == []


def test_two_runs_writing_the_same_warehouse_at_once_both_succeed(world):
    served, _, warehouse = world
    runs = [_child(served, warehouse.path) for _ in range(2)]
    assert [r.wait(timeout=300) for r in runs] == [0, 0]
    assert stored(warehouse.path) == truth(served.simulator)


# The warehouse's own bookkeeping: the customer-key salt, the raw commits' log, the reads of changes' marks, the
# incremental builds' state, the session changes they pass on, the campaign catalogue.
BOOKKEEPING = {
    "meta.customer_key_salt",
    "meta.raw_replaced",
    "meta.read_marks",
    "meta.mart_builds",
    "meta.session_changes",
    "meta.campaign_catalogue",
    "meta.layout",
}


def test_no_secret_token_or_pii_outside_the_contact_tables(world, tmp_path, capsys):
    served, _, warehouse = world
    simulator = served.simulator
    tokens = []
    issue = simulator.auth.issue
    simulator.auth.issue = lambda environ, tenant_ids: (
        tokens.append(issue(environ, tenant_ids)["access_token"])
        or {"access_token": tokens[-1], "token_type": "Bearer", "expires_in": 900}
    )
    simulator.faults = FaultInjector(
        FaultRates(
            token_expiry=0.1,
            server_error=0.1,
            malformed_json=0.05,
            html_error=0.05,
            rate_limit=0.1,
            seed=2,
            retry_after_seconds=0,
        )
    )
    instance_dir = tmp_path / "dagster_home"
    instance_dir.mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(instance_dir)) as instance:
        # Enough attempts that 40% faulty requests never exhaust a call: this test is about what leaks.
        result = materialize(everything(), served.resource(max_attempts=10), warehouse, FIRST, LAST, instance=instance)
        assert result.success and len(tokens) > 1
        event_log = "\n".join(str(record) for record in instance.all_logs(result.run_id))
    files = "\n".join(
        p.read_text(errors="replace")
        for p in instance_dir.rglob("*")
        if p.is_file() and p.suffix in ("", ".out", ".err", ".log", ".txt", ".complete")
    )
    captured = capsys.readouterr()
    creds = simulator.credentials
    with duckdb.connect(warehouse.path, read_only=True) as con:
        contacts = con.execute("""SELECT DISTINCT customer_email, customer_phone,
                                         customer_first_name || ' ' || customer_last_name
                                  FROM raw.scheduler_sessions WHERE customer_email IS NOT NULL""").fetchall()
        tables = [
            t
            for (t,) in con.execute(
                "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE table_name NOT IN "
                "('scheduler_sessions', 'router_sessions', 'customer_follow_ups')"
            ).fetchall()
        ]
        table_text = "\n".join(str(con.execute(f"SELECT * FROM {t}").fetchall()) for t in tables)
    assert len(contacts) > 20
    assert set(tables) == (
        {t.qualified for t in RAW_TABLES if not t.pii_columns}
        | {m.qualified for m in catalogue.MARTS if not m.contains_pii}
        | BOOKKEEPING
    ), "every table without PII is searched"
    haystacks = {
        "event log": event_log,
        "instance files": files,
        "test output": captured.out + captured.err,
        "tables": table_text,
    }
    secrets = [creds.client_secret, creds.app_key, *tokens]
    pii = [v for row in contacts for v in row if v]
    for where, text in haystacks.items():
        assert not [s for s in secrets if s in text], f"a secret in the {where}"
        assert not [p for p in pii if p in text], f"customer PII in the {where}"


def test_a_locked_or_unwritable_warehouse_fails_clearly_and_writes_nothing(served, tmp_path):
    locked_path = str(tmp_path / "locked.duckdb")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({locked_path!r}); print('HELD', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "HELD"
        result = materialize(
            raw_assets(), served.resource(), DuckDBWarehouse(database=locked_path, lock_wait_seconds=1), FIRST, FIRST
        )
        assert not result.success and "is locked by another process (waited 1 s)" in _error_text(result)
    finally:
        holder.kill()
        holder.wait()
    assert stored(locked_path) == {}

    # A folder that cannot be created (its parent is a file): unwritable for root too.
    unwritable = str(tmp_path / "a_file" / "w.duckdb")
    (tmp_path / "a_file").write_text("not a folder")
    result = materialize(raw_assets(), served.resource(), DuckDBWarehouse(database=unwritable), FIRST, FIRST)
    assert not result.success and f"cannot create the folder of the DuckDB file {unwritable}" in _error_text(result)


def test_an_invalid_or_unknown_tenant_fails_with_a_clear_message(served, warehouse):
    result = materialize(raw_assets(), served.resource(tenant_ids="12x"), warehouse, FIRST, FIRST)
    assert "ST_TENANT_IDS='12x' must be comma-separated integer tenant ids" in _error_text(result)
    unknown = materialize(raw_assets(), served.resource(tenant_ids="777"), warehouse, FIRST, FIRST)
    assert "tenant 777: listing its owners failed" in _error_text(unknown)
    assert "/tenant/777/schedulers page 1 returned 404 Not Found" in _error_text(unknown), _error_text(unknown)
    assert stored(warehouse.path) == {}
