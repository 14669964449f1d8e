"""One ingestion variant, run in its own process so its peak RSS is its own.

    python -m bench.ingestion VARIANT BASE_URL TENANTS DUCKDB_PATH FIRST_DAY LAST_DAY

Prints one JSON line: {"variant", "records", "seconds", "peak_rss_mb"} (and "lock_held_seconds" for the platform).
"""

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from bench.peak import peak_rss_mb, reset_peak
from st_scheduling.ingest import LoadOptions, load, sources
from st_scheduling.ingest.pipeline import PHASES
from st_scheduling.servicetitan import Credentials, Endpoints, ServiceTitanClient
from st_scheduling.warehouse.store import WarehouseSettings

APP_KEY = "simulator-app-key"


def credentials(tenant: int) -> Credentials:
    """The simulator's demo client of one tenant."""
    return Credentials(f"simulator-client-{tenant}", f"simulator-secret-{tenant}", APP_KEY)


def _headers(base: str, tenant: int) -> dict:
    creds = credentials(tenant)
    token = httpx.post(
        f"{base}/connect/token",
        data={"grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.client_secret},
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}", "ST-App-Key": APP_KEY}


def _schedulers(http: httpx.Client, base: str, tenant: int, headers: dict) -> list[str]:
    body = orjson.loads(
        http.get(
            f"{base}/schedulingpro/v2/tenant/{tenant}/schedulers", headers=headers, params={"pageSize": 5000}
        ).content
    )
    return [s["id"] for s in body["data"]]


def _bare_loop(base: str, tenants: list[int], window: tuple[datetime, datetime], parse: bool) -> int:
    params = {
        "createdOnOrAfter": window[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "createdBefore": window[1].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pageSize": 5000,
    }
    records = 0
    with httpx.Client(timeout=600) as http:
        for tenant in tenants:
            headers = _headers(base, tenant)
            for scheduler in _schedulers(http, base, tenant, headers):
                page = 1
                while True:
                    content = http.get(
                        f"{base}/schedulingpro/v2/tenant/{tenant}/schedulers/{scheduler}/sessions",
                        headers=headers,
                        params={**params, "page": page},
                    ).content
                    if parse:
                        body = orjson.loads(content)
                        records, more = records + len(body["data"]), body["hasMore"]
                    else:  # the server's own rate: count records without parsing them
                        records, more = records + content.count(b'"lastCheckinDate"'), b'"hasMore":true' in content
                    if not more:
                        break
                    page += 1
    return records


def server(base: str, tenants: list[int], window: tuple[datetime, datetime], path: str) -> int:
    """The server's own rate: the same serial requests with bodies read but not parsed."""
    return _bare_loop(base, tenants, window, parse=False)


def floor(base: str, tenants: list[int], window: tuple[datetime, datetime], path: str) -> int:
    """The floor: a bare serial httpx loop fetching the same pages and parsing the JSON, storing nothing."""
    return _bare_loop(base, tenants, window, parse=True)


def platform(
    base: str, tenants: list[int], window: tuple[datetime, datetime], path: str, options: LoadOptions | None = None
) -> dict:
    """The platform's own path, as raw/scheduler_sessions runs it: fetch, validate, stage, commit."""
    clients = {t: ServiceTitanClient(Endpoints.resolve(base), credentials(t), t) for t in tenants}
    phase_peaks: dict[str, float] = {}

    def phase_ended(name: str) -> None:
        phase_peaks[name] = peak_rss_mb()
        reset_peak()

    try:
        result = load(
            sources.scheduler_sessions(clients.__getitem__, window),
            tenants,
            WarehouseSettings(path),
            "bench",
            options or LoadOptions(),
            on_phase=phase_ended,
        )
    finally:
        for client in clients.values():
            client.close()
    assert not result.problems(), result.problems()
    return {
        "records": sum(o.stored for o in result.owners),
        "lock_held_seconds": result.lock_held_seconds,
        "phases": {name: {"seconds": result.phase_seconds[name], "peak_rss_mb": phase_peaks[name]} for name in PHASES},
    }


def tenants_serial(base: str, tenants: list[int], window: tuple[datetime, datetime], path: str) -> dict:
    """The platform reading one tenant after another (each with its own fetch workers)."""
    return platform(base, tenants, window, path, LoadOptions(parallel_tenants=1))


def tenants_parallel(base: str, tenants: list[int], window: tuple[datetime, datetime], path: str) -> dict:
    """The platform reading every tenant at once (each with its own fetch workers and rate limit)."""
    return platform(base, tenants, window, path, LoadOptions(parallel_tenants=len(tenants)))


def dagster(base: str, tenants: list[int], window: tuple[datetime, datetime], path: str) -> int:
    """The same through Dagster: one single-run backfill of raw/scheduler_sessions on an ephemeral instance."""
    import dagster as dg

    from st_scheduling.defs.raw.assets import raw_scheduler_sessions
    from st_scheduling.defs.resources import DuckDBWarehouse, ServiceTitanResource

    for tenant in tenants:  # each tenant's own client, as a live install configures them
        creds = credentials(tenant)
        os.environ[f"ST_CLIENT_ID_{tenant}"], os.environ[f"ST_CLIENT_SECRET_{tenant}"] = (
            creds.client_id,
            creds.client_secret,
        )
    resource_ = ServiceTitanResource(environment=base, app_key=APP_KEY, tenant_ids=",".join(map(str, tenants)))
    last = (window[1] - timedelta(days=1)).date().isoformat()
    result = dg.materialize(
        [raw_scheduler_sessions],
        resources={"servicetitan": resource_, "warehouse": DuckDBWarehouse(database=path)},
        tags={
            "dagster/asset_partition_range_start": window[0].date().isoformat(),
            "dagster/asset_partition_range_end": last,
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    import duckdb

    with duckdb.connect(path, read_only=True) as con:
        return con.execute("SELECT count(*) FROM raw.scheduler_sessions").fetchone()[0]


def dlt_fastest(base: str, tenants: list[int], window: tuple[datetime, datetime], path: str) -> int:
    """dlt's rest_api source into DuckDB with the fastest settings its performance guide documents."""
    import dlt
    from dlt.sources.rest_api import rest_api_source

    # One tenant's token for every tenant: dlt's rest_api takes one set of headers, and the replay server
    # answers recorded pages without looking at them.
    headers = _headers(base, tenants[0])
    with httpx.Client(timeout=600) as http:
        owners = [(t, s) for t in tenants for s in _schedulers(http, base, t, _headers(base, t))]
    params = {
        "pageSize": 5000,
        "createdOnOrAfter": window[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "createdBefore": window[1].strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    source = rest_api_source(
        {
            "client": {"base_url": f"{base}/schedulingpro/v2/", "headers": headers},
            "resource_defaults": {
                "table_name": "scheduler_sessions",
                "write_disposition": "append",
                "parallelized": True,
                "endpoint": {
                    "params": params,
                    "data_selector": "data",
                    "paginator": {
                        "type": "page_number",
                        "base_page": 1,
                        "page_param": "page",
                        "total_path": None,
                        "has_more_path": "hasMore",
                    },
                },
            },
            "resources": [
                {"name": f"sessions_{i}", "endpoint": {"path": f"tenant/{t}/schedulers/{s}/sessions"}}
                for i, (t, s) in enumerate(owners)
            ],
        }
    )
    # dlt's performance guide: parallel extraction, parallel normalization, parquet load files
    os.environ.update(
        {
            "EXTRACT__WORKERS": "4",
            "NORMALIZE__WORKERS": "2",
            "DATA_WRITER__BUFFER_MAX_ITEMS": "50000",
            "DATA_WRITER__FILE_MAX_ITEMS": "200000",
        }
    )
    pipelines_dir = os.path.join(os.path.dirname(path), "dlt_pipelines")
    pipeline = dlt.pipeline(
        pipeline_name="bench_fastest",
        pipelines_dir=pipelines_dir,
        destination=dlt.destinations.duckdb(path),
        dataset_name="raw",
    )
    pipeline.run(source, loader_file_format="parquet")
    import duckdb

    with duckdb.connect(path, read_only=True) as con:
        return con.execute("SELECT count(*) FROM raw.scheduler_sessions").fetchone()[0]


VARIANTS = {f.__name__: f for f in (server, floor, platform, dagster, dlt_fastest, tenants_serial, tenants_parallel)}


def main(argv: list[str]) -> None:
    variant, base, tenants, path, first, last = argv
    window = (
        datetime.fromisoformat(first).replace(tzinfo=UTC),
        datetime.fromisoformat(last).replace(tzinfo=UTC) + timedelta(days=1),
    )
    started = time.perf_counter()
    found = VARIANTS[variant](base, [int(t) for t in tenants.split(",")], window, path)
    seconds = time.perf_counter() - started
    found = found if isinstance(found, dict) else {"records": found}
    # The phases reset the peak as each ends: the run's own is the greatest of theirs and what came after.
    peak = max([peak_rss_mb(), *(phase["peak_rss_mb"] for phase in found.get("phases", {}).values())])
    print(json.dumps({"variant": variant, **found, "seconds": seconds, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main(sys.argv[1:])
