"""`make bench`: ingestion, marts and incremental refresh, each against its baselines in the same run.

    python -m bench.run [--quick] [--sizes 100000,1000000] [--marts-copies 10] [--latency-ms 300,1000]

The simulator is served over loopback in its own process with a frozen clock (the same data for every
variant), behind a replay server (`bench.replay`) that keeps every response as bytes: one untimed pass
records them, so the timed passes measure the clients, not the simulator, and the replay server's own rate
is reported beside the floor. Each ingestion variant runs in its own process (its own peak RSS). Figures
are ratios against baselines measured in this run, on this machine.

Tenants in parallel are measured apart: 8 tenants behind the replay server with `--latency-ms` added to every
answer, so the API's round trips, as on a real account, and not this machine, bound the read.

Last, the webhooks (`bench.webhooks`, which says how): the receiver's events per second acknowledged durably, and
the latency from an event to its row in `marts/sessions` beside the hourly polling's.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from bench import marts as mart_bench
from bench import webhooks as webhook_bench
from bench.ingestion import credentials
from st_scheduling import transform
from st_scheduling.ingest import load, sources
from st_scheduling.ingest.pipeline import Source
from st_scheduling.servicetitan import Endpoints, ServiceTitanClient
from st_scheduling.transform import catalogue
from st_scheduling.warehouse.raw_tables import SCHEDULER_SESSIONS
from st_scheduling.warehouse.store import WarehouseSettings, connect, read_marks

FROZEN_AT = datetime(2026, 11, 25, tzinfo=UTC)
FIRST_DAY = "2026-09-01"
LAST_DAY = (FROZEN_AT - timedelta(days=1)).date().isoformat()
TENANTS, SCHEDULERS = 4, 5
PARALLEL_TENANTS = 8
# Round trips for a page of the API: a 5,000-record page is about 10 MB, which alone takes 0.8 s at 100 Mbit/s
# before the API has queried anything. The lower the latency, the more this machine's two cores, not the API,
# bound the parallel read, so each is reported.
API_LATENCY_MS = "300,1000"
QUICK_LATENCY_MS = 50.0
SESSIONS_PER_DAILY_MEAN = 830  # ~sessions in the history per unit of --daily-sessions at these settings
VARIANTS = ("server", "floor", "platform", "dagster", "dlt_fastest")
FULL_WINDOW = (datetime.fromisoformat(FIRST_DAY).replace(tzinfo=UTC), FROZEN_AT)
HOURLY_WINDOW = (FROZEN_AT - timedelta(days=1), FROZEN_AT + timedelta(days=1))  # yesterday and today


class Server:
    def __init__(
        self,
        sessions: int,
        workdir: Path,
        tenants: int = TENANTS,
        latency_ms: float = 0.0,
        frozen_at: datetime = FROZEN_AT,
    ):
        daily = max(1.0, sessions / SESSIONS_PER_DAILY_MEAN * TENANTS / tenants)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "st_scheduling.simulator",
                "serve",
                "--port",
                "0",
                "--tenants",
                str(tenants),
                "--schedulers",
                str(SCHEDULERS),
                "--daily-sessions",
                f"{daily:.3f}",
                "--frozen-at",
                frozen_at.isoformat(),
                "--cache",
                str(workdir / f"days-{sessions}-{tenants}.db"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.replay, lines = None, []
        try:
            lines = [self.process.stdout.readline() for _ in range(5)]
            self.tenants = lines[4].split("ST_TENANT_IDS=")[1].split()[0]
            self.replay = subprocess.Popen(
                [sys.executable, "-m", "bench.replay", lines[0].split()[-1], "--latency-ms", str(latency_ms)],
                stdout=subprocess.PIPE,
                text=True,
            )
            self.base = self.replay.stdout.readline().split()[-1]
        except (IndexError, OSError) as err:
            self.close()
            raise RuntimeError(f"the bench servers did not start: {err}; the simulator printed {lines!r}") from err

    def close(self) -> None:
        for process in filter(None, (self.replay, self.process)):
            process.terminate()
            process.wait(timeout=30)


def run_variant(variant: str, server: Server, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.ingestion", variant, server.base, server.tenants, str(path), FIRST_DAY, LAST_DAY],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_marts(variant: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.marts", variant, str(path)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"marts {variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


Read = Callable[[Callable[[int], ServiceTitanClient]], Source]


def window_read(window: tuple[datetime, datetime]) -> Read:
    """A read of every session created in `window`, replacing it (the nightly look-back, a full refresh)."""
    return lambda clients: sources.scheduler_sessions(clients, window)


def changes_read(marks: dict[int, datetime]) -> Read:
    """The hourly schedule's read: the sessions modified since each tenant's read mark, upserted."""
    return lambda clients: sources.scheduler_session_changes(clients, marks, HOURLY_WINDOW[0])


def refresh(server: Server, path: Path, read: Read) -> tuple[float, float]:
    """Seconds to read every tenant's sessions as `read` does, then to bring every mart up to date (incrementally
    when the warehouse's marts were built before)."""
    tenants = [int(t) for t in server.tenants.split(",")]
    clients = {t: ServiceTitanClient(Endpoints.resolve(server.base), credentials(t), t) for t in tenants}
    started = time.perf_counter()
    try:
        load(read(clients.__getitem__), tenants, WarehouseSettings(str(path)), "bench-refresh")
    finally:
        for client in clients.values():
            client.close()
    loaded = time.perf_counter()
    with connect(WarehouseSettings(str(path))) as con:
        for mart in catalogue.MARTS:
            transform.build(con, mart, mart_bench.MODEL)
    return loaded - started, time.perf_counter() - loaded


def marks_of(path: Path) -> dict[int, datetime]:
    with connect(WarehouseSettings(str(path)), bulk=True) as con:
        return read_marks(con, SCHEDULER_SESSIONS)


def hourly_refresh(sessions: int, path: Path, workdir: Path, marks: dict[int, datetime]) -> tuple[float, float]:
    """The API an hour after the full load (a new hour of sessions, and older ones still changing) read as the
    hourly schedule reads it: the sessions modified since the read marks (an hourly read at the full load's time
    set them). The replay server records the new answers in an untimed pass first, so the simulator's generating
    them is not timed."""
    server = Server(sessions, workdir, frozen_at=FROZEN_AT + timedelta(hours=1))
    try:
        refresh(server, workdir / "hourly-recording.duckdb", changes_read(marks))
        return refresh(server, path, changes_read(marks))
    finally:
        server.close()


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def parallel_tenants(sessions: int, latencies_ms: list[float], workdir: Path) -> tuple[list[list[str]], bool]:
    """8 tenants behind an API answering every call after a fixed latency: one tenant at a time vs all at once."""
    rows, agree = [], True
    for latency in latencies_ms:
        server = Server(sessions, workdir, tenants=PARALLEL_TENANTS, latency_ms=latency)
        try:
            run_variant("floor", server, workdir / "warm-tenants.duckdb")
            serial, parallel = (
                run_variant(v, server, workdir / f"{v}-{latency:.0f}.duckdb")
                for v in ("tenants_serial", "tenants_parallel")
            )
        finally:
            server.close()
        label = f"{PARALLEL_TENANTS} tenants, {latency:.0f} ms per call"
        rows += [
            [
                "tenants",
                str(sessions),
                f"{label}: {variant}",
                str(r["records"]),
                f"{r['seconds']:.1f}",
                f"{r['records'] / r['seconds']:,.0f}",
                f"{r['peak_rss_mb']:.0f}",
                ratio,
            ]
            for variant, r, ratio in (
                ("one at a time", serial, "1.00"),
                ("all at once", parallel, f"{serial['seconds'] / parallel['seconds']:.2f}x faster"),
            )
        ]
        agree &= serial["records"] == parallel["records"]
    return rows, agree


def measure(sizes: list[int], copies: int, dlt_max: int, workdir: Path) -> tuple[list[list[str]], bool]:
    agree = True
    rows = [["benchmark", "size", "variant", "records", "seconds", "records/s", "peak RSS MB", "ratio"]]
    largest_platform_db = None
    for size in sizes:
        server = Server(size, workdir)
        try:
            warm = run_variant("floor", server, workdir / "warm.duckdb")
            rows.append(
                [
                    "simulator first pass (generates and records, untimed below)",
                    str(size),
                    "-",
                    str(warm["records"]),
                    f"{warm['seconds']:.1f}",
                    f"{warm['records'] / warm['seconds']:,.0f}",
                    "-",
                    "-",
                ]
            )
            variants = [v for v in VARIANTS if size <= dlt_max or not v.startswith("dlt")]
            results = {v: run_variant(v, server, workdir / f"{v}-{size}.duckdb") for v in variants}
            floor = results["floor"]
            agree &= len({r["records"] for r in results.values()}) == 1
            for variant, r in results.items():
                rate = r["records"] / r["seconds"]
                ratio = f"{rate / (floor['records'] / floor['seconds']):.2f}x floor"
                if "lock_held_seconds" in r:
                    ratio += f"; lock held {r['lock_held_seconds'] / r['seconds']:.1%} of wall"
                rows.append(
                    [
                        "ingestion",
                        str(size),
                        variant,
                        str(r["records"]),
                        f"{r['seconds']:.1f}",
                        f"{rate:,.0f}",
                        f"{r['peak_rss_mb']:.0f}",
                        ratio,
                    ]
                )
                rows += [
                    [
                        "ingestion",
                        str(size),
                        f"{variant}, phase: {name}",
                        "",
                        f"{phase['seconds']:.1f}",
                        "",
                        f"{phase['peak_rss_mb']:.0f}",
                        f"{phase['seconds'] / r['seconds']:.0%} of wall",
                    ]
                    for name, phase in r.get("phases", {}).items()
                ]
            if "dlt_fastest" in results:
                rows.append(
                    [
                        "ingestion",
                        str(size),
                        "platform vs dlt_fastest",
                        "",
                        "",
                        "",
                        "",
                        f"{results['dlt_fastest']['seconds'] / results['platform']['seconds']:.2f}x faster",
                    ]
                )
            largest_platform_db = workdir / f"platform-{size}.duckdb"
            full = refresh(server, largest_platform_db, window_read(FULL_WINDOW))
            refresh(server, largest_platform_db, changes_read({}))  # the hourly read at that time: the marks
        finally:
            server.close()
        marks = marks_of(largest_platform_db)
        hourly = hourly_refresh(size, largest_platform_db, workdir, marks)
        rows.append(
            [
                "incremental",
                str(size),
                "full refresh: ingest all, then build every mart",
                "",
                f"{sum(full):.1f}",
                "",
                "",
                f"1.00 (ingest {full[0]:.1f} s, marts {full[1]:.1f} s)",
            ]
        )
        rows.append(
            [
                "incremental",
                str(size),
                "hourly refresh an hour later: read the sessions changed since the last, upsert, merge the marts",
                "",
                f"{sum(hourly):.1f}",
                "",
                "",
                f"{sum(hourly) / sum(full):.1%} of full (ingest {hourly[0]:.1f} s, marts {hourly[1]:.1f} s = "
                f"{hourly[1] / full[1]:.1%} of a full mart build)",
            ]
        )

    for label, path in (("marts", largest_platform_db), (f"marts x{copies}", workdir / f"copies-{copies}.duckdb")):
        if path != largest_platform_db:
            mart_bench.replicate(str(largest_platform_db), str(path), copies)
        with duckdb.connect(str(path), read_only=True) as con:
            sessions = con.execute("SELECT count(*) FROM raw.scheduler_sessions").fetchone()[0]
        pandas, same_sql, all_sql = (run_marts(v, path) for v in ("pandas", "sql_same", "sql"))
        with duckdb.connect(str(path), read_only=True) as con:
            frames = {name: pd.read_parquet(mart_bench.frames_path(str(path), name)) for name in mart_bench.FRAMES}
            same = mart_bench.same_numbers(frames, mart_bench.sql_results(con))
        agree &= same
        rows.append(
            [
                label,
                str(sessions),
                "pandas: funnel, attribution, volume",
                "",
                f"{pandas['seconds']:.1f}",
                "",
                f"{pandas['peak_rss_mb']:.0f}",
                "1.00",
            ]
        )
        rows.append(
            [
                label,
                str(sessions),
                "DuckDB SQL: the same (sessions, funnel, attribution, volume)",
                "",
                f"{same_sql['seconds']:.1f}",
                "",
                f"{same_sql['peak_rss_mb']:.0f}",
                f"{pandas['seconds'] / same_sql['seconds']:.1f}x faster; same numbers: {same}",
            ]
        )
        rows.append(
            [
                label,
                str(sessions),
                f"DuckDB SQL: all {len(catalogue.MARTS)} marts",
                "",
                f"{all_sql['seconds']:.1f}",
                "",
                f"{all_sql['peak_rss_mb']:.0f}",
                f"{pandas['seconds'] / all_sql['seconds']:.1f}x faster",
            ]
        )
        if path != largest_platform_db:  # the same hour of changes, now into the larger history
            load_seconds, marts_seconds = hourly_refresh(sizes[-1], path, workdir, marks)
            rows.append(
                [
                    label,
                    str(sessions),
                    "hourly refresh an hour later: read the sessions changed since the last, upsert, merge the marts",
                    "",
                    f"{load_seconds + marts_seconds:.1f}",
                    "",
                    "",
                    f"ingest {load_seconds:.1f} s, marts {marts_seconds:.1f} s = "
                    f"{marts_seconds / all_sql['seconds']:.1%} of all {len(catalogue.MARTS)} marts in full",
                ]
            )

    return rows, agree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small run (the test suite's smoke test)")
    parser.add_argument("--sizes", default="100000,1000000", help="sessions in the simulated history")
    parser.add_argument("--marts-copies", type=int, default=10, help="marts also run over this many copies")
    parser.add_argument("--dlt-max", type=int, default=200_000, help="run the dlt baseline only up to this size")
    parser.add_argument(
        "--tenants-sessions", type=int, default=200_000, help="sessions in the parallel-tenants benchmark's history"
    )
    parser.add_argument(
        "--latency-ms",
        default=API_LATENCY_MS,
        help="the modelled API's latency per call in the parallel-tenants benchmark (comma-separated for several)",
    )
    args = parser.parse_args(argv)
    sizes = [8_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    copies = 2 if args.quick else args.marts_copies
    with tempfile.TemporaryDirectory(prefix="st_scheduling_bench_") as tmp:
        rows, agree = measure(sizes, copies, args.dlt_max, Path(tmp))
        latencies = [QUICK_LATENCY_MS] if args.quick else [float(ms) for ms in args.latency_ms.split(",")]
        tenant_rows, same = parallel_tenants(sizes[0] if args.quick else args.tenants_sessions, latencies, Path(tmp))
        rows, agree = rows + tenant_rows, agree and same
        rows += webhook_bench.measure(Path(tmp), args.quick)
    print(table(rows))
    print(f"\nbaselines agree on the numbers: {agree}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
