"""The platform's non-secret settings, read from the environment (see .env.example).

Secrets (ST_CLIENT_ID, ST_CLIENT_SECRET, ST_APP_KEY) are not read here: the ServiceTitan resource takes
them through `dagster.EnvVar`, so they are resolved at launch and never stored in definitions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from st_scheduling.servicetitan import ConfigurationError

SIMULATOR = "simulator"
# The simulator's history starts here; live installs set ST_START_DATE to their first day of data.
DEFAULT_START_DATE = "2026-09-01"


@dataclass(frozen=True)
class Settings:
    environment: str
    timezone: str
    start_date: str
    duckdb_path: str
    router_ids: str
    token_url: str | None

    @property
    def is_simulator(self) -> bool:
        return self.environment == SIMULATOR

    @classmethod
    def from_env(cls) -> Settings:
        environment = os.getenv("ST_ENVIRONMENT") or SIMULATOR
        timezone = os.getenv("ST_TIMEZONE") or "UTC"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"ST_TIMEZONE={timezone!r} is not an IANA time zone (e.g. America/Chicago)")
        start_date = os.getenv("ST_START_DATE") or DEFAULT_START_DATE
        try:
            date.fromisoformat(start_date)
        except ValueError:
            raise ConfigurationError(f"ST_START_DATE={start_date!r} is not a date (YYYY-MM-DD)")
        # Simulator data never lands in a live warehouse by default.
        default_path = "data/simulator.duckdb" if environment == SIMULATOR else "data/st_scheduling.duckdb"
        return cls(environment, timezone, start_date, os.getenv("ST_DUCKDB_PATH") or default_path,
                   os.getenv("ST_ROUTER_IDS") or "", os.getenv("ST_TOKEN_URL") or None)
