"""`make demo`: run the main job over the whole history on the configured API (the embedded simulator by
default) through the project's Dagster instance, then print what the data says.

The run is launched like one from the UI (`dagster job launch`, started by the instance's daemon), not in
process, so it keeps its code-location origin: it shows on the UI's timeline and re-executes from there."""

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

from st_scheduling import reports
from st_scheduling.config import Settings
from st_scheduling.defs.partitions import FIRST_DAY, RANGE_END, RANGE_START, local_day

JOB = "scheduling_pro_job"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def main() -> int:
    settings = Settings.from_env()
    first, last = FIRST_DAY, local_day(datetime.now(UTC))
    print(f"Materializing every asset for {first} .. {last} ({settings.environment}) into {settings.duckdb_path}")
    run_id = str(uuid.uuid4())
    with dg.DagsterInstance.get() as instance:
        before = {r.run_id for r in instance.get_runs()}
    bin_dir, root = Path(sys.executable).parent, Path(__file__).resolve().parents[1]
    tags = {RANGE_START: first, RANGE_END: last}
    subprocess.run(
        [
            str(bin_dir / "dagster"),
            "job",
            "launch",
            "-w",
            "workspace.yaml",
            "-j",
            JOB,
            "--run-id",
            run_id,
            "--tags",
            json.dumps(tags),
            "--config-json",
            json.dumps(QUIET),
        ],
        cwd=root,
        check=True,
    )
    # The instance queues runs (one DuckDB writer at a time); its daemon starts them, as under `make dev`.
    daemon = subprocess.Popen(
        [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with dg.DagsterInstance.get() as instance:
            run = _wait(instance, run_id, daemon)
            checks = [
                e.dagster_event.event_specific_data
                for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            ]
            # Sensors tick while the daemon is up (a first tick refreshes the schedulers): let what they
            # started finish too, so the demo leaves no run queued behind it.
            others = _settle(instance, before | {run_id})
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)
    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        print()
        print(reports.summary(con))
    failed = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed]
    print(
        f"\nAsset checks: {len(checks) - len(failed)} passed, {len(failed)} failed"
        + (f" ({', '.join(failed)})" if failed else "")
    )
    succeeded = run.status == dg.DagsterRunStatus.SUCCESS
    print(f"Run {run.run_id}: {'succeeded' if succeeded else 'FAILED'}. Open the UI with `make dev` to browse it.")
    for other in others:
        print(f"Also run by the daemon's sensors meanwhile: {other.job_name} ({other.status.value})")
    return 0 if succeeded else 1


def _settle(
    instance: dg.DagsterInstance, before: set[str], quiet_seconds: float = 10, limit_seconds: float = 300
) -> list[dg.DagsterRun]:
    """Wait until no run is queued or running for `quiet_seconds`; the runs not in `before`."""
    unfinished = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    )
    deadline, quiet_since = time.monotonic() + limit_seconds, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet_seconds:
        if instance.get_runs(unfinished, limit=1):
            quiet_since = time.monotonic()
        time.sleep(1)
    return [r for r in instance.get_runs(limit=50) if r.run_id not in before]


def _wait(instance: dg.DagsterInstance, run_id: str, daemon: subprocess.Popen) -> dg.DagsterRun:
    while True:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run
        if daemon.poll() is not None:
            raise SystemExit(
                f"the Dagster daemon stopped (exit {daemon.returncode}) before run {run_id} finished; "
                "run `.venv/bin/dagster-daemon run -w workspace.yaml` to see why"
            )
        time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
