"""The platform's non-secret settings, read from the environment (see .env.example).

Secrets (ST_CLIENT_ID, ST_CLIENT_SECRET, ST_APP_KEY) are not read here: the ServiceTitan resource takes
them through `dagster.EnvVar`, so they are resolved at launch and never stored in definitions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, available_timezones

from st_scheduling import vocabulary

SIMULATOR = "simulator"
# The simulator's history starts here; live installs set ST_START_DATE to their first day of data.
DEFAULT_START_DATE = "2026-09-01"
# No Scheduling Pro data is older. An earlier ST_START_DATE is a typo, and every day before the data is an empty
# daily partition that each sensor and backfill page walks (0001-01-01 would make 740,000 of them).
EARLIEST_START_DATE = date(2015, 1, 1)
# The API's tenant ids are int64 (the spec's `tenant` path parameter); a larger one would overflow later.
MAX_TENANT_ID = 2**63 - 1
# Names ZoneInfo reads that are no place: tzdata's placeholder zone, and the machine's own setting (a daemon and a
# run worker on two machines would each read their own). (`posixrules` is not in available_timezones() at all.)
NOT_PLACES = frozenset({"Factory", "localtime"})
# Named API limits: environment variable -> (ServiceTitanResource field, type, largest value). Unset keeps the
# resource's default, which suits a live tenant. The largest values are far beyond any sane setting: past them is
# a typo (a timeout of a day, a million attempts) that would otherwise surface as a hang or an overflow in a run.
API_LIMITS = {
    "ST_API_TIMEOUT_SECONDS": ("timeout_seconds", float, 3600),
    "ST_API_MAX_ATTEMPTS": ("max_attempts", int, 100),
    "ST_API_RETRY_BASE_SECONDS": ("retry_base_seconds", float, 600),
    "ST_API_MAX_RETRY_SECONDS": ("max_retry_seconds", float, 86400),
    "ST_API_MAX_RESPONSE_MB": ("max_response_mb", int, 4096),
    "ST_API_MAX_DECOMPRESSED_MB": ("max_decompressed_mb", int, 16384),
    "ST_API_PAGE_SLACK": ("page_slack", int, 1000),
    "ST_API_MAX_PAGES_PER_WINDOW": ("max_pages_per_window", int, 1_000_000),
    "ST_API_MAX_WINDOW_MB": ("max_window_mb", int, 1_048_576),
    "ST_API_FETCH_WORKERS": ("fetch_workers", int, 64),
    "ST_API_PARALLEL_TENANTS": ("parallel_tenants", int, 256),
}
# Other whole-number settings: variable -> (default, largest value).
COUNTS = {
    "ST_LOOKBACK_DAYS": (30, 3660),
    "ST_ATTRIBUTION_WINDOW_DAYS": (90, 3660),
    "ST_DUCKDB_THREADS": (2, 1024),
}
# ASCII digits only, and few of them: int() and float() also take '4_242', Arabic-Indic and other Unicode digits,
# 'nan', 'inf' and '1e400', and int() refuses more than 4300 digits with an error of its own.
_WHOLE = re.compile(r"[0-9]{1,20}")
_DECIMAL = re.compile(r"[0-9]{1,20}(\.[0-9]{1,20})?")
_TENANT_ID = re.compile(r"[1-9][0-9]{0,18}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # fromisoformat also takes 20260901 and 2026-W35-1


class SettingsError(ValueError):
    """ST_* settings are invalid. The message is one line naming every bad variable and what it must be, so
    `dg check defs` and the definitions' load show all of them at once, before any request."""


def positive_number(variable: str, raw: str, kind: type[int] | type[float], largest: float) -> int | float:
    """`raw` as a whole number (kind int) or a decimal one (kind float) above 0 and at most `largest`."""
    text = raw.strip()
    value = kind(text) if (_WHOLE if kind is int else _DECIMAL).fullmatch(text) else None
    if value is None or not 0 < value <= largest:
        what = "whole number" if kind is int else "number"
        raise SettingsError(f"{variable}={raw!r} must be a positive {what} no greater than {largest}")
    return value


def tenant_ids(raw: str) -> list[int]:
    """ST_TENANT_IDS: comma-separated tenant ids, each 1 to MAX_TENANT_ID in ASCII digits, none twice."""
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    bad = [part for part in parts if not _is_tenant_id(part)]
    if bad:
        raise SettingsError(
            f"ST_TENANT_IDS={raw!r} must be comma-separated integer tenant ids, each 1 to "
            f"{MAX_TENANT_ID} in ASCII digits (refused: {', '.join(map(repr, bad))})"
        )
    ids = [int(part) for part in parts]
    if twice := sorted({tenant for tenant in ids if ids.count(tenant) > 1}):
        raise SettingsError(f"ST_TENANT_IDS={raw!r} lists {', '.join(map(str, twice))} more than once")
    return ids


def _is_tenant_id(text: str) -> bool:
    return bool(_TENANT_ID.fullmatch(text)) and int(text) <= MAX_TENANT_ID


def router_pairs(raw: str) -> list[tuple[int, str]]:
    """ST_ROUTER_IDS: comma-separated <tenant id>:<router id> pairs, the tenant id as in ST_TENANT_IDS."""
    pairs = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        tenant, sep, router = part.partition(":")
        if not sep or not _is_tenant_id(tenant.strip()) or not router.strip():
            raise SettingsError(f"ST_ROUTER_IDS entry {part!r} must look like <tenant id>:<router id>")
        pairs.append((int(tenant.strip()), router.strip()))
    return pairs


def time_zone(raw: str) -> str:
    """ST_TIMEZONE: an IANA zone name as tzdata lists it."""
    if raw not in available_timezones() or raw in NOT_PLACES:
        raise SettingsError(f"ST_TIMEZONE={raw!r} is not an IANA time zone (e.g. America/Chicago)")
    return raw


def start_date(raw: str, today: date) -> str:
    """ST_START_DATE: a YYYY-MM-DD day from EARLIEST_START_DATE to `today` (a later one has no partition yet)."""
    try:
        day = date.fromisoformat(raw) if _DATE.fullmatch(raw) else None
    except ValueError:
        day = None
    if day is None:
        raise SettingsError(f"ST_START_DATE={raw!r} is not a date (YYYY-MM-DD)")
    if not EARLIEST_START_DATE <= day <= today:
        raise SettingsError(f"ST_START_DATE={raw!r} must be a day from {EARLIEST_START_DATE} to today ({today})")
    return raw


def duckdb_path(raw: str) -> str:
    """ST_DUCKDB_PATH: a file or an md: database, never DuckDB's in-memory one (every run would write its own,
    and drop it when it ends)."""
    if raw.strip().lower().startswith(":memory:"):
        raise SettingsError(
            f"ST_DUCKDB_PATH={raw!r} is an in-memory database, whose data would be gone when each "
            "run ends: give a file path or an md: database"
        )
    return raw


def memory(variable: str, raw: str) -> str:
    text = raw.strip()
    amount = re.fullmatch(rf"({_DECIMAL.pattern})\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", text, re.IGNORECASE)
    if not amount or float(amount.group(1)) <= 0:
        raise SettingsError(f"{variable}={raw!r} must be an amount of memory such as 8GB or 512MB")
    return text


def flag(variable: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise SettingsError(f"{variable}={raw!r} must be true or false")
    return text in ("true", "1", "yes")


def _vocabulary_file(path: str) -> str:
    """ST_VOCABULARY, read now so a bad file fails at load with its line, not in a run."""
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
    webhooks: WebhookSettings | None = None  # ST_WEBHOOK_* and ST_CALLBACK_*

    @property
    def is_simulator(self) -> bool:
        return self.environment == SIMULATOR

    @classmethod
    def from_env(cls) -> Settings:
        """Every setting, validated. Raises one SettingsError naming every bad one, not only the first. ST_TENANT_IDS
        and ST_UI_URL are checked here too, though the resource reads the one at launch and the alerts the other."""
        problems: list[str] = []

        def read(parse: Callable[..., Any], *args: Any) -> Any:
            try:
                return parse(*args)
            except (SettingsError, vocabulary.VocabularyError) as err:
                problems.append(str(err))
                return None

        def env(name: str) -> str:
            return os.getenv(name) or ""

        environment = env("ST_ENVIRONMENT") or SIMULATOR
        timezone = read(time_zone, env("ST_TIMEZONE") or "UTC")
        # Simulator data never lands in a live warehouse by default.
        default_path = "data/simulator.duckdb" if environment == SIMULATOR else "data/st_scheduling.duckdb"
        counts = {
            variable: read(positive_number, variable, env(variable), int, largest) if env(variable) else default
            for variable, (default, largest) in COUNTS.items()
        }
        settings = cls(
            environment=environment,
            timezone=timezone,
            start_date=read(
                start_date, env("ST_START_DATE") or DEFAULT_START_DATE, datetime.now(ZoneInfo(timezone or "UTC")).date()
            ),
            duckdb_path=read(duckdb_path, env("ST_DUCKDB_PATH") or default_path),
            router_ids=env("ST_ROUTER_IDS"),
            token_url=env("ST_TOKEN_URL") or None,
            api_limits={
                name: read(positive_number, variable, env(variable), kind, largest)
                for variable, (name, kind, largest) in API_LIMITS.items()
                if env(variable)
            },
            lookback_days=counts["ST_LOOKBACK_DAYS"],
            vocabulary_file=read(_vocabulary_file, env(vocabulary.ENV_VAR)),
            publish_dir=env("ST_PUBLISH_DIR") or None,
            publish_pii=read(flag, "ST_PUBLISH_PII", env("ST_PUBLISH_PII") or "false"),
            attribution_window_days=counts["ST_ATTRIBUTION_WINDOW_DAYS"],
            duckdb_threads=counts["ST_DUCKDB_THREADS"],
            duckdb_memory_limit=read(memory, "ST_DUCKDB_MEMORY_LIMIT", env("ST_DUCKDB_MEMORY_LIMIT") or "8GB"),
            webhooks=WebhookSettings(
                inbox=env("ST_WEBHOOK_INBOX") or default_inbox(env("ST_DUCKDB_PATH") or default_path),
                signature_header=read(
                    http_token, "ST_WEBHOOK_SIGNATURE_HEADER", env("ST_WEBHOOK_SIGNATURE_HEADER") or SIGNATURE_HEADER
                ),
                signature_format=read(
                    one_of,
                    "ST_WEBHOOK_SIGNATURE_FORMAT",
                    env("ST_WEBHOOK_SIGNATURE_FORMAT") or SIGNATURE_FORMATS[0],
                    SIGNATURE_FORMATS,
                ),
                max_body_kb=read(
                    positive_number, "ST_WEBHOOK_MAX_BODY_KB", env("ST_WEBHOOK_MAX_BODY_KB") or "256", int, 16384
                ),
                max_age_hours=read(
                    positive_number, "ST_WEBHOOK_MAX_AGE_HOURS", env("ST_WEBHOOK_MAX_AGE_HOURS") or "168", int, 8760
                ),
                callback_include_contact=read(
                    flag, "ST_CALLBACK_INCLUDE_CONTACT", env("ST_CALLBACK_INCLUDE_CONTACT") or "false"
                ),
            ),
        )
        read(router_pairs, settings.router_ids)
        if env("ST_TENANT_IDS"):
            read(tenant_ids, env("ST_TENANT_IDS"))
        read(ui_url)
        read(webhook_key)
        read(callback_url)
        if problems:
            raise SettingsError("; ".join(problems))
        return settings


UI_URL = "ST_UI_URL"


def ui_url() -> str | None:
    """ST_UI_URL without its trailing slash, or None when unset. Alerts append /runs/... and /assets/... to it,
    so a URL with a query or fragment would make broken links and is refused with the rest."""
    raw = (os.getenv(UI_URL) or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or parts.fragment
        or re.search(r"\s", raw)
    ):
        raise SettingsError(
            f"{UI_URL}={raw!r} must be the http(s) address of the Dagster UI, such as "
            "http://localhost:3000 or https://dagster.example.com/prefix"
        )
    return raw.rstrip("/")


# Webhooks (st_scheduling.webhooks). ServiceTitan does not publish the signature header's name or encoding; these
# defaults are what the simulator sends, and a live tenant may need others.
SIGNATURE_HEADER = "ST-Webhook-Signature"
SIGNATURE_FORMATS = ("sha256=hex", "hex", "sha256=base64", "base64")  # prefix, then the HMAC-SHA256 digest
WEBHOOK_KEY = "ST_WEBHOOK_HMAC_KEY"
CALLBACK_URL = "ST_CALLBACK_WEBHOOK_URL"
_HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")  # a header name as HTTP allows it (RFC 9110 token)


@dataclass(frozen=True)
class WebhookSettings:
    inbox: str | None  # the inbox directory; None when there is no default (a MotherDuck warehouse)
    signature_header: str = SIGNATURE_HEADER
    signature_format: str = SIGNATURE_FORMATS[0]
    max_body_kb: int = 256  # an event is one session record, a few KB
    max_age_hours: int = 168  # older events are refused: a captured delivery cannot be replayed later than this
    callback_include_contact: bool = False  # ST_CALLBACK_INCLUDE_CONTACT: PII in call-back alerts, opt-in


def default_inbox(duckdb_path: str) -> str | None:
    """`webhooks/<warehouse name>/` beside a local warehouse file, as published snapshots are; none for `md:`."""
    if duckdb_path.startswith("md:"):
        return None
    path = Path(duckdb_path)
    return str(path.parent / "webhooks" / path.stem)


def http_token(variable: str, raw: str) -> str:
    if not _HTTP_TOKEN.fullmatch(raw.strip()):
        raise SettingsError(f"{variable}={raw!r} must be an HTTP header name such as {SIGNATURE_HEADER}")
    return raw.strip()


def one_of(variable: str, raw: str, choices: tuple[str, ...]) -> str:
    if raw.strip() not in choices:
        raise SettingsError(f"{variable}={raw!r} must be one of {', '.join(choices)}")
    return raw.strip()


def webhook_key() -> str | None:
    """ST_WEBHOOK_HMAC_KEY, the secret shared with ServiceTitan's developer portal (32 to 64 characters there).
    Checked here so a bad one fails at load like any setting, but never stored in Settings and never quoted."""
    key = os.getenv(WEBHOOK_KEY) or None
    if key is not None and not 32 <= len(key) <= 64:
        raise SettingsError(
            f"{WEBHOOK_KEY} must be 32 to 64 characters, as ServiceTitan's developer portal issues "
            f"it (it has {len(key)})"
        )
    return key


def callback_url() -> str | None:
    """ST_CALLBACK_WEBHOOK_URL, where call-back alerts go. A Slack incoming webhook's URL is itself a secret, so an
    error never quotes it."""
    raw = (os.getenv(CALLBACK_URL) or "").strip()
    if raw and (urlsplit(raw).scheme not in ("http", "https") or not urlsplit(raw).netloc):
        raise SettingsError(
            f'{CALLBACK_URL} must be an http(s) URL (a Slack incoming webhook, or anything taking {{"text": ...}})'
        )
    return raw or None
