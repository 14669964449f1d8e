"""Resources: the ServiceTitan API (live, or the embedded simulator) and the DuckDB warehouse."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from st_scheduling import transform, vocabulary
from st_scheduling.config import SIMULATOR, Settings, SettingsError, router_pairs, tenant_ids
from st_scheduling.ingest.pipeline import LoadOptions
from st_scheduling.servicetitan import (
    CallStats,
    ConfigurationError,
    Credentials,
    Endpoints,
    Limits,
    RetryPolicy,
    ServiceTitanClient,
)
from st_scheduling.vocabulary import Vocabulary
from st_scheduling.warehouse import instance_binding, publish
from st_scheduling.warehouse.raw_tables import RawTable
from st_scheduling.warehouse.store import WarehouseSettings, connect, read_marks

DUCKDB_POOL = "duckdb_writer"


class ServiceTitanResource(dg.ConfigurableResource):
    """The Scheduling Pro API: `simulator` (in-process, the default), `integration`, `production`, or a base URL."""

    environment: str = Field(default=SIMULATOR, description="simulator | integration | production | http(s) URL")
    client_id: str | None = Field(
        default=None, description="OAuth client id of every tenant without its own ST_CLIENT_ID_<tenant> (ST_CLIENT_ID)"
    )
    client_secret: str | None = Field(
        default=None,
        description="OAuth client secret of every tenant without its own ST_CLIENT_SECRET_<tenant> (ST_CLIENT_SECRET)",
    )
    app_key: str | None = Field(default=None, description="ServiceTitan app key (ST_APP_KEY)")
    token_url: str | None = Field(default=None, description="Overrides the environment's token URL (ST_TOKEN_URL)")
    tenant_ids: str = Field(default="", description="Comma-separated tenant ids; empty = every simulated tenant")
    router_ids: str = Field(default="", description="Comma-separated tenant:router pairs")
    max_attempts: int = Field(default=8, description="Attempts per API call on 429/409/5xx/timeouts")
    retry_base_seconds: float = Field(default=0.5, description="First backoff delay; doubles per attempt")
    max_retry_seconds: float = Field(default=300.0, description="Give up on a call after retrying this long")
    timeout_seconds: float = Field(
        default=100.0,
        description="Wall-clock limit for one whole request, from "
        "connecting to the last byte, however slowly it "
        "arrives (the API's own timeout is 100 s)",
    )
    max_response_mb: int = Field(default=64, description="Largest response accepted as received (compressed), MB")
    max_decompressed_mb: int = Field(default=256, description="Largest response accepted once decompressed, MB")
    page_slack: int = Field(default=2, description="Pages allowed beyond ceil(totalCount / pageSize) in a window")
    max_pages_per_window: int = Field(
        default=1000,
        description="Most pages one read of a window may take, whatever totalCount says (ST_API_MAX_PAGES_PER_WINDOW)",
    )
    max_window_mb: int = Field(
        default=16384,
        description="Most response MB (decompressed) one read of a window may take (ST_API_MAX_WINDOW_MB)",
    )
    fetch_workers: int = Field(
        default=2,
        description="Owner-windows (scheduler or router and days) of one tenant "
        "fetched and staged at once; each tenant stays under 60 "
        "calls/s (ST_API_FETCH_WORKERS)",
    )
    parallel_tenants: int = Field(
        default=4,
        description="Tenants read at once, each with its own fetch workers and rate limit (ST_API_PARALLEL_TENANTS)",
    )

    def tenants(self) -> list[int]:
        if not self.tenant_ids.strip():
            if self.environment == SIMULATOR:
                return [t.id for t in _simulator().tenants]
            raise ConfigurationError("ST_TENANT_IDS is not set: name the tenant ids to ingest, comma-separated")
        try:
            return tenant_ids(self.tenant_ids)
        except SettingsError as err:  # the same rule as at load: the variable may have changed since
            raise ConfigurationError(str(err)) from None

    def routers(self) -> list[tuple[int, str]]:
        """(tenant, router id) pairs; the simulator's own routers when none are configured in simulator mode."""
        if not self.router_ids.strip():
            if self.environment == SIMULATOR:
                return [(t.id, r.id) for t in _simulator().tenants for r in t.routers]
            return []
        try:
            return router_pairs(self.router_ids)
        except SettingsError as err:
            raise ConfigurationError(str(err)) from None

    def credentials(self, tenant: int) -> Credentials:
        """The tenant's credentials: `ST_CLIENT_ID_<tenant>` / `ST_CLIENT_SECRET_<tenant>` when set (read at
        run time, like the EnvVar defaults, and never stored), else `ST_CLIENT_ID` / `ST_CLIENT_SECRET`."""
        found = {
            "ST_CLIENT_ID": os.environ.get(f"ST_CLIENT_ID_{tenant}") or self.client_id,
            "ST_CLIENT_SECRET": os.environ.get(f"ST_CLIENT_SECRET_{tenant}") or self.client_secret,
        }
        if missing := [name for name, value in found.items() if not value]:
            raise ConfigurationError(
                f"tenant {tenant} has no {' and no '.join(missing)}: set "
                f"{' and '.join(f'{name}_{tenant}' for name in missing)} (its own client), or "
                f"{' and '.join(missing)} (the default for every tenant)"
            )
        if not self.app_key:
            raise ConfigurationError("ST_APP_KEY is not set: your ServiceTitan app's key, sent with every call")
        return Credentials(*found.values(), self.app_key)

    def check_settings(self) -> None:
        """Every setting a run needs before its first request: the tenants and each one's credentials. Raises one
        ConfigurationError naming every tenant without a client and the variables to set."""
        if self.environment == SIMULATOR:
            return
        problems = []
        for tenant in self.tenants():
            try:
                self.credentials(tenant)
            except ConfigurationError as err:
                problems.append(str(err))
        if problems:
            raise ConfigurationError("; ".join(dict.fromkeys(problems)))

    @contextmanager
    def clients(self) -> Iterator[TenantClients]:
        """Each tenant's API client, made on first use: one client (and one token cache) per credential."""
        retry = RetryPolicy(
            max_attempts=self.max_attempts, base_delay=self.retry_base_seconds, max_total_seconds=self.max_retry_seconds
        )
        limits = Limits(
            request_seconds=self.timeout_seconds,
            max_wire_bytes=self.max_response_mb * 2**20,
            max_body_bytes=self.max_decompressed_mb * 2**20,
            page_slack=self.page_slack,
            max_pages_per_window=self.max_pages_per_window,
            max_window_bytes=self.max_window_mb * 2**20,
        )
        if self.environment == SIMULATOR:
            simulator = _simulator()

            def make(tenant: int) -> ServiceTitanClient:
                creds = simulator.credentials
                return ServiceTitanClient(
                    Endpoints.resolve("http://localhost"),
                    Credentials(*creds.for_tenant(tenant), creds.app_key),
                    tenant,
                    transport=simulator.transport(),
                    retry=retry,
                    limits=limits,
                )
        else:
            endpoints = Endpoints.resolve(self.environment, self.token_url)

            def make(tenant: int) -> ServiceTitanClient:
                return ServiceTitanClient(endpoints, self.credentials(tenant), tenant, retry=retry, limits=limits)

        clients = TenantClients(make)
        try:
            yield clients
        finally:
            clients.close()


class TenantClients:
    """tenant -> its client; the clients' call counts summed for run metadata."""

    def __init__(self, make: Callable[[int], ServiceTitanClient]):
        self._make, self._clients = make, {}
        self._lock = threading.Lock()

    def __call__(self, tenant: int) -> ServiceTitanClient:
        with self._lock:
            if tenant not in self._clients:
                self._clients[tenant] = self._make(tenant)
            return self._clients[tenant]

    @property
    def stats(self) -> CallStats:
        total = CallStats()
        for client in self._clients.values():
            total.count(
                calls=client.stats.calls,
                retries=client.stats.retries,
                token_fetches=client.stats.token_fetches,
                refetched_windows=client.stats.refetched_windows,
            )
            for kind, n in client.stats.problems.items():
                total.problems[kind] += n
        return total

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _simulator():
    from st_scheduling.simulator import Simulator  # imported on use: loading definitions builds nothing

    return Simulator()


class DuckDBWarehouse(DuckDBResource):
    """The DuckDB file (or MotherDuck `md:` database) holding the raw and marts schemas: dagster_duckdb's
    `DuckDBResource`, so your own assets and notebooks take it as they know it (`get_connection()`), with what
    this platform's runs need besides: a bounded wait for another process's file lock that logs who holds it and
    fails naming the file, the schemas and tables set up (and an older warehouse migrated) on connect, bulk
    commits with their own memory settings, and the connection closed in `finally`."""

    threads: int = Field(default=2, description="DuckDB worker threads for mart builds (ST_DUCKDB_THREADS)")
    memory_limit: str = Field(default="8GB", description="DuckDB memory limit for mart builds (ST_DUCKDB_MEMORY_LIMIT)")
    lock_wait_seconds: float = Field(default=120.0, description="How long to wait for another process's file lock")
    staging_dir: str | None = Field(
        default=None,
        description="Where a run stages API pages as Parquet before its "
        "commit, in an area of its own only this user can "
        "read (removed after; a killed run's by the next "
        "run); .staging/ beside the warehouse by default",
    )
    vocabulary_file: str = Field(
        default="",
        description="How the marts read lastStep and sessionOutcome (ST_VOCABULARY); empty for the shipped default",
    )
    publish_dir: str | None = Field(
        default=None,
        description="Where each mart is published as a Parquet snapshot "
        "(ST_PUBLISH_DIR); published/<warehouse name>/ "
        "beside the warehouse file by default",
    )
    publish_pii: bool = Field(default=False, description="Also publish marts holding customer PII (ST_PUBLISH_PII)")

    def publish_directory(self) -> str | None:
        return self.publish_dir or publish.default_directory(self.path)

    def vocabulary(self) -> Vocabulary:
        return vocabulary.load(self.vocabulary_file)

    attribution_window_days: int = Field(
        default=90,
        description="Look-back window of the first-touch, last-touch "
        "and linear attribution models "
        "(ST_ATTRIBUTION_WINDOW_DAYS)",
    )
    timezone: str = Field(
        default="UTC",
        description="The local day, week and hour of the marts and the alarm "
        "(ST_TIMEZONE, the partitions' own time zone)",
    )

    def model_settings(self) -> transform.ModelSettings:
        """What the mart models read. The customer-key salt is ST_CUSTOMER_KEY_SALT, read at run time and never
        stored; unset, the warehouse keeps its own."""
        return transform.ModelSettings(
            self.timezone, self.vocabulary(), os.getenv("ST_CUSTOMER_KEY_SALT") or None, self.attribution_window_days
        )

    @property
    def path(self) -> str:
        """The DuckDB file path or md: URL (`database`, ST_DUCKDB_PATH)."""
        return self.database

    @property
    def settings(self) -> WarehouseSettings:
        return WarehouseSettings(self.database, self.threads, self.memory_limit, config=dict(self.connection_config))

    def load_options(self, servicetitan: ServiceTitanResource, allow_shrink: bool) -> LoadOptions:
        return LoadOptions(
            allow_shrink=allow_shrink,
            workers=servicetitan.fetch_workers,
            parallel_tenants=servicetitan.parallel_tenants,
            staging_dir=self.staging_dir,
            lock_wait_seconds=self.lock_wait_seconds,
        )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Every run that opens the warehouse first makes sure the instance recording it belongs to it."""
        root = context.instance.root_directory if context.instance else None
        if root:
            try:
                instance_binding.claim(Path(root), self.path)
            except instance_binding.InstanceOfAnotherWarehouse as err:
                raise dg.Failure(description=str(err)) from None

    @contextmanager
    def connect(self, on_wait: Callable[[str], None] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.settings, lock_wait=self.lock_wait_seconds, on_wait=on_wait) as con:
            yield con

    def read_marks(self, table: RawTable) -> dict[int, datetime]:
        """Where each tenant's next read of `table`'s changes starts (`meta.read_marks`): read, then let go, before
        the API is read."""
        with connect(self.settings, lock_wait=self.lock_wait_seconds, bulk=True) as con:
            return read_marks(con, table)

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection as `DuckDBResource` gives one, through this warehouse's bounded lock wait and set-up."""
        with self.connect() as con:
            yield con


def _env_var(name: str) -> dg.EnvVar | None:
    """The variable as a `dg.EnvVar`, resolved at launch and never stored, when it is set; None when it is not, so
    a missing one is named by `ServiceTitanResource.check_settings` in one line rather than by Dagster's config
    resolution in a stack trace. Only whether it is set is looked at here, never its value."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_resources(settings: Settings) -> dict:
    if settings.is_simulator:
        api = ServiceTitanResource(environment=SIMULATOR, router_ids=settings.router_ids, **settings.api_limits)
    else:
        api = ServiceTitanResource(
            environment=settings.environment,
            client_id=_env_var("ST_CLIENT_ID"),
            client_secret=_env_var("ST_CLIENT_SECRET"),
            app_key=_env_var("ST_APP_KEY"),
            tenant_ids=_env_var("ST_TENANT_IDS") or "",
            token_url=settings.token_url,
            router_ids=settings.router_ids,
            **settings.api_limits,
        )
    return {
        "servicetitan": api,
        "warehouse": DuckDBWarehouse(
            database=settings.duckdb_path,
            vocabulary_file=settings.vocabulary_file,
            publish_dir=settings.publish_dir,
            publish_pii=settings.publish_pii,
            attribution_window_days=settings.attribution_window_days,
            timezone=settings.timezone,
            threads=settings.duckdb_threads,
            memory_limit=settings.duckdb_memory_limit,
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(Settings.from_env()))
