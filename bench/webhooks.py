"""The webhook figures of `make bench`: how many events per second the receiver acknowledges durably, and how long
an event takes to reach `marts/sessions`, beside the hourly polling it replaces.

    python -m bench.webhooks [--quick]            # both figures, as bench.run prints them
    python -m bench.webhooks run load|raw|marts   # one run of the platform, as a run worker executes it (internal)

**Throughput.** `python -m st_scheduling.webhooks serve` (real uvicorn, one process) on loopback, HMAC key set; the
simulator's events, signed, each under its own userassignedid, sent over CONNECTIONS keep-alive connections at once
by a lean asyncio client in this process (the two cores are the receiver's and the senders'). Counted: deliveries
answered 200, each only once its event is durable; the inbox's count is checked against them afterwards. The file
inbox always; the PostgreSQL inbox when initdb/pg_ctl are installed (a throwaway server, fsync switched back on).

**Latency.** Through the real daemon an event waits for the next `webhook_sessions` tick, the run queue, the raw
run, the next `marts_follow_raw` tick, the queue again and the marts run. The waits are the sensors' intervals, not
this machine's speed, so they are drawn (uniform phases); the two runs are measured here, each a fresh process
loading the code location and executing the run, as the default run launcher's worker does, on a warehouse of a
few days of the embedded simulator. The hourly polling it replaces is the same path with the hourly schedule's wait
(uniform over the hour) and its run (the read of changes the schedule requests, an hour after the last) in place of
the sensor's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from st_scheduling import config
from st_scheduling.simulator import Simulator, SimulatorSettings
from st_scheduling.simulator import webhooks as sim_webhooks
from st_scheduling.webhooks import envelope
from st_scheduling.webhooks.app import PATH

KEY = "b" * 40
CONNECTIONS = 64  # concurrent senders: ServiceTitan delivers many events at once after a busy minute
EVENTS, QUICK_EVENTS = 20_000, 1_000
# The default intervals (defs/webhooks.py, defs/automation.py, dagster.yaml) and the daemon's own loops, which
# look at each sensor every 5 s and dequeue runs every 5 s: a tick falls up to one loop after its interval.
SENSOR_WAIT, AUTOMATION_WAIT, QUEUE_WAIT, DAEMON_LOOP, HOUR = 15, 30, 5, 5, 3600
DRAWS = 100_000
LOAD_DAYS = 7  # the warehouse the runs update: the last week of the embedded simulator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _requests(count: int, port: int) -> list[bytes]:
    """`count` signed deliveries of the simulator's events (cycled; each with its own userassignedid and the time
    of now, so none is a duplicate or too old), as raw HTTP/1.1 requests."""
    today = datetime.now(UTC).date()
    model = Simulator(SimulatorSettings(seed=5, tenant_count=1, epoch=today - timedelta(days=3))).model
    now = int(datetime.now(UTC).timestamp())
    templates = list(sim_webhooks.events_between(model, now - 2 * 86400, now))
    moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    requests = []
    for n in range(count):
        template = templates[n % len(templates)]
        body = json.dumps(
            {**template, "id": f"bench-{n}", "userassignedid": f"{template['userassignedid']}:{n}", "time": moment}
        ).encode()
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/cloudevents+json\r\n"
            f"{config.SIGNATURE_HEADER}: {envelope.signature(body, KEY, 'sha256=hex')}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


async def _deliver(port: int, requests: list[bytes]) -> list[int]:
    """Each request on one keep-alive connection, the next once the last is answered; the statuses."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    statuses = []
    try:
        for request in requests:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *([0-9]+)", head)
            await reader.readexactly(int(length[1]) if length else 0)
            statuses.append(int(head[9:12]))
    finally:
        writer.close()
    return statuses


async def _burst(port: int, requests: list[bytes]) -> list[int]:
    shares = [requests[i::CONNECTIONS] for i in range(CONNECTIONS)]
    results = await asyncio.gather(*(_deliver(port, share) for share in shares if share))
    return [status for statuses in results for status in statuses]


@contextmanager
def _receiver(environment: dict[str, str]) -> Iterator[int]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "st_scheduling.webhooks", "serve", "--port", str(port)],
        env={**os.environ, **environment, "ST_WEBHOOK_HMAC_KEY": KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def receiver_rate(environment: dict[str, str], count: int) -> dict:
    """Acknowledged events per second of one receiver on the inbox `environment` chooses, and the inbox's count
    after (every acknowledged event stored, none twice)."""
    with _receiver(environment) as port:
        requests = _requests(count, port)
        started = time.perf_counter()
        statuses = asyncio.run(_burst(port, requests))
        seconds = time.perf_counter() - started
        stored = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()["events"]
    acknowledged = statuses.count(200)
    return {"acknowledged": acknowledged, "seconds": seconds, "stored": stored, "sent": count}


@contextmanager
def _postgres() -> Iterator[dict[str, str] | None]:
    """DAGSTER_PG_* of a throwaway PostgreSQL with fsync on (the tests' servers turn it off), or None without one."""
    from st_scheduling_tests import postgres

    binaries = postgres.binaries()
    if binaries is None:
        yield None
        return
    with postgres.running(binaries, durable=True) as server:
        assert server.query("SHOW fsync") == [("on",)] and server.query("SHOW synchronous_commit") == [("on",)]
        yield server.environment()


def throughput(workdir: Path, count: int) -> list[list[str]]:
    rows = []
    with _postgres() as pg:
        backends = {"file inbox": {"ST_WEBHOOK_INBOX": str(workdir / "bench-inbox")}}
        if pg is not None:
            backends["PostgreSQL inbox"] = {**pg, "ST_WEBHOOK_INBOX": str(workdir / "unused-inbox")}
        for name, environment in backends.items():
            r = receiver_rate(environment, count)
            rows.append(
                [
                    "webhook receiver",
                    str(count),
                    f"{name}: acknowledged durably, {CONNECTIONS} senders at once",
                    str(r["acknowledged"]),
                    f"{r['seconds']:.1f}",
                    f"{r['acknowledged'] / r['seconds']:,.0f}",
                    "-",
                    f"stored {r['stored']:,} of {r['sent']:,} sent (goal 2,000/s)",
                ]
            )
        if pg is None:
            rows.append(["webhook receiver", "-", "PostgreSQL inbox: skipped, initdb/pg_ctl not installed"] + [""] * 5)
    return rows


# Latency: the runs measured, the waits drawn.


def _run_environment(workdir: Path) -> dict[str, str]:
    """The embedded simulator (the default environment) into a warehouse of its own, the last LOAD_DAYS days."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ST_", "DAGSTER_PG_"))}
    first = (datetime.now(UTC).date() - timedelta(days=LOAD_DAYS)).isoformat()
    return {**environment, "ST_DUCKDB_PATH": str(workdir / "latency.duckdb"), "ST_START_DATE": first}


def _timed_run(kind: str, environment: dict[str, str]) -> float:
    """Seconds of one run in a fresh process, from its start (the code location loaded as a run worker loads it)."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "bench.webhooks", "run", kind], env=environment, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {kind} run failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - started


def run(kind: str) -> None:
    """One run as the daemon would launch it: `load` the whole warehouse, `raw` the sessions of today (what
    webhook_sessions requests for today's events), `hourly` what refresh_recent_days requests (the sessions
    modified since the last such read), `marts` every mart (what marts_follow_raw requests after a raw update)."""
    import dagster as dg

    from st_scheduling.definitions import defs
    from st_scheduling.defs.automation import refresh_recent_days
    from st_scheduling.defs.partitions import FIRST_DAY, RANGE_END, RANGE_START, local_day

    definitions = defs()
    today = local_day(datetime.now(UTC))
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with dg.DagsterInstance.ephemeral() as instance:
        if kind == "marts":
            marts = dg.AssetSelection.groups("scheduling_pro_marts").resolve(definitions.resolve_asset_graph())
            job = definitions.resolve_implicit_global_asset_job_def()
            result = job.execute_in_process(instance=instance, asset_selection=list(marts), run_config=quiet)
        else:
            if kind == "hourly":
                context = dg.build_schedule_context(instance, scheduled_execution_time=datetime.now(UTC))
                name, tags = "raw_sessions_job", refresh_recent_days(context).tags
            else:
                name, first = {"load": ("scheduling_pro_job", FIRST_DAY), "raw": ("raw_sessions_job", today)}[kind]
                tags = {RANGE_START: first, RANGE_END: today}
            result = definitions.resolve_job_def(name).execute_in_process(
                instance=instance, tags=tags, run_config=quiet
            )
    if not result.success:
        raise SystemExit(f"the {kind} run failed")


def _percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[94]


def _wait(interval: float, rng: random.Random) -> float:
    """Until the next tick of a sensor with this interval, the daemon's loop looking at it every DAEMON_LOOP s."""
    return rng.uniform(0, interval) + rng.uniform(0, DAEMON_LOOP)


def latency(workdir: Path, repeats: int) -> tuple[list[list[str]], dict]:
    environment = _run_environment(workdir)
    _timed_run("load", environment)  # untimed: the warehouse as a running platform holds it
    _timed_run("hourly", environment)  # untimed: the first read of changes sets the marks the next ones start from
    measured = {kind: [_timed_run(kind, environment) for _ in range(repeats)] for kind in ("raw", "hourly", "marts")}
    rng = random.Random(26)
    webhook, polling = [], []
    for _ in range(DRAWS):
        marts = rng.uniform(0, QUEUE_WAIT) + _wait(AUTOMATION_WAIT, rng) + rng.choice(measured["marts"])
        webhook.append(_wait(SENSOR_WAIT, rng) + rng.uniform(0, QUEUE_WAIT) + rng.choice(measured["raw"]) + marts)
        polling.append(rng.uniform(0, HOUR) + rng.uniform(0, QUEUE_WAIT) + rng.choice(measured["hourly"]) + marts)
    rows = []
    for label, samples in (
        ("webhooks: sensor tick, raw run (today), marts_follow_raw tick, marts run", webhook),
        ("hourly polling: next :05, raw run (changes since the last read), marts_follow_raw tick, marts run", polling),
    ):
        p50, p95 = _percentiles(samples)
        rows.append(["event to marts/sessions", "-", label, "", "", "", "", f"p50 {p50:,.0f} s, p95 {p95:,.0f} s"])
    runs = ", ".join(
        f"{kind} {statistics.median(seconds):.1f} s (of {', '.join(f'{s:.1f}' for s in seconds)})"
        for kind, seconds in measured.items()
    )
    rows.append(["event to marts/sessions", "-", f"runs measured, each a fresh process: {runs}"] + [""] * 5)
    return rows, measured


def measure(workdir: Path, quick: bool) -> list[list[str]]:
    """bench.run's rows: the receiver's throughput, then the latency."""
    rows = throughput(workdir, QUICK_EVENTS if quick else EVENTS)
    latency_rows, _ = latency(workdir, 1 if quick else 3)
    return rows + latency_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("command", nargs="*", help="run load|raw|hourly|marts: one run (internal)")
    args = parser.parse_args(argv)
    if args.command:
        run(args.command[1])
        return 0
    from bench.run import table

    with tempfile.TemporaryDirectory(prefix="st_scheduling_bench_webhooks_") as tmp:
        header = ["benchmark", "size", "variant", "records", "seconds", "records/s", "peak RSS MB", "ratio"]
        print(table([header, *measure(Path(tmp), args.quick)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
