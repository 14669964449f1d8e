"""Runs whose process died: failed within minutes, so a killed run never holds the one-writer pool.

Dagster's run monitoring fails a run whose worker it can health-check: runs the daemon or the UI launch, in
their code server's process. A run started by `dg launch` runs in that command's own process, which nothing
watches: killed (`kill -9`, the out-of-memory killer, a closed laptop), it would stay STARTED until the run
time limit (dagster.yaml). Each run records its process id when it starts; on an instance whose storage is a
local SQLite file, every run was started on this machine, so a run whose process no longer exists is dead.
With PostgreSQL storage runs may live on other machines, and the run time limit is the bound.
"""

import os
from collections.abc import Callable, Iterable

import dagster as dg
from dagster._core.storage.runs.sqlite import SqliteRunStorage


def dead_runs(started: Iterable[tuple[str, int | None]], alive: Callable[[int], bool]) -> list[str]:
    """The runs (id, process id) whose process is gone. A run that recorded no process id yet is left alone."""
    return [run_id for run_id, pid in started if pid is not None and not alive(pid)]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _started_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    started = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
    return started[-1].dagster_event.pid if started and started[-1].dagster_event else None


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Fails the runs whose process died (a `dg launch` killed, say) within a minute or two, so "
    "they stop holding the duckdb_writer pool and alert like any failed run. Local instances only "
    "(SQLite storage); with PostgreSQL the run time limit in dagster.yaml ends them.",
)
def fail_runs_whose_process_died(context: dg.SensorEvaluationContext):
    instance = context.instance
    if not isinstance(instance.run_storage, SqliteRunStorage):
        return dg.SkipReason("runs may live on other machines (not SQLite storage): the run time limit ends them")
    started = {run.run_id: run for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))}
    dead = dead_runs(((run_id, _started_pid(instance, run_id)) for run_id in started), process_alive)
    for run_id in dead:
        if instance.get_run_by_id(run_id).status != dg.DagsterRunStatus.STARTED:  # it ended as it was looked at
            continue
        instance.report_run_failed(
            started[run_id],
            message="The run's process is gone (killed, or the machine "
            "stopped): the run was failed so it no longer holds "
            "the warehouse's writer pool.",
        )
    return dg.SkipReason(f"failed {len(dead)} run(s) whose process died" if dead else "every started run is alive")
