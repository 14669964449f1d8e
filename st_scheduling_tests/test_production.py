"""Production storage: the Dagster instance on a real PostgreSQL server, selected by the DAGSTER_PG_* variables.

The main job runs as `make demo` runs it (launched through the instance, started by the real daemon, whose
sensors tick meanwhile); then the hourly schedule ticks through Dagster's own scheduler loop at a chosen
clock. Everything is read back from PostgreSQL itself, and no SQLite storage may appear."""

import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from st_scheduling_tests import postgres

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = postgres.binaries()

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        PG_BIN is None,
        reason="PostgreSQL's initdb/pg_ctl are not installed (Debian package `postgresql`; .ci/run installs it)",
    ),
]


@pytest.fixture(scope="module")
def pg_server():
    with postgres.running(PG_BIN) as server:
        yield server


@pytest.fixture
def pg_home(tmp_path, pg_server, monkeypatch) -> Path:
    """DAGSTER_HOME written by `make instance` with the DAGSTER_PG_* variables set, as an operator would."""
    home = tmp_path / "home"
    for name, value in pg_server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    subprocess.run(["make", "-s", "instance", f"DAGSTER_HOME={home}"], cwd=ROOT, check=True, env=os.environ)
    return home


def test_the_instance_file_names_postgres_only_through_the_environment(pg_home, pg_server):
    text = (pg_home / "dagster.yaml").read_text()
    assert "storage:\n  postgres:" in text and "env: DAGSTER_PG_PASSWORD" in text
    assert pg_server.password not in text and str(pg_server.port) not in text


def test_the_main_job_sensor_and_schedule_ticks_are_stored_in_postgres(pg_home, pg_server, tmp_path, monkeypatch):
    monkeypatch.setenv("ST_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    first_day = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    monkeypatch.setenv("ST_START_DATE", first_day)
    demo = subprocess.run(
        [sys.executable, "-m", "st_scheduling.demo"],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]

    main_run = re.search(r"^Run (\S+): succeeded", demo.stdout, re.MULTILINE).group(1)
    [(job, status)] = pg_server.query(f"SELECT pipeline_name, status FROM runs WHERE run_id = '{main_run}'")
    assert (job, status) == ("scheduling_pro_job", "SUCCESS")
    materialized = pg_server.query(
        "SELECT count(DISTINCT asset_key) FROM event_logs "
        f"WHERE run_id = '{main_run}' AND dagster_event_type = 'ASSET_MATERIALIZATION'"
    )
    assert materialized[0][0] >= 15
    sensor_ticks = pg_server.query("SELECT count(*) FROM job_ticks WHERE type = 'SENSOR'")
    assert sensor_ticks[0][0] > 0

    scheduled = _tick_the_hourly_schedule(pg_home)
    assert scheduled.status.value == "SUCCESS" and len(scheduled.run_ids) == 1
    [(job, tags)] = pg_server.query(
        "SELECT r.pipeline_name, string_agg(t.key || '=' || t.value, ',') FROM runs r "
        "JOIN run_tags t ON t.run_id = r.run_id "
        f"WHERE r.run_id = '{scheduled.run_ids[0]}' AND t.key LIKE 'dagster/asset_part%' "
        "GROUP BY 1"
    )
    assert job == "raw_sessions_job" and "dagster/asset_partition_range_end=" in tags
    assert pg_server.query("SELECT count(*) FROM job_ticks WHERE type = 'SCHEDULE' AND status = 'SUCCESS'")[0][0] >= 1
    assert not list(pg_home.rglob("*.db")), "SQLite storage appeared beside PostgreSQL"


def _tick_the_hourly_schedule(home: Path):
    """Dagster's scheduler loop (the daemon's own code) now and an hour later, so the hourly cron time passes;
    the latest tick."""
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._scheduler.scheduler import launch_scheduled_runs

    logger = logging.getLogger("st_scheduling_tests.scheduler")
    start = datetime.now(UTC)
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        create_test_daemon_workspace_context(
            WorkspaceFileTarget(paths=[str(ROOT / "workspace.yaml")]), instance
        ) as context,
    ):
        for now in (start, start + timedelta(hours=1)):
            list(launch_scheduled_runs(context, logger, now, iteration_times={}))
        [schedule] = [s for s in instance.all_instigator_state() if s.instigator_name == "refresh_recent_days"]
        return instance.get_ticks(schedule.instigator_origin_id, schedule.selector_id, limit=1)[0]
