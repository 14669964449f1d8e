"""What keeps the platform current: the main job, scheduled refreshes, sensors, and marts following raw data.

- `refresh_recent_days` (hourly): the sessions modified since its last read, of any day, and today's and
  yesterday's performance numbers (its run covers those two partitions, in ST_TIMEZONE).
- `refresh_lookback` (nightly): the last LOOKBACK_DAYS partitions, for sessions that changed late, with the
  scheduler inventory and every mart (the main job).
- `late_session_updates` (sensor): sessions modified since its cursor whose day is older than yesterday.
- `scheduler_changes` (sensor): refreshes raw/schedulers when a scheduler appears or changes.
- `marts_follow_raw` (automation sensor): rebuilds marts after any raw update, whatever launched it.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from st_scheduling.defs.partitions import (
    CHANGES,
    FIRST_DAY,
    LOOKBACK_DAYS,
    RANGE_END,
    RANGE_START,
    READ,
    TIMEZONE,
    local_day,
)
from st_scheduling.defs.resources import ServiceTitanResource
from st_scheduling.ingest.sources import CHANGES_OVERLAP
from st_scheduling.servicetitan import ConfigurationError, ServiceTitanError

FUTURE_TOLERANCE = timedelta(minutes=5)  # a modifiedOn this far past the API's own clock is not followed
RUNNING = dg.DefaultScheduleStatus.RUNNING

raw_daily = dg.AssetSelection.groups("scheduling_pro_raw") - dg.AssetSelection.assets(["raw", "schedulers"])

scheduling_pro_job = dg.define_asset_job(
    "scheduling_pro_job",
    selection=dg.AssetSelection.all(),
    description="The platform's main job: every raw table for a range of days, then every mart.",
)
raw_sessions_job = dg.define_asset_job(
    "raw_sessions_job",
    selection=raw_daily,
    description="Raw sessions and performance for a range of days (marts follow automatically).",
)
raw_schedulers_job = dg.define_asset_job(
    "raw_schedulers_job",
    selection=dg.AssetSelection.assets(["raw", "schedulers"]),
    description="The scheduler inventory (marts/schedulers follows automatically).",
)


def range_request(
    first: str, last: str, run_key: str | None = None, tags: dict[str, str] | None = None
) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, tags={RANGE_START: first, RANGE_END: last, **(tags or {})})


def _clip(first: str) -> str:
    return max(first, FIRST_DAY)


@dg.schedule(
    job=raw_sessions_job,
    cron_schedule="5 * * * *",
    execution_timezone=TIMEZONE,
    default_status=RUNNING,
    description="Hourly: the sessions modified since the last hourly read, whatever day they were created, "
    "upserted; today's and yesterday's performance numbers.",
)
def refresh_recent_days(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    now = context.scheduled_execution_time
    return range_request(_clip(local_day(now, -1)), local_day(now), tags={READ: CHANGES})


@dg.schedule(
    job=scheduling_pro_job,
    cron_schedule="30 2 * * *",
    execution_timezone=TIMEZONE,
    default_status=RUNNING,
    description=f"Nightly: the last {LOOKBACK_DAYS} days again, for sessions that "
    "changed late, with the scheduler inventory and every mart.",
)
def refresh_lookback(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    now = context.scheduled_execution_time
    return range_request(_clip(local_day(now, -LOOKBACK_DAYS)), local_day(now))


@dataclass(frozen=True)
class TenantChanges:
    cursor: str  # where this tenant's cursor moves: the latest modifiedOn seen (the API's clock on a first tick)
    days: dict[str, str]  # partition key older than yesterday -> the latest modifiedOn of its changed sessions
    future: int = 0  # sessions modified after the API's own clock: their days are read, the cursor never follows


def tenant_changes(since: str | None, now: datetime, records: Iterable[dict]) -> TenantChanges:
    """Which days older than yesterday (in ST_TIMEZONE, at the API's `now`) hold sessions modified since the
    cursor `since`. A first tick (no cursor) starts watching from now: the nightly look-back covers the past.
    The cursor never passes the API's clock: one session stamped in 2099 would otherwise hide every later change."""
    if since is None:
        return TenantChanges(now.strftime("%Y-%m-%dT%H:%M:%SZ"), {})
    oldest_recent, latest, days, future = local_day(now, -1), since, {}, 0
    for record in records:
        key = local_day(_instant(record["createdOn"]))
        if _instant(record["modifiedOn"]) > now + FUTURE_TOLERANCE:
            future += 1
        else:
            latest = max(latest, record["modifiedOn"])
        if FIRST_DAY <= key < oldest_recent:
            days[key] = max(days.get(key, ""), record["modifiedOn"])
    return TenantChanges(latest, days, future)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def late_update_requests(days: dict[str, str]) -> list[dg.RunRequest]:
    """One run per changed day; the run key names the change, so a change seen twice runs once."""
    return [range_request(key, key, run_key=f"late-update:{key}:{modified}") for key, modified in sorted(days.items())]


def scheduler_fingerprint(state: list[tuple]) -> str:
    """One value for the whole inventory: (tenant, scheduler id, modifiedOn) of every scheduler."""
    return hashlib.sha256(json.dumps(sorted(state)).encode()).hexdigest()


def _unconfigured(servicetitan: ServiceTitanResource) -> dg.SkipReason | None:
    """A tick with settings missing skips naming them in one line, before any request."""
    try:
        servicetitan.check_settings()
    except ConfigurationError as err:
        return dg.SkipReason(f"not configured: {err}")
    return None


@dg.sensor(
    job=raw_sessions_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-ingests the days whose sessions changed after the hourly refresh stopped covering them "
    "(recovered abandonments, bookings turned into jobs): reads sessions modified since its "
    "cursor, per tenant, and requests each affected day older than yesterday once. Never opens "
    "DuckDB.",
)
def late_session_updates(context: dg.SensorEvaluationContext, servicetitan: ServiceTitanResource):
    if unconfigured := _unconfigured(servicetitan):
        return unconfigured
    cursor = json.loads(context.cursor) if context.cursor else {}
    changed: dict[str, str] = {}
    future: list[str] = []
    try:
        with servicetitan.clients() as clients:
            for tenant in servicetitan.tenants():
                client = clients(tenant)
                since = cursor.get(str(tenant))
                # The API's clock (its Date header), not ours: the cursor compares with its modifiedOn values.
                schedulers = [r for batch in client.schedulers() for r in batch]
                now = client.server_time or datetime.now(UTC)
                modified_from = (
                    None if since is None else (datetime.fromisoformat(since.replace("Z", "+00:00")) - CHANGES_OVERLAP)
                )
                records = (
                    ()
                    if since is None
                    else (
                        record
                        for scheduler in schedulers
                        for batch in client.scheduler_sessions(scheduler["id"], modified_from=modified_from)
                        for record in batch
                    )
                )
                found = tenant_changes(since, now, records)
                cursor[str(tenant)] = found.cursor
                if found.future:
                    future.append(
                        f"tenant {tenant}: {found.future} sessions modified after the API's own clock "
                        f"({now:%Y-%m-%d %H:%M} UTC); their days are read, the cursor stays at {found.cursor}"
                    )
                for key, modified in found.days.items():
                    changed[key] = max(changed.get(key, ""), modified)
    except ServiceTitanError as err:
        return dg.SkipReason(f"could not read the API ({type(err).__name__}: {err}); cursor left where it was")
    for line in future:
        context.log.warning(line)
    requests = late_update_requests(changed)
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps(cursor, sort_keys=True),
        skip_reason=None
        if requests
        else "; ".join(["no sessions older than yesterday changed since the last check", *future]),
    )


@dg.sensor(
    job=raw_schedulers_job,
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Refreshes raw/schedulers (and so marts/schedulers) when a scheduler appears, disappears or changes.",
)
def scheduler_changes(context: dg.SensorEvaluationContext, servicetitan: ServiceTitanResource):
    if unconfigured := _unconfigured(servicetitan):
        return unconfigured
    try:
        with servicetitan.clients() as clients:
            fingerprint = scheduler_fingerprint(
                [
                    (tenant, r["id"], r["modifiedOn"])
                    for tenant in servicetitan.tenants()
                    for batch in clients(tenant).schedulers()
                    for r in batch
                ]
            )
    except ServiceTitanError as err:
        return dg.SkipReason(f"could not read the API ({type(err).__name__}: {err}); cursor left where it was")
    if fingerprint == context.cursor:
        return dg.SkipReason("no scheduler changed")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"schedulers:{fingerprint}")], cursor=fingerprint)


marts_follow_raw = dg.AutomationConditionSensorDefinition(
    "marts_follow_raw",
    target=dg.AssetSelection.groups("scheduling_pro_marts"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Rebuilds the marts after raw data updates, whatever launched the raw run.",
)
