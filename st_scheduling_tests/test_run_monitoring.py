"""Runs never stay stuck: the instance's run time limit ends a run whose worker was killed, through the
monitoring daemon's own code, on an instance written from the project's dagster.yaml."""

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from st_scheduling.defs.raw.assets import HOURLY
from st_scheduling.defs.resources import DUCKDB_POOL
from st_scheduling.defs.run_health import dead_runs, fail_runs_whose_process_died, process_alive

ROOT = Path(__file__).resolve().parents[1]


def _started_run(instance: dg.DagsterInstance, worker: subprocess.Popen, seconds: float) -> dg.DagsterRun:
    """The worker's run once it is inside its step."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert worker.poll() is None, f"dg launch exited ({worker.returncode}) before its run got stuck"
        for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            if instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START):
                return run
        time.sleep(0.5)
    raise AssertionError(f"no run reached its step within {seconds} s")


@pytest.fixture
def killed_run(tmp_path):
    """A real `dg launch` run, SIGKILLed inside its step, on an instance written from the project's dagster.yaml."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")  # what `make instance` writes without PostgreSQL
    # An API that accepts connections and never answers: the run waits inside its step for its 600 s deadline.
    silent = socket.create_server(("127.0.0.1", 0))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ST_ENVIRONMENT": f"http://127.0.0.1:{silent.getsockname()[1]}",
        "ST_CLIENT_ID": "id",
        "ST_CLIENT_SECRET": "secret",
        "ST_APP_KEY": "key",
        "ST_TENANT_IDS": "4242",
        "ST_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
        "ST_API_TIMEOUT_SECONDS": "600",
    }
    with open(tmp_path / "launch.log", "w") as log, dg.DagsterInstance.from_config(str(home)) as instance:
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "dg"), "launch", "--assets", "raw/schedulers"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            run = _started_run(instance, worker, 120)
            [started] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
            assert started.dagster_event.pid == worker.pid, "dg launch runs the run in its own process"
            assert DUCKDB_POOL in run.run_op_concurrency.all_pools, "while STARTED, the run holds the writer pool"
        finally:
            worker.send_signal(signal.SIGKILL)  # as `kill -9` or the OOM killer would: no cleanup, no event
            worker.wait(timeout=30)
            silent.close()
        yield instance, run


def test_a_run_whose_process_died_is_failed_by_the_next_sensor_tick(killed_run):
    instance, run = killed_run
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED, "nothing else noticed"
    tick = fail_runs_whose_process_died(dg.build_sensor_context(instance=instance))
    assert tick.skip_message == "failed 1 run(s) whose process died"
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    again = fail_runs_whose_process_died(dg.build_sensor_context(instance=instance))
    assert again.skip_message == "every started run is alive"


def test_only_runs_with_a_process_id_that_no_longer_exists_are_dead():
    alive = {10, 11}.__contains__
    assert dead_runs([("a", 10), ("b", 12), ("c", None), ("d", 11), ("e", 13)], alive) == ["b", "e"]
    assert process_alive(os.getpid())


def test_a_dg_launch_run_whose_worker_was_killed_is_failed_by_the_run_time_limit(killed_run):
    from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

    instance, run = killed_run
    limit = instance.run_monitoring_max_runtime_seconds
    # A hung run is ended before the raw tables' freshness fails, so the next hourly refresh catches up in time.
    assert 0 < limit < HOURLY.fail_window.to_timedelta().total_seconds()
    logger = logging.getLogger("st_scheduling_tests.run_monitoring")
    with create_test_daemon_workspace_context(
        WorkspaceFileTarget(paths=[str(ROOT / "workspace.yaml")]), instance
    ) as context:
        # The default run launcher cannot see that the worker is gone: under the limit the run stays STARTED.
        list(execute_run_monitoring_iteration(context, logger))
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        record = instance.get_run_record_by_id(run.run_id)
        with freeze_time(record.start_time + limit + 1):
            list(execute_run_monitoring_iteration(context, logger))
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    messages = [entry.message for entry in instance.all_logs(run.run_id)]
    assert f"Canceling due to exceeding maximum runtime of {limit} seconds." in messages
