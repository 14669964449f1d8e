"""Scheduling Pro webhooks into the platform. The receiver (`st_scheduling.webhooks`) stores each event in its
inbox; these sensors read the inbox, never DuckDB, each from its own cursor (a position in the inbox).

- `webhook_sessions`: new events become one `raw_sessions_job` run over the days (in ST_TIMEZONE, by the
  session's createdOn) their sessions were created. The run reads those days from the API again: the API stays
  the source of truth (an event's own copy of the session is never written to raw, so it can never override a
  newer one), the nightly look-back reconciles, and `marts_follow_raw` rebuilds the marts after it.
- `webhook_callbacks`: each `tn.sp.session-abandoned-qualified` event posted to ST_CALLBACK_WEBHOOK_URL.

Both are idle while the inbox is empty: with no receiver, the hourly refresh and the late-update sensor keep the
platform current exactly as before.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import httpx
import pyarrow.parquet as pq

from st_scheduling import config, vocabulary
from st_scheduling.defs import alerts, automation
from st_scheduling.defs.partitions import FIRST_DAY, local_day
from st_scheduling.defs.resources import ServiceTitanResource
from st_scheduling.quality.checks import describe_value
from st_scheduling.servicetitan import ConfigurationError
from st_scheduling.warehouse import publish
from st_scheduling.webhooks import backend, envelope

# automation.raw_sessions_job, never imported by name: the defs loader would collect the job a second time.
TRIGGER_TAG, TRIGGER = "st_scheduling/trigger", "webhooks"
EVENTS_PER_TICK = 10_000
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
# A call back is worth making the same day; older abandonments are in marts/customer_follow_ups.
CALLBACK_MAX_AGE = timedelta(hours=24)
FOLLOW_UPS = dg.AssetKey(["marts", "customer_follow_ups"])


@dataclass(frozen=True)
class Affected:
    days: set[str]  # partition keys to read again
    unconfigured: dict[int, int]  # tenant not in the settings -> its events, kept in the inbox and not read
    outside: int  # sessions created outside the partitions (before ST_START_DATE, or after today on our clock)


def affected_days(events: Iterable[dict], tenants: set[int], today: str) -> Affected:
    """The days whose sessions the events changed, for the configured `tenants`."""
    days: set[str] = set()
    unconfigured: Counter[int] = Counter()
    outside = 0
    for event in events:
        tenant = event["data"]["tenantId"]
        if tenant not in tenants:
            unconfigured[tenant] += 1
            continue
        created = datetime.fromisoformat(event["data"]["session"]["createdOn"])
        day = local_day(created)
        if FIRST_DAY <= day <= today:
            days.add(day)
        else:
            outside += 1
    return Affected(days, dict(sorted(unconfigured.items())), outside)


def sessions_request(days: set[str], position: str) -> dg.RunRequest:
    """One run over every affected day (the span from the first to the last: one API pass per scheduler); the run
    key is the inbox position, so a tick evaluated twice launches once."""
    return automation.range_request(min(days), max(days), run_key=f"webhooks:{position}", tags={TRIGGER_TAG: TRIGGER})


def report(found: Affected) -> list[str]:
    lines = [
        f"tenant {tenant}: {count} webhook events, but the tenant is not in ST_TENANT_IDS; kept in the inbox, not read"
        for tenant, count in found.unconfigured.items()
    ]
    if found.outside:
        lines.append(
            f"{found.outside} webhook events for sessions created outside the daily partitions "
            f"({FIRST_DAY} to today); not read"
        )
    return lines


NO_INBOX = "no webhook inbox: the warehouse is in MotherDuck and neither ST_WEBHOOK_INBOX nor DAGSTER_PG_* is set"


def _inbox(settings: config.Settings) -> backend.Inbox | None:
    assert settings.webhooks is not None  # from_env always reads them
    return backend.chosen(settings.webhooks)


def _webhook_run_in_flight(instance: dg.DagsterInstance) -> bool:
    runs = dg.RunsFilter(job_name=automation.raw_sessions_job.name, tags={TRIGGER_TAG: TRIGGER}, statuses=IN_FLIGHT)
    return bool(instance.get_run_records(runs, limit=1))


@dg.sensor(
    job=automation.raw_sessions_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Brings the sessions of new webhook events into raw within minutes: one run that reads the "
    "days their sessions were created from the API again (marts follow). Holds new events while "
    "its last run has not finished. Idle while the webhook inbox is empty.",
)
def webhook_sessions(context: dg.SensorEvaluationContext, servicetitan: ServiceTitanResource):
    where = _inbox(config.Settings.from_env())
    if where is None:
        return dg.SkipReason(NO_INBOX)
    events, position = where.read(context.cursor, EVENTS_PER_TICK)
    if not events:
        return dg.SkipReason("no new webhook events")
    # One run at a time: a run reads each day's latest state when it runs, so events arriving meanwhile wait for
    # the next (the cursor stays), and a burst never queues a run per tick behind the DuckDB writer pool.
    if _webhook_run_in_flight(context.instance):
        return dg.SkipReason(f"{len(events)} new webhook events wait for the last webhook run to finish")
    try:
        tenants = set(servicetitan.tenants())
    except ConfigurationError as err:
        return dg.SkipReason(f"not configured: {err}")
    found = affected_days((stored.event for stored in events), tenants, local_day(datetime.now(UTC)))
    lines = report(found)
    for line in lines:
        context.log.warning(line)
    if not found.days:
        return dg.SensorResult(cursor=position, skip_reason="; ".join(lines))
    return dg.SensorResult(run_requests=[sessions_request(found.days, position)], cursor=position)


def callback_text(
    event: dict, scheduler: str | None, steps: Mapping[str, str], timezone: str, include_contact: bool, ui: str | None
) -> str:
    """A Slack-compatible call-back alert for one qualified abandoned session: who (only when `include_contact`),
    which scheduler, when, what the customer asked for, the step where they left, and a link to the call-back list."""
    data = event["data"]
    session, tenant = data["session"], data["tenantId"]
    when = datetime.fromisoformat(event["time"]).astimezone(ZoneInfo(timezone))
    step = session.get("lastStep")
    left = (
        "unknown"
        if not step
        else (
            f"{steps[step]} ({describe_value(step, (tenant, session['id']))})"
            if step in steps
            else describe_value(step, (tenant, session["id"]))
        )
    )
    asked = session.get("category")
    lines = [
        (
            f"scheduler: {alerts.escape(scheduler or session.get('schedulerId') or 'unknown')} "
            f"({alerts.escape(str(data.get('tenantName') or ''))}, tenant {tenant})"
        ),
        f"abandoned: {when:%Y-%m-%d %H:%M} {timezone}",
        f"asked for: {alerts.escape(alerts.shorten(asked, 80)) if asked else 'no service chosen'}",
        f"left at: {alerts.escape(left)}",
    ]
    if include_contact:
        customer = session.get("customer") or {}
        name = " ".join(filter(None, (customer.get("firstName"), customer.get("lastName"))))
        contact = ", ".join(filter(None, (name, customer.get("phone"), customer.get("email"))))
        lines.append(f"contact: {alerts.escape(alerts.shorten(contact, 200))}")
    lines.append(
        f"session: {alerts.escape(session['id'])}; "
        + alerts.link(alerts.asset_url(ui, FOLLOW_UPS) if ui else None, "the call-back list")
    )
    title = ":telephone_receiver: st_scheduling call back: a customer left their details, then the scheduler"
    return "\n".join([title, *(f"• {line}" for line in lines)])


def scheduler_names(settings: config.Settings) -> dict[tuple[int, str], str]:
    """(tenant, scheduler id) -> name, from the published marts/schedulers snapshot (a sensor never opens DuckDB);
    empty when there is none yet, and the alert shows the scheduler's id."""
    directory = settings.publish_dir or publish.default_directory(settings.duckdb_path)
    try:
        rows = (
            pq.read_table(
                publish.snapshot_path(directory, "schedulers"), columns=["tenant_id", "scheduler_id", "scheduler_name"]
            ).to_pylist()
            if directory
            else []
        )
    except (OSError, ValueError):
        return {}
    return {(row["tenant_id"], row["scheduler_id"]): row["scheduler_name"] for row in rows}


@dg.sensor(
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Posts each qualified abandoned session (tn.sp.session-abandoned-qualified) to "
    f"{config.CALLBACK_URL} within a minute of its webhook, once: scheduler, time, what the "
    "customer asked for, the step where they left and a link; contact details only with "
    "ST_CALLBACK_INCLUDE_CONTACT=true. Idle while the variable is unset.",
)
def webhook_callbacks(context: dg.SensorEvaluationContext):
    if not config.callback_url():
        return dg.SkipReason(f"{config.CALLBACK_URL} is not set")  # the cursor stays: set it, and today's are posted
    settings = config.Settings.from_env()
    where = _inbox(settings)
    if where is None:
        return dg.SkipReason(NO_INBOX)
    events, _ = where.read(context.cursor, EVENTS_PER_TICK)
    if not events:
        return dg.SkipReason("no new webhook events")
    names, steps = scheduler_names(settings), vocabulary.load(settings.vocabulary_file).steps
    position, posted, stale, now = context.cursor, 0, 0, datetime.now(UTC)
    for stored in events:
        event = stored.event
        if event["type"] == envelope.ABANDONED_QUALIFIED:
            if now - datetime.fromisoformat(event["time"]) > CALLBACK_MAX_AGE:
                stale += 1
            else:
                session = event["data"]["session"]
                text = callback_text(
                    event,
                    names.get((event["data"]["tenantId"], session.get("schedulerId"))),
                    steps,
                    settings.timezone,
                    settings.webhooks.callback_include_contact,
                    config.ui_url(),
                )
                try:
                    alerts.post(text, config.CALLBACK_URL)
                except httpx.HTTPError as err:
                    # The cursor stops before this event, so it is posted at the next tick and the ones posted are not
                    # posted again.
                    context.log.error(f"posting a call-back failed ({type(err).__name__}); retried next tick")
                    return dg.SensorResult(
                        cursor=position,
                        skip_reason=f"posted {posted} call-backs; the next "
                        f"failed ({type(err).__name__}) and is retried next tick",
                    )
                posted += 1
        position = stored.position
    skipped = f"; {stale} older than {CALLBACK_MAX_AGE.total_seconds() / 3600:g} h not posted" if stale else ""
    return dg.SensorResult(cursor=position, skip_reason=f"posted {posted} call-backs{skipped}")
