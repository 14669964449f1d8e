"""The platform's non-secret settings, read from the environment (see .env.example).

Secrets (ST_CLIENT_ID, ST_CLIENT_SECRET, ST_APP_KEY) are not read here: the ServiceTitan resource takes
them through `dagster.EnvVar`, so they are resolved at launch and never stored in definitions.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from st_scheduling import vocabulary

SIMULATOR = "simulator"
# The simulator's history starts here; live installs set ST_START_DATE to their first day of data.
DEFAULT_START_DATE = "2026-09-01"
# Named API limits: environment variable -> (ServiceTitanResource field, type). Unset keeps the resource's
# default, which suits a live tenant.
API_LIMITS = {
    "ST_API_TIMEOUT_SECONDS": ("timeout_seconds", float),
    "ST_API_MAX_ATTEMPTS": ("max_attempts", int),
    "ST_API_RETRY_BASE_SECONDS": ("retry_base_seconds", float),
    "ST_API_MAX_RETRY_SECONDS": ("max_retry_seconds", float),
    "ST_API_MAX_RESPONSE_MB": ("max_response_mb", int),
    "ST_API_MAX_DECOMPRESSED_MB": ("max_decompressed_mb", int),
    "ST_API_PAGE_SLACK": ("page_slack", int),
    "ST_API_FETCH_WORKERS": ("fetch_workers", int),
    "ST_API_PARALLEL_TENANTS": ("parallel_tenants", int),
}


class SettingsError(ValueError):
    """An ST_* setting is invalid; the message names the variable and what it must be."""


def _positive_int(variable: str, default: int) -> int:
    raw = os.getenv(variable)
    if not raw:
        return default
    if not raw.strip().isdigit() or int(raw) <= 0:
        raise SettingsError(f"{variable}={raw!r} must be a positive whole number")
    return int(raw)


def _api_limits() -> dict[str, float | int]:
    found: dict[str, float | int] = {}
    for variable, (name, kind) in API_LIMITS.items():
        raw = os.getenv(variable)
        if not raw:
            continue
        try:
            value = kind(raw)
        except ValueError:
            value = -1
        if value <= 0:
            raise SettingsError(f"{variable}={raw!r} must be a positive {kind.__name__}")
        found[name] = value
    return found


def _memory(variable: str, default: str) -> str:
    raw = (os.getenv(variable) or default).strip()
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", raw, re.IGNORECASE):
        raise SettingsError(f"{variable}={raw!r} must be an amount of memory such as 8GB or 512MB")
    return raw


def _flag(variable: str) -> bool:
    raw = (os.getenv(variable) or "false").strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise SettingsError(f"{variable}={raw!r} must be true or false")
    return raw in ("true", "1", "yes")


def _vocabulary_file() -> str:
    """ST_VOCABULARY, validated now so a bad file fails at load with its line, not in a run."""
    path = os.getenv(vocabulary.ENV_VAR) or ""
    vocabulary.load(path)
    return path


@dataclass(frozen=True)
class Settings:
    environment: str
    timezone: str
    start_date: str
    duckdb_path: str
    router_ids: str
    token_url: str | None
    api_limits: dict = field(default_factory=dict)  # ServiceTitanResource field -> value, from ST_API_*
    lookback_days: int = 30
    vocabulary_file: str = ""  # ST_VOCABULARY; empty for the shipped default
    publish_dir: str | None = None  # ST_PUBLISH_DIR; None: published/<warehouse name>/ beside the warehouse
    publish_pii: bool = False  # ST_PUBLISH_PII: also publish the PII mart (customer_follow_ups)
    attribution_window_days: int = 90  # ST_ATTRIBUTION_WINDOW_DAYS
    duckdb_threads: int = 2  # ST_DUCKDB_THREADS
    duckdb_memory_limit: str = "8GB"  # ST_DUCKDB_MEMORY_LIMIT

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
            raise SettingsError(f"ST_TIMEZONE={timezone!r} is not an IANA time zone (e.g. America/Chicago)")
        start_date = os.getenv("ST_START_DATE") or DEFAULT_START_DATE
        try:
            date.fromisoformat(start_date)
        except ValueError:
            raise SettingsError(f"ST_START_DATE={start_date!r} is not a date (YYYY-MM-DD)")
        # Simulator data never lands in a live warehouse by default.
        default_path = "data/simulator.duckdb" if environment == SIMULATOR else "data/st_scheduling.duckdb"
        return cls(environment, timezone, start_date, os.getenv("ST_DUCKDB_PATH") or default_path,
                   os.getenv("ST_ROUTER_IDS") or "", os.getenv("ST_TOKEN_URL") or None, _api_limits(),
                   _positive_int("ST_LOOKBACK_DAYS", 30), _vocabulary_file(), os.getenv("ST_PUBLISH_DIR") or None,
                   _flag("ST_PUBLISH_PII"), _positive_int("ST_ATTRIBUTION_WINDOW_DAYS", 90),
                   _positive_int("ST_DUCKDB_THREADS", 2), _memory("ST_DUCKDB_MEMORY_LIMIT", "8GB"))


UI_URL = "ST_UI_URL"


def ui_url() -> str | None:
    """ST_UI_URL without its trailing slash, or None when unset. Alerts append /runs/... and /assets/... to it,
    so a URL with a query or fragment would make broken links and is refused with the rest."""
    raw = (os.getenv(UI_URL) or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if (parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment
            or re.search(r"\s", raw)):
        raise SettingsError(f"{UI_URL}={raw!r} must be the http(s) address of the Dagster UI, such as "
                            "http://localhost:3000 or https://dagster.example.com/prefix")
    return raw.rstrip("/")
