"""The real thing: `dg dev` (webserver and daemon) on a free port, a run launched through GraphQL, lineage
and check results read back through GraphQL, and the UI looked at in headless Chromium."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN_STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
FUNNEL = """
{
  assetNodeOrError(assetKey: {path: ["marts", "milestone_funnel"]}) {
    ... on AssetNode {
      dependencyKeys { path }
      dependedByKeys { path }
      assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization { status } } } }
      assetMaterializations(limit: 1) { runId metadataEntries { label } }
    }
  }
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(base: str, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture
def dev_env(tmp_path) -> dict:
    """The environment `make dev` and `make demo` share: one instance, one warehouse."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    return {**os.environ, "DAGSTER_HOME": str(home), "ST_DUCKDB_PATH": str(tmp_path / "e2e.duckdb")}


@pytest.fixture
def dagster_dev(tmp_path, dev_env):
    port = _free_port()
    env = dev_env
    log = (tmp_path / "dg-dev.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dg"), "dev", "--port", str(port), "--host", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (tmp_path / "dg-dev.log").read_text()[-3000:]
            try:
                data = _graphql(base, "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }")
                if data["repositoriesOrError"].get("nodes"):
                    break
            except (httpx.HTTPError, AssertionError, KeyError):
                pass
            assert time.monotonic() < deadline, "dg dev did not come up in 180 s"
            time.sleep(2)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def a_value_left_out_of_the_vocabulary(dev_env, tmp_path) -> str:
    """The shipped vocabulary without AbandonedSentToBooking (threshold raised so the marts still build): as
    when the live API starts sending a value nobody mapped. The reconciliation must then fail and say why."""
    text = (ROOT / "st_scheduling" / "vocabulary" / "default.toml").read_text()
    path = tmp_path / "vocabulary.toml"
    path.write_text(
        text.replace('AbandonedSentToBooking = "sent_to_booking"\n', "").replace(
            "unknown_threshold = 0.01", "unknown_threshold = 0.5"
        )
    )
    dev_env["ST_VOCABULARY"] = str(path)
    return "AbandonedSentToBooking"


def _duckdb_rows(path: str, sql: str, *params) -> list[tuple]:
    """Read the warehouse like an operator would, between runs (a run may hold the lock for a moment)."""
    import duckdb

    for _ in range(30):
        try:
            with duckdb.connect(path, read_only=True) as con:
                return con.execute(sql, list(params)).fetchall()
        except duckdb.IOException:
            time.sleep(1)
    raise AssertionError(f"{path} stayed locked for 30 s")


@pytest.mark.e2e
def test_a_run_through_the_webserver_and_daemon_then_the_ui_in_a_browser(
    a_value_left_out_of_the_vocabulary, dagster_dev, dev_env
):
    base = dagster_dev
    today = datetime.now(UTC).date()
    run_id = _launch(base, "scheduling_pro_job", str(today - timedelta(days=2)), str(today))
    assert _wait_for(base, run_id, {"SUCCESS", "FAILURE", "CANCELED"}, 420) == "SUCCESS"

    funnel = _graphql(base, FUNNEL)["assetNodeOrError"]
    assert {"/".join(k["path"]) for k in funnel["dependencyKeys"]} == {"marts/sessions", "raw/schedulers"}
    checks = {
        c["name"]: c["executionForLatestMaterialization"]["status"] for c in funnel["assetChecksOrError"]["checks"]
    }
    assert checks == {"funnel_monotone": "SUCCEEDED", "rates_within_0_and_1": "SUCCEEDED"}
    assert "funnel_chart" in {m["label"] for m in funnel["assetMaterializations"][0]["metadataEntries"]}

    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium): the browser part did not run")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 2600})  # tall enough for every mart
        for group, names in (
            ("scheduling_pro_raw", ("schedulers", "scheduler_sessions", "scheduler_performance")),
            (
                "scheduling_pro_marts",
                ("milestone_funnel", "campaign_attribution", "customer_follow_ups", "scheduler_scorecard"),
            ),
        ):
            page.goto(f"{base}/locations/st_scheduling/asset-groups/{group}", wait_until="networkidle")
            page.get_by_text(names[0], exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / f"asset-graph-{group}.png"))
            text = page.inner_text("body")
            assert all(name in text for name in names), (group, text[:2000])

        # A mart's column lineage, readable without Dagster+: over 1,000 characters, so behind [Show Markdown].
        page.goto(f"{base}/assets/marts/milestone_funnel", wait_until="networkidle")
        page.locator("tr", has_text="column_lineage").get_by_text("[Show Markdown]").first.click()
        page.get_by_text("marts/sessions.milestone_index").first.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "milestone-funnel-column-lineage.png"), full_page=True)
        text = page.inner_text("body")
        assert "raw/schedulers" in text and "raw/scheduler_sessions" in text and "<br>" not in text

        # A day's own row count, equal to that day's rows.
        day = str(today - timedelta(days=1))
        page.goto(f"{base}/assets/raw/scheduler_sessions?view=partitions&partition={day}", wait_until="networkidle")
        page.get_by_text("dagster/partition_row_count").first.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "scheduler-sessions-partition-row-count.png"), full_page=True)
        body = page.inner_text("body")
        shown = int(re.search(r"dagster/partition_row_count\s+(\d+)", body).group(1))
        assert "about_these_numbers" in body and "run_rows_stored_per_tenant" in body  # run totals say so
        [(stored,)] = _duckdb_rows(
            dev_env["ST_DUCKDB_PATH"],
            "SELECT count(*) FROM raw.scheduler_sessions WHERE CAST(timezone('UTC', created_on) AS DATE) = ?",
            day,
        )
        assert shown == stored > 0

        # A failing check explains itself: the metric that differs, and how often.
        page.goto(f"{base}/assets/marts/scheduler_scorecard?view=checks", wait_until="networkidle")
        page.get_by_text("differ from /performance").first.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "scheduler-scorecard-failed-check.png"), full_page=True)
        text = page.inner_text("body")
        assert "Failed" in text and re.search(r"totalAbandonedSessionsSentToBookings × \d+", text)

        page.goto(f"{base}/assets/marts/milestone_funnel?view=events", wait_until="networkidle")
        page.locator("tr", has_text="funnel_chart").get_by_text("[Show Markdown]").click()
        chart = page.locator("img[src^='data:image/png']").first
        chart.wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "milestone-funnel-chart.png"))
        assert chart.evaluate("img => img.naturalWidth") > 100, "the funnel chart image rendered"
        browser.close()


POOL = """{ instance { concurrencyLimits { concurrencyKey claimedSlots { runId } } } }"""


def _launch(base: str, job: str, first: str, last: str) -> str:
    launched = _graphql(
        base,
        LAUNCH,
        {
            "params": {
                "selector": {
                    "repositoryLocationName": "st_scheduling",
                    "repositoryName": "__repository__",
                    "jobName": job,
                },
                "runConfigData": {},
                "executionMetadata": {
                    "tags": [
                        {"key": "dagster/asset_partition_range_start", "value": first},
                        {"key": "dagster/asset_partition_range_end", "value": last},
                    ]
                },
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _wait_for(base: str, run_id: str, statuses: set[str], seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while True:
        status = _graphql(base, RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        if status in statuses:
            return status
        assert time.monotonic() < deadline, f"run {run_id} still {status} after {seconds} s"
        time.sleep(1)


RUN_EVENTS = """
query Events($id: ID!) {
  logsForRun(runId: $id) { ... on EventConnection { events { ... on MessageEvent { message } } } }
}"""


def _run_worker(base: str, run_id: str) -> int | None:
    """The run worker's pid, from the engine event Dagster logs when it starts it."""
    events = _graphql(base, RUN_EVENTS, {"id": run_id})["logsForRun"]["events"]
    for event in events:
        match = re.search(r"Started process for run \(pid: (\d+)\)", event.get("message") or "")
        if match:
            return int(match.group(1))
    return None


@pytest.mark.e2e
def test_a_killed_run_frees_the_duckdb_pool_and_the_next_run_succeeds(dagster_dev):
    base = dagster_dev
    today = datetime.now(UTC).date()
    run_id = _launch(base, "raw_sessions_job", "2026-09-01", str(today))
    _wait_for(base, run_id, {"STARTED"}, 180)
    deadline = time.monotonic() + 60
    while (worker := _run_worker(base, run_id)) is None:
        assert time.monotonic() < deadline, "no run worker process found"
        time.sleep(0.5)
    os.kill(worker, signal.SIGKILL)
    # Run monitoring notices the dead worker, fails the run and frees its pool slot.
    assert _wait_for(base, run_id, {"FAILURE", "CANCELED", "SUCCESS"}, 240) != "SUCCESS"
    next_run = _launch(base, "raw_sessions_job", str(today), str(today))
    assert _wait_for(base, next_run, {"SUCCESS", "FAILURE", "CANCELED"}, 240) == "SUCCESS"
    pools = _graphql(base, POOL)["instance"]["concurrencyLimits"]
    assert all(run_id not in {s["runId"] for s in pool["claimedSlots"]} for pool in pools)


REEXECUTE = """
mutation Reexecute($parent: String!) {
  launchPipelineReexecution(reexecutionParams: {parentRunId: $parent, strategy: ALL_STEPS}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""


@pytest.mark.e2e
def test_a_make_demo_run_shows_in_the_instance_and_reexecutes_from_graphql(dagster_dev, dev_env):
    base = dagster_dev
    recent = str(datetime.now(UTC).date() - timedelta(days=2))  # a short history keeps the demo quick
    demo = subprocess.run(
        [sys.executable, "-m", "st_scheduling.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**dev_env, "ST_START_DATE": recent},
        timeout=600,
    )
    assert demo.returncode == 0, (demo.stdout + demo.stderr)[-3000:]
    parent = re.search(r"Run ([0-9a-f-]{36}): succeeded", demo.stdout).group(1)
    assert _graphql(base, RUN_STATUS, {"id": parent})["runOrError"]["status"] == "SUCCESS"
    launched = _graphql(base, REEXECUTE, {"parent": parent})["launchPipelineReexecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    assert _wait_for(base, launched["run"]["runId"], {"SUCCESS", "FAILURE", "CANCELED"}, 420) == "SUCCESS"
