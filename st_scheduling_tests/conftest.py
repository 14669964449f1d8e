"""Shared fixtures: a simulator on a controllable clock, served over real loopback HTTP, and clients of it; the
real daemon's loops on the project's own instance settings."""

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance_for_test import instance_for_test
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from st_scheduling.defs.resources import DuckDBWarehouse, ServiceTitanResource
from st_scheduling.servicetitan import Credentials, Endpoints, RetryPolicy, ServiceTitanClient
from st_scheduling.simulator import FaultRates, ManualClock, Simulator, SimulatorSettings
from st_scheduling.simulator.app import http_server

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 10, 15, 18, 0, tzinfo=UTC)
SMALL = SimulatorSettings(seed=11, tenant_count=2, schedulers_per_tenant=3, daily_sessions=12.0, epoch=date(2026, 9, 1))


def spec() -> dict:
    text = resources.files("st_scheduling.servicetitan").joinpath("spec/scheduling-pro-v2.openapi.json").read_text()
    return json.loads(text)


class Served:
    """A simulator behind a real HTTP server on a free loopback port."""

    def __init__(self, simulator: Simulator):
        self.simulator = simulator
        self._server = http_server(simulator)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    def credentials(self, tenant: int | None = None) -> Credentials:
        """A tenant's demo credentials (the first tenant's by default)."""
        c = self.simulator.credentials
        return Credentials(*c.for_tenant(tenant or self.simulator.tenants[0].id), c.app_key)

    def client(self, tenant: int | None = None, **kwargs) -> ServiceTitanClient:
        """A tenant's client (the first tenant's by default), retrying quickly and without sleeping."""
        tenant = tenant or self.simulator.tenants[0].id
        kwargs.setdefault("sleep", lambda seconds: None)
        kwargs.setdefault("retry", RetryPolicy(max_attempts=6, base_delay=0.01, max_delay=30))
        return ServiceTitanClient(Endpoints.resolve(self.base_url), self.credentials(tenant), tenant, **kwargs)

    def resource(self, **kwargs) -> ServiceTitanResource:
        """The resource a live install would configure: every tenant's own client in ST_CLIENT_ID_<tenant> /
        ST_CLIENT_SECRET_<tenant> (set in this process's environment), the first tenant's as the default."""
        c = self.simulator.credentials
        for tenant in self.simulator.tenants:
            os.environ[f"ST_CLIENT_ID_{tenant.id}"], os.environ[f"ST_CLIENT_SECRET_{tenant.id}"] = c.for_tenant(
                tenant.id
            )
        default = self.credentials()
        config = {
            "environment": self.base_url,
            "client_id": default.client_id,
            "client_secret": default.client_secret,
            "app_key": c.app_key,
            "tenant_ids": ",".join(str(t.id) for t in self.simulator.tenants),
            "router_ids": ",".join(f"{t.id}:{r.id}" for t in self.simulator.tenants for r in t.routers),
            "max_attempts": 4,
            "retry_base_seconds": 0.01,
        }
        return ServiceTitanResource(**{**config, **kwargs})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def simulator(clock: ManualClock) -> Simulator:
    return Simulator(SMALL, clock=clock, sleep=lambda seconds: None)


@pytest.fixture
def served(simulator: Simulator) -> Iterator[Served]:
    server = Served(simulator)
    yield server
    server.close()


def serve(
    settings: SimulatorSettings = SMALL, clock: ManualClock | None = None, faults: FaultRates | None = None
) -> Served:
    return Served(Simulator(settings, clock=clock or ManualClock(NOW), faults=faults, sleep=lambda s: None))


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(database=str(tmp_path / "warehouse.duckdb"))


def raw_assets() -> list:
    from st_scheduling.defs.raw import assets

    return [
        assets.raw_schedulers,
        assets.raw_scheduler_sessions,
        assets.raw_scheduler_performance,
        assets.raw_router_sessions,
        assets.raw_router_performance,
    ]


def materialize(assets: list, servicetitan, warehouse, first: str, last: str, **kwargs):
    """One run over a partition range, on an ephemeral instance (as a single-run backfill would)."""
    import dagster as dg

    kwargs.setdefault("instance", dg.DagsterInstance.ephemeral())
    kwargs.setdefault("raise_on_error", False)
    return dg.materialize(
        assets,
        resources={"servicetitan": servicetitan, "warehouse": warehouse},
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        **kwargs,
    )


def session_record(sid: str, step: str | None = "Mystery", outcome: str | None = "Mystery", **fields) -> dict:
    """A raw session record for hand-built tests: unknown lastStep and outcome unless given."""
    customer = {"isBot": False, "address": {"zip": fields.pop("zip", None)}}
    for key in ("firstName", "phone", "email"):
        customer[key] = fields.pop(key, None)
    return {
        "id": sid,
        "createdOn": "2026-10-05T10:00:00Z",
        "modifiedOn": "2026-10-05T10:05:00Z",
        "lastCheckinDate": "2026-10-05T10:05:00Z",
        "lastStep": step,
        "sessionOutcome": outcome,
        "customer": customer,
        **fields,
    }


def put_sessions(con, records: list[dict], scheduler: str = "s", tenant: int = 1) -> None:
    """Store hand-built session records as one scheduler's raw rows."""
    from st_scheduling.warehouse.raw_tables import SCHEDULER_SESSIONS

    con.register("batch", SCHEDULER_SESSIONS.to_arrow(records, {"tenant_id": tenant, "listed_by_id": scheduler}))
    con.execute(f"INSERT INTO {SCHEDULER_SESSIONS.qualified} BY NAME SELECT * FROM batch")
    con.unregister("batch")


class Receiver:
    """A local Slack-compatible webhook that keeps what it is sent."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [message["text"] for message in self.received]

    def close(self) -> None:
        self.server.shutdown()


# Settings a developer's shell may carry that would change what a daemon test reads, writes or posts.
DEVELOPER_SETTINGS = (
    "ST_CLIENT_ID",
    "ST_CLIENT_SECRET",
    "ST_VOCABULARY",
    "ST_TIMEZONE",
    "ST_PUBLISH_DIR",
    "ST_ALERT_WEBHOOK_URL",
    "ST_CALLBACK_WEBHOOK_URL",
    "ST_CALLBACK_INCLUDE_CONTACT",
    "ST_WEBHOOK_INBOX",
    "ST_WEBHOOK_HMAC_KEY",
    "ST_WEBHOOK_SIGNATURE_HEADER",
    "ST_WEBHOOK_SIGNATURE_FORMAT",
)


def live_environment(monkeypatch: pytest.MonkeyPatch, served: Served, **settings: str) -> None:
    """The environment of a live install reading `served` (each tenant's own client, the app key, every tenant and
    router) plus `settings`, none of the developer's own. Set before `daemon_workspace`: the code server it starts
    inherits it."""
    simulator = served.simulator
    values = {
        "ST_ENVIRONMENT": served.base_url,
        "ST_APP_KEY": simulator.credentials.app_key,
        "ST_TENANT_IDS": ",".join(str(t.id) for t in simulator.tenants),
        "ST_ROUTER_IDS": ",".join(f"{t.id}:{r.id}" for t in simulator.tenants for r in t.routers),
    }
    for tenant in simulator.tenants:
        values[f"ST_CLIENT_ID_{tenant.id}"], values[f"ST_CLIENT_SECRET_{tenant.id}"] = simulator.credentials.for_tenant(
            tenant.id
        )
    for name in DEVELOPER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**values, **settings}.items():
        monkeypatch.setenv(name, value)


@contextmanager
def daemon_workspace(home: Path):
    """An instance on the project's own settings (queued runs, the duckdb_writer pool, retries) whose run launcher
    executes each run in this process, and the code location as `dagster-daemon` loads it: in a code server of its
    own. Yields the workspace; its `instance` is the instance."""
    settings = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    home.mkdir()
    with instance_for_test(overrides=settings, synchronous_run_launcher=True, temp_dir=str(home)) as instance:
        target = ModuleTarget(
            module_name="st_scheduling.definitions",
            attribute=None,
            working_directory=str(ROOT),
            location_name="st_scheduling",
        )
        with create_test_daemon_workspace_context(target, instance) as workspace:
            yield workspace


def run_queued(workspace, queue: QueuedRunCoordinatorDaemon) -> None:
    """The run queue daemon's iterations until nothing is queued (each run executes as it is dequeued)."""
    for _ in range(50):
        if not workspace.instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]), limit=1):
            return
        list(queue.run_iteration(workspace))
    raise AssertionError("runs stayed queued")


def failed_ticks(instance) -> list[tuple[str, str]]:
    """(schedule or sensor, error) of every failed tick."""
    return [
        (t.instigator_name, t.error.message if t.error else "")
        for state in instance.all_instigator_state()
        for t in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000)
        if t.status == TickStatus.FAILURE
    ]
