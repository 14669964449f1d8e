"""Alerting: failed runs, failed checks and failed freshness posted to ST_ALERT_WEBHOOK_URL as Slack-compatible
JSON (`{"text": ...}`), each with a link into the Dagster UI when ST_UI_URL is set.

What an alert may quote. Alerts leave the platform (a Slack channel, a pager), so they are built only from what
the platform itself names: the job, the run id, step and asset keys, check names, the failing error's class, the
freshness window, and the first sentence of a failed check's description. A check states its finding in that
first sentence in its own words (a count and its rule, a tenant and a scheduler, a day); the record values it
may show come after it (`check_result`'s "First: ..." example row) or in its metadata, and are never quoted. The
text of a failed step's error is never quoted either: DuckDB, HTTP and validation errors can carry record values
(a value that failed to convert, a response body). The link leads to the full story in the UI, where access is
controlled. A check that writes record values into its first sentence breaks this rule.

Freshness: the freshness daemon (on by default in Dagster 1.13; `freshness: enabled: false` in dagster.yaml turns
it off) evaluates every asset's `FreshnessPolicy` about every 30 s and records each change of state in the event
log; `DagsterInstance.get_freshness_state_records` reads the latest state per asset, the state the UI shows.
`alert_on_stale_assets` compares it with the assets it last saw failing (its cursor) and posts each asset that
became FAIL once, and once more when it is fresh again (PASS or WARN). An asset that leaves FAIL any other way
(its policy removed, its history wiped) is dropped silently. Its first tick posts the assets failing then.
"""

import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

import dagster as dg
import httpx
from dagster._core.definitions.freshness import CronFreshnessPolicy, TimeWindowFreshnessPolicy

from st_scheduling import config

WEBHOOK = "ST_ALERT_WEBHOOK_URL"
LINE_LIMIT = 300  # one bullet: a Slack line people read, not a log
MAX_LINES = 10
ELLIPSIS = "…"
_SENTENCE_END = re.compile(r"[.;](?= )|\n")
_FIRST_SENTENCE = re.compile(r"\.(?=\s)")


def shorten(text: str, limit: int = LINE_LIMIT) -> str:
    """`text` if it fits, else its longest run of whole sentences (ending at ". ", "; " or a line end) that
    fits with " …". A first sentence longer than `limit` ends at a word instead, a single word longer than
    `limit` where it must."""
    text = text.strip()
    if len(text) <= limit:
        return text
    room = limit - len(ELLIPSIS) - 1
    ends = (m.start() + (m.group() == ".") for m in _SENTENCE_END.finditer(text))
    kept = text[: max((end for end in ends if end <= room), default=0)].rstrip()
    if not kept:
        space = text.rfind(" ", 0, room + 1)
        kept = text[: space if space > 0 else room].rstrip()
    return f"{kept} {ELLIPSIS}"


def first_sentence(description: str | None) -> str:
    """The part of a check's description an alert may quote (see the module docstring)."""
    line = (description or "").strip().split("\n", 1)[0]
    end = _FIRST_SENTENCE.search(line)
    return line[: end.end()] if end else line


def escape(text: str) -> str:
    """Slack reads &, < and > as markup; a rule such as `rows < 0` must arrive as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def run_url(ui: str, run_id: str) -> str:
    return f"{ui}/runs/{quote(run_id, safe='')}"


def asset_url(ui: str, key: dg.AssetKey, check: str | None = None) -> str:
    """The asset's page as the UI routes it (`/assets/<each path part, encoded>`); with `check`, that check's
    detail on the asset's Checks tab."""
    url = f"{ui}/assets/" + "/".join(quote(part, safe="") for part in key.path)
    return f"{url}?{urlencode({'view': 'checks', 'checkDetail': check})}" if check else url


def link(url: str | None, label: str) -> str:
    """Slack's `<url|label>`; Slack unescapes &amp; in the URL too."""
    return f"<{escape(url)}|{escape(label)}>" if url else escape(label)


def _bullets(lines: list[str]) -> list[str]:
    shown = [f"• {line}" for line in lines[:MAX_LINES]]
    return shown + ([f"• and {len(lines) - MAX_LINES} more: see the UI"] if len(lines) > MAX_LINES else [])


def _check_lines(failed: Iterable[tuple[dg.AssetKey, str, str | None]], ui: str | None) -> list[str]:
    return [
        f"{link(asset_url(ui, key, check) if ui else None, f'{key.to_user_string()} {check}')}: "
        f"{escape(shorten(first_sentence(description) or 'failed'))}"
        for key, check, description in failed
    ]


def run_failure_text(
    job: str,
    run_id: str,
    steps: list[tuple[str, str]],
    failed_checks: list[tuple[dg.AssetKey, str, str | None]],
    ui: str | None = None,
) -> str:
    """steps: (step key, the class of its error); failed_checks: (asset, check, the evaluation's description)."""
    run = link(run_url(ui, run_id) if ui else None, run_id)
    lines = [
        f"step {escape(step)} failed" + (f" ({escape(error)})" if error and error != "Failure" else "")
        for step, error in steps
    ] or ["no step failed: the run did (its worker stopped, or it never started)"]
    lines += _check_lines(failed_checks, ui)
    return "\n".join([f":red_circle: st_scheduling run failed: {escape(job)} ({run})", *_bullets(lines)])


def failed_checks_text(
    job: str, run_id: str, failed: list[tuple[dg.AssetKey, str, str | None]], ui: str | None = None
) -> str:
    """failed: (asset, check, the evaluation's description)."""
    run = link(run_url(ui, run_id) if ui else None, run_id)
    return "\n".join(
        [f":warning: st_scheduling checks failed in {escape(job)} ({run}):", *_bullets(_check_lines(failed, ui))]
    )


def freshness_changes(
    failing_before: Iterable[str], states: Mapping[str, str]
) -> tuple[list[str], list[str], list[str]]:
    """(newly failing, fresh again, failing now) from the assets failing at the last post and each asset's
    freshness state now (FreshnessState values by asset key string)."""
    before = set(failing_before)
    now = sorted(key for key, state in states.items() if state == "FAIL")
    recovered = sorted(key for key in before if states.get(key) in ("PASS", "WARN"))
    return [key for key in now if key not in before], recovered, now


def _span(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def expectation(policy: dg.FreshnessPolicy) -> str:
    """What the asset failed to do, in the policy's own terms."""
    if isinstance(policy, TimeWindowFreshnessPolicy):
        return f"not updated within {_span(policy.fail_window.to_timedelta())}"
    if isinstance(policy, CronFreshnessPolicy):
        return f"not updated by its deadline ({policy.deadline_cron} {policy.timezone})"
    return "not updated as its freshness policy expects"


def freshness_text(
    failed: list[tuple[dg.AssetKey, str, datetime]], recovered: list[dg.AssetKey], ui: str | None = None
) -> str:
    """failed: (asset, what it failed to do, when it started failing); recovered: assets fresh again."""

    def name(key: dg.AssetKey) -> str:
        return link(asset_url(ui, key) if ui else None, key.to_user_string())

    parts = []
    if failed:
        parts += [
            ":hourglass: st_scheduling data is late (freshness policy failed):",
            *_bullets(
                [
                    f"{name(key)}: {escape(missed)} (failing since {since:%Y-%m-%d %H:%M} UTC)"
                    for key, missed, since in failed
                ]
            ),
        ]
    if recovered:
        parts += [":white_check_mark: st_scheduling data is fresh again: " + ", ".join(map(name, recovered))]
    return "\n".join(parts)


def post(text: str, variable: str = WEBHOOK) -> bool:
    """Post to the webhook in `variable`; False when none is configured. A refused post raises (httpx.HTTPError):
    it fails the tick, shown in the UI."""
    url = os.getenv(variable)
    if not url:
        return False
    httpx.post(url, json={"text": text}, timeout=10).raise_for_status()
    return True


def _error_class(error) -> str:
    """The error that was raised, not Dagster's wrapper around user code."""
    while error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    return error.cls_name


def _failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[tuple[dg.AssetKey, str, str | None]]:
    failed = []
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data
        if not evaluation.passed:
            failed.append((evaluation.asset_key, evaluation.check_name, evaluation.description))
    return failed


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=False,
    description=f"Posts every failed run to {WEBHOOK} (Slack-compatible JSON): its failed steps "
    "with their error's class and its failed checks, linked to the run when ST_UI_URL "
    "is set. Does nothing while the variable is unset.",
)
def alert_on_run_failure(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    steps = [
        (event.step_key, _error_class(event.event_specific_data.error) if event.event_specific_data.error else "")
        for event in context.get_step_failure_events()
    ]
    text = run_failure_text(
        run.job_name, run.run_id, steps, _failed_checks(context.instance, run.run_id), config.ui_url()
    )
    if not post(text):
        context.log.info(f"{WEBHOOK} is not set")


@dg.run_status_sensor(
    name="alert_on_failed_checks",
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=False,
    description=f"Posts the failed asset checks of every successful run (failed runs are posted "
    f"whole) to {WEBHOOK}, including the broken-scheduler alarm, each linked to its "
    "check in the UI when ST_UI_URL is set.",
)
def alert_on_failed_checks(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    # A tick handles every run that ended since the last one: a SkipReason for one run beside the reaction to
    # another fails the whole tick, so nothing here returns one.
    failed = _failed_checks(context.instance, run.run_id)
    if failed and not post(failed_checks_text(run.job_name, run.run_id, failed, config.ui_url())):
        context.log.info(f"{WEBHOOK} is not set")


@dg.sensor(
    name="alert_on_stale_assets",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Posts each asset whose freshness policy starts failing (not updated in time: the refresh "
    f"stopped or keeps failing) to {WEBHOOK} once, and once more when it is fresh again, linked "
    "to the asset when ST_UI_URL is set. Reads the freshness daemon's states from the instance, "
    "never the warehouse.",
)
def alert_on_stale_assets(context: dg.SensorEvaluationContext):
    if context.repository_def is None:
        return dg.SkipReason("no code location to read freshness policies from")
    policies = {
        key: assets_def.specs_by_key[key].freshness_policy
        for key, assets_def in context.repository_def.assets_defs_by_key.items()
        if assets_def.specs_by_key[key].freshness_policy is not None
    }
    records = context.instance.get_freshness_state_records(list(policies))
    states = {key.to_user_string(): record.freshness_state.value for key, record in records.items()}
    failing_before = json.loads(context.cursor) if context.cursor else []
    failed, recovered, failing_now = freshness_changes(failing_before, states)
    cursor = json.dumps(failing_now)
    if not failed and not recovered:
        return dg.SensorResult(skip_reason=dg.SkipReason("no change in freshness"), cursor=cursor)
    by_name = {key.to_user_string(): key for key in records}
    text = freshness_text(
        [(by_name[name], expectation(policies[by_name[name]]), records[by_name[name]].updated_at) for name in failed],
        [by_name[name] for name in recovered],
        config.ui_url(),
    )
    if not post(text):  # the cursor stays, so whatever is failing is posted once the webhook is set
        return dg.SkipReason(f"{WEBHOOK} is not set")
    return dg.SensorResult(
        skip_reason=dg.SkipReason(f"posted: {len(failed)} late, {len(recovered)} fresh again"), cursor=cursor
    )


@dg.definitions
def alert_definitions() -> dg.Definitions:
    config.ui_url()  # a malformed ST_UI_URL fails the load, naming the variable, not the first alert
    return dg.Definitions(sensors=[alert_on_run_failure, alert_on_failed_checks, alert_on_stale_assets])
