"""Alerting: failed runs and failed checks posted to ST_ALERT_WEBHOOK_URL as Slack-compatible JSON.

The messages carry job, run, asset and check names and the failure's first line, which the platform builds
without secrets or customer data; never check examples or record values.
"""

import os

import dagster as dg
import httpx

WEBHOOK = "ST_ALERT_WEBHOOK_URL"


def run_failure_text(job: str, run_id: str, causes: list[str]) -> str:
    lines = [f":red_circle: st_scheduling run failed: {job} ({run_id})"]
    lines += [f"• {cause.splitlines()[0][:400]}" for cause in causes[:5]] or ["• (no step failed: see the run)"]
    return "\n".join(lines)


def failed_checks_text(job: str, run_id: str, failed: list[tuple[str, str, str]]) -> str:
    """failed: (asset, check, the evaluation's description)."""
    lines = [f":warning: st_scheduling checks failed in {job} ({run_id}):"]
    lines += [f"• {asset} {check}: {(description or 'failed').splitlines()[0][:400]}"
              for asset, check, description in failed[:10]]
    return "\n".join(lines)


def post(text: str) -> bool:
    """Post to the webhook; False when none is configured. A refused post fails the tick (shown in the UI)."""
    url = os.getenv(WEBHOOK)
    if not url:
        return False
    httpx.post(url, json={"text": text}, timeout=10).raise_for_status()
    return True


@dg.run_failure_sensor(name="alert_on_run_failure", default_status=dg.DefaultSensorStatus.RUNNING,
                       monitor_all_code_locations=False,
                       description=f"Posts every failed run, with its first failed steps' causes, to {WEBHOOK} "
                                   "(Slack-compatible JSON). Does nothing while the variable is unset.")
def alert_on_run_failure(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    causes = [e.dagster_event.event_specific_data.error.message for e in
              context.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
              if e.dagster_event.event_specific_data.error]
    if not post(run_failure_text(run.job_name, run.run_id, causes)):
        return dg.SkipReason(f"{WEBHOOK} is not set")


@dg.run_status_sensor(name="alert_on_failed_checks", run_status=dg.DagsterRunStatus.SUCCESS,
                      default_status=dg.DefaultSensorStatus.RUNNING, monitor_all_code_locations=False,
                      description=f"Posts the failed asset checks of every successful run (failed runs are posted "
                                  f"whole) to {WEBHOOK}, including the broken-scheduler alarm.")
def alert_on_failed_checks(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    failed = []
    for record in context.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data
        if not evaluation.passed:
            failed.append((evaluation.asset_key.to_user_string(), evaluation.check_name, evaluation.description))
    if not failed:
        return dg.SkipReason("no failed check")
    if not post(failed_checks_text(run.job_name, run.run_id, failed)):
        return dg.SkipReason(f"{WEBHOOK} is not set")


@dg.definitions
def alert_definitions() -> dg.Definitions:
    return dg.Definitions(sensors=[alert_on_run_failure, alert_on_failed_checks])
