"""`python -m st_scheduling.simulator serve --port N`: the simulator as a real HTTP server on loopback."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from datetime import UTC, date, datetime

import httpx

from st_scheduling.simulator import webhooks
from st_scheduling.simulator.app import TOKEN_PATH, ManualClock, Simulator, http_server
from st_scheduling.simulator.faults import KINDS, FaultRates
from st_scheduling.simulator.model import DEFAULT_EPOCH, SimulatorSettings
from st_scheduling.simulator.vocabulary import WORLDS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m st_scheduling.simulator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Scheduling Pro API on a loopback port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--seed", type=int, default=7)
    serve.add_argument("--tenants", type=int, default=2)
    serve.add_argument("--schedulers", type=int, default=3, help="schedulers per tenant")
    serve.add_argument("--daily-sessions", type=float, default=40.0, help="mean sessions per scheduler and day")
    serve.add_argument("--epoch", type=date.fromisoformat, default=DEFAULT_EPOCH, help="first day with sessions")
    serve.add_argument(
        "--frozen-at",
        type=datetime.fromisoformat,
        help="freeze the simulator's clock at this UTC moment (reproducible data, tokens never expire)",
    )
    serve.add_argument(
        "--vocabulary",
        choices=sorted(WORLDS),
        default="default",
        help="synthetic vocabulary and /performance definitions (alt: one the platform was not "
        "written for; calibrate a vocabulary file against it)",
    )
    serve.add_argument(
        "--silence",
        action="append",
        default=[],
        metavar="SCHEDULER_ID@ISO_TIME",
        help="fault: this scheduler receives no sessions from that UTC time on (repeatable)",
    )
    serve.add_argument("--cache", help="SQLite file for serialized settled days (fast, bounded-memory serving)")
    serve.add_argument("--faults", default="", help=f"rates per kind, e.g. rate_limit=0.1 ({', '.join(KINDS)})")
    serve.add_argument("--fault-seed", type=int, default=0)
    serve.add_argument("--webhook-url", help="POST session CloudEvents here")
    serve.add_argument("--webhook-secret", default="simulator-webhook-secret")
    serve.add_argument("--webhook-interval", type=float, default=30.0, help="seconds between deliveries")
    serve.add_argument(
        "--webhook-faults",
        default="",
        type=webhooks.SenderFaults.parse,
        help=f"shares per kind, e.g. duplicate=0.1,reorder=1 ({', '.join(webhooks.FAULT_KINDS)})",
    )
    serve.add_argument(
        "--webhook-retry-delays",
        default=webhooks.RETRY_DELAYS,
        type=lambda text: tuple(float(s) for s in text.split(",")),
        help="seconds before each retry of a delivery not answered 2xx (ServiceTitan: 10,30,60,300)",
    )
    return parser


def _silence(value: str) -> tuple[str, int]:
    scheduler, _, moment = value.partition("@")
    when = datetime.fromisoformat(moment)
    return scheduler, int(when.replace(tzinfo=when.tzinfo or UTC).timestamp())


def _deliver_webhooks(simulator: Simulator, sender: webhooks.Sender, interval: float) -> None:
    """Every `interval` seconds, the events of the simulated time since the last batch; retries as they fall due."""
    since, next_batch = simulator.now(), time.monotonic() + interval
    while True:
        time.sleep(max(0.05, min(next_batch, sender.next_due() or next_batch) - time.monotonic()))
        before = (sender.accepted, len(sender.given_up))
        sender.retry_due()
        if time.monotonic() >= next_batch:
            until = simulator.now()
            sender.send(webhooks.events_between(simulator.model, since, until))
            since, next_batch = until, time.monotonic() + interval
        if (sender.accepted, len(sender.given_up)) != before:
            print(
                f"webhooks: {sender.accepted} accepted by {sender.url}, {sender.waiting} waiting to be retried, "
                f"{len(sender.given_up)} given up",
                flush=True,
            )


def stop_when_terminated() -> None:
    """SIGTERM stops the server even when the process that started it had SIGTERM ignored (an ignored signal is
    inherited across exec, and some in-process Dagster code leaves it so)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> None:
    stop_when_terminated()
    args = _parser().parse_args(argv)
    settings = SimulatorSettings(
        seed=args.seed,
        tenant_count=args.tenants,
        schedulers_per_tenant=args.schedulers,
        daily_sessions=args.daily_sessions,
        epoch=args.epoch,
        vocabulary=args.vocabulary,
        silenced=tuple(_silence(s) for s in args.silence),
    )
    clock = ManualClock(args.frozen_at.replace(tzinfo=args.frozen_at.tzinfo or UTC)) if args.frozen_at else time.time
    simulator = Simulator(
        settings, clock=clock, faults=FaultRates.parse(args.faults, seed=args.fault_seed), cache_path=args.cache
    )
    server = http_server(simulator, args.host, args.port)
    base = f"http://{args.host}:{server.server_port}"
    creds = simulator.credentials
    print(f"Scheduling Pro simulator serving {base}", flush=True)
    print(f"  API base URL:  {base}/schedulingpro/v2", flush=True)
    print(f"  token URL:     {base}{TOKEN_PATH}", flush=True)
    tenants = simulator.tenants
    per_tenant = " ".join(
        f"ST_CLIENT_ID_{t.id}={creds.for_tenant(t.id)[0]} ST_CLIENT_SECRET_{t.id}={creds.for_tenant(t.id)[1]}"
        for t in tenants
    )
    print(f"  demo credentials (one client per tenant): ST_APP_KEY={creds.app_key} {per_tenant}", flush=True)
    print(
        f"  ST_ENVIRONMENT={base} ST_TENANT_IDS={','.join(str(t.id) for t in tenants)} "
        f"ST_ROUTER_IDS={','.join(f'{t.id}:{r.id}' for t in tenants for r in t.routers)}",
        flush=True,
    )
    if args.webhook_url:
        sender = webhooks.Sender(
            args.webhook_url,
            args.webhook_secret,
            httpx.Client(timeout=10),
            faults=args.webhook_faults,
            delays=args.webhook_retry_delays,
        )
        threading.Thread(target=_deliver_webhooks, daemon=True, args=(simulator, sender, args.webhook_interval)).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
