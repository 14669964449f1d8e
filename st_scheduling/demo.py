"""`make demo`: run the main job over the whole history on the configured API (the embedded simulator by
default) into the project-local Dagster instance, then print what the data says."""

import sys
from datetime import UTC, datetime

import dagster as dg
import duckdb

from st_scheduling import reports
from st_scheduling.config import Settings
from st_scheduling.defs.automation import FIRST_DAY, RANGE_END, RANGE_START, local_day
from st_scheduling.definitions import defs


def main() -> int:
    settings = Settings.from_env()
    definitions = defs()
    job = definitions.resolve_job_def("scheduling_pro_job")
    first, last = FIRST_DAY, local_day(datetime.now(UTC))
    print(f"Materializing every asset for {first} .. {last} ({settings.environment}) into {settings.duckdb_path}")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            tags={RANGE_START: first, RANGE_END: last},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
        checks = result.get_asset_check_evaluations()
    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        print()
        print(reports.summary(con))
    failed = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed]
    print(f"\nAsset checks: {len(checks) - len(failed)} passed, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else ""))
    print(f"Run {result.run_id}: {'succeeded' if result.success else 'FAILED'}. "
          "Open the UI with `make dev` to browse it.")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
