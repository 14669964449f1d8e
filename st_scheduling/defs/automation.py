"""What keeps the platform current: the main job, scheduled refreshes, sensors, and marts following raw data.

- `refresh_recent_days` (hourly): today's and yesterday's raw partitions, in ST_TIMEZONE.
- `refresh_lookback` (nightly): the last LOOKBACK_DAYS partitions, for sessions that changed late, with the
  scheduler inventory and every mart (the main job).
- `late_session_updates` (sensor): sessions modified since its cursor whose day is older than yesterday.
- `scheduler_changes` (sensor): refreshes raw/schedulers when a scheduler appears or changes.
- `marts_follow_raw` (automation sensor): rebuilds marts after any raw update, whatever launched it.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from st_scheduling.defs.partitions import FIRST_DAY, LOOKBACK_DAYS, RANGE_END, RANGE_START, TIMEZONE, local_day
from st_scheduling.defs.resources import ServiceTitanResource
from st_scheduling.servicetitan import ServiceTitanError

LATE_UPDATE_OVERLAP = timedelta(minutes=10)  # re-read this much before the cursor: clocks and commits lag
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
    "raw_schedulers_job", selection=dg.AssetSelection.assets(["raw", "schedulers"]),
    description="The scheduler inventory (marts/schedulers follows automatically).",
)


def range_request(first: str, last: str, run_key: str | None = None) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, tags={RANGE_START: first, RANGE_END: last})


def _clip(first: str) -> str:
    return max(first, FIRST_DAY)


@dg.schedule(job=raw_sessions_job, cron_schedule="5 * * * *", execution_timezone=TIMEZONE, default_status=RUNNING,
             description="Hourly: today's and yesterday's sessions and performance, as one run.")
def refresh_recent_days(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    now = context.scheduled_execution_time
    return range_request(_clip(local_day(now, -1)), local_day(now))


@dg.schedule(job=scheduling_pro_job, cron_schedule="30 2 * * *", execution_timezone=TIMEZONE,
             default_status=RUNNING, description=f"Nightly: the last {LOOKBACK_DAYS} days again, for sessions that "
                                                  "changed late, with the scheduler inventory and every mart.")
def refresh_lookback(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    now = context.scheduled_execution_time
    return range_request(_clip(local_day(now, -LOOKBACK_DAYS)), local_day(now))


def _created_partitions(records: list[dict]) -> dict[str, str]:
    """Partition key (local creation day) -> greatest modifiedOn among `records` created that day."""
    found: dict[str, str] = {}
    for record in records:
        key = local_day(datetime.fromisoformat(record["createdOn"].replace("Z", "+00:00")))
        found[key] = max(found.get(key, ""), record["modifiedOn"])
    return found


@dg.sensor(job=raw_sessions_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Re-ingests the days whose sessions changed after the hourly refresh stopped covering them "
                       "(recovered abandonments, bookings turned into jobs): reads sessions modified since its "
                       "cursor, per tenant, and requests each affected day older than yesterday once. Never opens "
                       "DuckDB.")
def late_session_updates(context: dg.SensorEvaluationContext, servicetitan: ServiceTitanResource):
    cursor = json.loads(context.cursor) if context.cursor else {}
    changed: dict[str, str] = {}
    new_cursor = dict(cursor)
    try:
        with servicetitan.clients() as clients:
            for tenant in servicetitan.tenants():
                client = clients(tenant)
                schedulers = [r for batch in client.schedulers(tenant) for r in batch]
                # The API's clock (its Date header), not ours: the cursor compares with its modifiedOn values.
                now = client.server_time or datetime.now(UTC)
                oldest_recent = local_day(now, -1)
                since = cursor.get(str(tenant))
                if since is None:  # first tick: start watching from now; the nightly look-back covers the past
                    new_cursor[str(tenant)] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
                    continue
                modified_from = datetime.fromisoformat(since.replace("Z", "+00:00")) - LATE_UPDATE_OVERLAP
                latest = since
                for scheduler in schedulers:
                    for batch in client.scheduler_sessions(tenant, scheduler["id"], modified_from=modified_from):
                        for key, modified in _created_partitions(batch).items():
                            latest = max(latest, modified)
                            if FIRST_DAY <= key < oldest_recent:
                                changed[key] = max(changed.get(key, ""), modified)
                new_cursor[str(tenant)] = latest
    except ServiceTitanError as err:
        return dg.SkipReason(f"could not read the API ({type(err).__name__}: {err}); cursor left where it was")
    requests = [range_request(key, key, run_key=f"late-update:{key}:{modified}")
                for key, modified in sorted(changed.items())]
    context.update_cursor(json.dumps(new_cursor, sort_keys=True))
    if not requests:
        return dg.SkipReason("no sessions older than yesterday changed since the last check")
    return requests


@dg.sensor(job=raw_schedulers_job, minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Refreshes raw/schedulers (and so marts/schedulers) when a scheduler appears, disappears "
                       "or changes.")
def scheduler_changes(context: dg.SensorEvaluationContext, servicetitan: ServiceTitanResource):
    try:
        with servicetitan.clients() as clients:
            state = sorted((tenant, r["id"], r["modifiedOn"]) for tenant in servicetitan.tenants()
                           for batch in clients(tenant).schedulers(tenant) for r in batch)
    except ServiceTitanError as err:
        return dg.SkipReason(f"could not read the API ({type(err).__name__}: {err}); cursor left where it was")
    fingerprint = hashlib.sha256(json.dumps(state).encode()).hexdigest()
    if fingerprint == context.cursor:
        return dg.SkipReason("no scheduler changed")
    context.update_cursor(fingerprint)
    return dg.RunRequest(run_key=f"schedulers:{fingerprint}")


marts_follow_raw = dg.AutomationConditionSensorDefinition(
    "marts_follow_raw",
    target=dg.AssetSelection.groups("scheduling_pro_marts"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Rebuilds the marts after raw data updates, whatever launched the raw run.",
)
