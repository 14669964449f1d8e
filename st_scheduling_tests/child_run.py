"""A materialization in its own process, for tests that kill it or run two at once.

    python -m st_scheduling_tests.child_run BASE_URL TENANT_IDS DUCKDB_PATH FIRST LAST [--pause-in-transaction]
                                            [--pause-while-staging]

With --pause-in-transaction, the first DELETE of a window write prints IN_TRANSACTION and waits, so the
test can SIGKILL the process inside the open transaction. With --pause-while-staging, each owner-window prints
STAGING after its first page is staged and waits, so the test can SIGKILL the process while it stages.
"""

import sys
import threading
import time

import dagster as dg

from st_scheduling.defs.raw.assets import raw_scheduler_sessions
from st_scheduling.defs.resources import DuckDBWarehouse, ServiceTitanResource
from st_scheduling.ingest import pipeline
from st_scheduling.warehouse import store


class _PausingConnection:
    def __init__(self, con):
        self._con = con

    def execute(self, sql, *args):
        result = self._con.execute(sql, *args)
        if sql.startswith("DELETE"):
            print("IN_TRANSACTION", flush=True)
            time.sleep(600)
        return result

    def __getattr__(self, name):
        return getattr(self._con, name)


class _PausingDuckDB:
    def __init__(self, module):
        self._module = module

    def connect(self, *args, **kwargs):
        return _PausingConnection(self._module.connect(*args, **kwargs))

    def __getattr__(self, name):
        return getattr(self._module, name)


def _pausing_stage(stage):
    lock, announced = threading.Lock(), []  # owners stage in parallel threads: the test reads one line, once

    def paused(pages, path, schema, report):
        def first_then_wait():
            for page in pages:
                yield page
                with lock:
                    if not announced:
                        announced.append(True)
                        print("STAGING", flush=True)
                time.sleep(600)

        return stage(first_then_wait(), path, schema, report)

    return paused


def main(argv: list[str]) -> int:
    base_url, tenants, path, first, last = argv[:5]
    if "--pause-in-transaction" in argv:
        store.duckdb = _PausingDuckDB(store.duckdb)
    if "--pause-while-staging" in argv:
        pipeline.stage = _pausing_stage(pipeline.stage)
    resource = ServiceTitanResource(
        environment=base_url,
        client_id="simulator-client",
        client_secret="simulator-secret",
        app_key="simulator-app-key",
        tenant_ids=tenants,
        max_attempts=3,
        retry_base_seconds=0.01,
    )
    result = dg.materialize(
        [raw_scheduler_sessions],
        resources={"servicetitan": resource, "warehouse": DuckDBWarehouse(database=path)},
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        raise_on_error=False,
    )
    print("SUCCESS" if result.success else "FAILURE", flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
