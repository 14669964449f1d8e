"""Ingestion against a hostile server of our own (`hostile.py`), through real HTTP and Dagster runs.

Each misbehaviour ends in a named failure with the stored rows exactly as before, or in an exact result.
"""

import json
import logging
import os
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import duckdb
import orjson
import pytest

from st_scheduling.defs.raw.assets import raw_scheduler_sessions
from st_scheduling.defs.resources import DuckDBWarehouse, ServiceTitanResource
from st_scheduling_tests import hostile
from st_scheduling_tests.conftest import materialize

DAY = hostile.DAY
SHORT = {"max_attempts": 2, "retry_base_seconds": 0.01, "timeout_seconds": 2.0, "max_retry_seconds": 10.0}


@pytest.fixture
def server():
    state = hostile.Hostile()
    http, base = hostile.serve(state)
    yield state, base
    http.shutdown()


def api(base: str, **changes) -> ServiceTitanResource:
    return ServiceTitanResource(
        environment=base,
        client_id=hostile.CLIENT_ID,
        client_secret=hostile.CLIENT_SECRET,
        app_key=hostile.APP_KEY,
        tenant_ids=str(hostile.TENANT),
        **{**SHORT, **changes},
    )


def run(base: str, warehouse: DuckDBWarehouse, allow_shrink: bool = False, instance=None, **changes):
    config = {"ops": {"raw__scheduler_sessions": {"config": {"allow_shrink": allow_shrink}}}}
    return materialize(
        [raw_scheduler_sessions],
        api(base, **changes),
        warehouse,
        DAY,
        DAY,
        run_config=config,
        instance=instance or dg.DagsterInstance.ephemeral(),
    )


def stored(path: str) -> dict[str, tuple]:
    with duckdb.connect(path, read_only=True) as con:
        return {
            i: (o, m)
            for i, o, m in con.execute("SELECT id, listed_by_id, modified_on FROM raw.scheduler_sessions").fetchall()
        }


def failure(result) -> str:
    assert not result.success
    return "\n".join(
        e.step_failure_data.error.to_string() for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    )


@pytest.fixture
def baseline(server, tmp_path):
    """The hostile server's normal world stored once: 2 schedulers x 300 sessions."""
    state, base = server
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"))
    assert run(base, warehouse).success
    before = stored(warehouse.path)
    assert len(before) == 2 * hostile.PER_SCHEDULER
    return state, base, warehouse, before


def test_a_scheduler_missing_from_the_list_keeps_its_rows_and_is_named(baseline):
    state, base, warehouse, before = baseline
    state.schedulers = ["sched-a"]
    instance = dg.DagsterInstance.ephemeral()
    result = run(base, warehouse, instance=instance)
    assert result.success, "a deleted scheduler keeps its history; every later run would fail otherwise"
    assert stored(warehouse.path) == before
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["run_owners_not_listed_rows_kept"].value == {f"{hostile.TENANT}/sched-b": hostile.PER_SCHEDULER}
    warnings = [e.user_message for e in instance.all_logs(result.run_id) if e.level == logging.WARNING]
    assert any("not listed by the API now keep their rows" in w and "sched-b" in w for w in warnings)


def test_a_shrinking_window_is_refused_by_name_until_the_override_is_set(baseline):
    state, base, warehouse, before = baseline
    state.sessions = {s: records[:1] for s, records in state.sessions.items()}
    text = failure(run(base, warehouse))
    assert (
        f"tenant {hostile.TENANT} owner sched-a: the API now lists 1 distinct rows where 300 are stored, and no "
        f"longer lists 299 stored ids ({hostile.DAY}: 299)"
    ) in text
    assert "allow_shrink" in text
    assert stored(warehouse.path) == before
    assert run(base, warehouse, allow_shrink=True).success, "a real deletion, confirmed in run config"
    assert set(stored(warehouse.path)) == {"sched-a-0000", "sched-b-0000"}


def test_ids_replaced_by_as_many_new_ones_are_refused_by_id_not_by_count(baseline):
    state, base, warehouse, before = baseline
    state.sessions["sched-a"] = state.sessions["sched-a"][100:] + [
        hostile.session("sched-a", 1000 + n) for n in range(100)
    ]
    text = failure(run(base, warehouse))
    assert "the API now lists 300 distinct rows where 300 are stored, and no longer lists 100 stored ids" in text
    assert stored(warehouse.path) == before


def endless_new_pages(h, sid, page, size) -> None:
    data = [hostile.session(sid, 1000 * page + n) for n in range(3)]
    h.send(200, orjson.dumps({"page": page, "pageSize": size, "hasMore": True, "totalCount": 6, "data": data}))


@pytest.mark.parametrize(
    "mode, named",
    [
        (hostile.endless_same_page, "page 2 repeats the ids of page 1"),
        (endless_new_pages, "still says hasMore after"),
        (hostile.trickle, "deadline: the response took longer than 2 s"),
        (hostile.redirect_with_page, "returned 302 Found (a redirect: refused, never followed"),
        (hostile.empty_redirect, "returned 307 Temporary Redirect (a redirect"),
        (hostile.gzip_bomb, "ResponseLimitError"),
    ],
)
def test_misbehaving_pages_fail_by_name_in_bounded_time_and_keep_the_rows(baseline, mode, named):
    state, base, warehouse, before = baseline
    if mode is hostile.gzip_bomb:
        hostile.bomb()  # built before the run, so the server answers at once
    state.overrides[mode.__name__] = mode
    state.mode = mode.__name__
    calls_before = len(state.requests)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    text = failure(run(base, warehouse, max_decompressed_mb=8))
    assert time.monotonic() - started < 60
    assert named in text
    assert stored(warehouse.path) == before
    assert len(state.requests) - calls_before < 40, "bounded: no endless requests"
    if mode is hostile.gzip_bomb:
        assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024 < 150, "no 400 MB inflation"
    if "redirect" in mode.__name__:
        sessions = [r for r in state.requests[calls_before:] if r.path.endswith("/sessions") or "/sessions?" in r.path]
        assert len(sessions) == 2, "a redirect is not retried, and never read as data"


@pytest.mark.parametrize(
    "limits, named, attempts",
    [
        ({}, "after 2 attempts; last problem: deadline: the response took longer than 2 s", 2),
        (
            {"timeout_seconds": 60.0, "max_attempts": 8, "max_retry_seconds": 3.0},
            "deadline: the response took longer than 3 s (what was left of the call's 3 s budget)",
            1,
        ),
    ],
)
def test_headers_trickling_in_are_cut_off_at_the_deadline_within_the_calls_budget(baseline, limits, named, attempts):
    """A minute of headers at a byte every 0.5 s: the client hangs up while they are still arriving."""
    state, base, warehouse, before = baseline
    state.misbehave(hostile.trickle_headers)
    since = len(state.requests)
    text = failure(run(base, warehouse, **limits))
    assert named in text
    assert stored(warehouse.path) == before
    sessions = [n for path, n in asked(state, since).items() if path.endswith("/sessions")]
    assert sessions == [attempts, attempts]
    assert state.trickles(2 * attempts) == [True] * 2 * attempts, "every answer left before its headers ended"


def pages_past(cap: int) -> int:
    """How many of `billion_page` take a read of a window past `cap` bytes."""
    number, taken = 0, 0
    while taken <= cap:
        number += 1
        taken += len(hostile.billion_page("sched-a", number))
    return number


@pytest.mark.parametrize(
    "limits, named, pages",
    [
        (
            {"max_pages_per_window": 20},
            "20 pages, the most one read of a window may take (ST_API_MAX_PAGES_PER_WINDOW), "
            "and the server keeps answering hasMore",
            20,
        ),
        (
            {"max_window_mb": 1},
            f"more than 1 MB in {pages_past(2**20)} pages of one read of the window (ST_API_MAX_WINDOW_MB)",
            pages_past(2**20),
        ),
    ],
)
def test_a_window_read_is_capped_by_the_settings_whatever_total_count_claims(baseline, limits, named, pages):
    state, base, warehouse, before = baseline
    state.misbehave(hostile.endless_billion)
    since = len(state.requests)
    text = failure(run(base, warehouse, **limits))
    assert f"/schedulers/sched-a/sessions window createdOnOrAfter={DAY}T00:00:00Z" in text and named in text
    assert stored(warehouse.path) == before
    assert [n for path, n in asked(state, since).items() if path.endswith("/sessions")] == [pages, pages]


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda r: {**r, "id": None}, "field 'id' missing or null"),
        (lambda r: {**r, "createdOn": None}, "field 'createdOn' missing or null"),
        (lambda r: {k: v for k, v in r.items() if k != "modifiedOn"}, "field 'modifiedOn' missing or null"),
        (lambda r: {k: v for k, v in r.items() if k != "id"}, "field 'id' missing or null"),
        (lambda r: {**r, "createdOn": "yesterday"}, "field 'created_on' is not a valid timestamp"),
    ],
)
def test_a_record_without_its_keys_is_named_by_field_position_and_page(baseline, change, named):
    state, base, warehouse, before = baseline
    state.sessions["sched-b"][7] = change(state.sessions["sched-b"][7])
    text = failure(run(base, warehouse))
    assert named in text and "/schedulers/sched-b/sessions page 1: record 7" in text
    assert stored(warehouse.path) == before


def asked(state: hostile.Hostile, since: int) -> Counter:
    """Requests per path (without the query) since the `since`-th request."""
    return Counter(urlsplit(r.path).path for r in state.requests[since:])


@pytest.mark.parametrize(
    "mode, named",
    [
        (hostile.total_count_lots, "'totalCount' is str, expected a non-negative integer"),
        (hostile.forbidden, "returned 403 Forbidden [traceId t-403]"),
        (hostile.unprocessable, "returned 422 Unprocessable Entity (fields: createdOnOrAfter) [traceId t-422]"),
        ("token_empty", "token endpoint returned a malformed body: an access_token that is empty"),
    ],
)
def test_an_answer_that_asking_again_cannot_change_fails_after_one_request(baseline, mode, named):
    state, base, warehouse, before = baseline
    state.misbehave(mode)
    since = len(state.requests)
    text = failure(run(base, warehouse, max_attempts=8))
    assert named in text and state.pii_canary not in text
    assert stored(warehouse.path) == before
    if mode == "token_empty":
        assert asked(state, since) == {"/connect/token": 1}
    else:
        sessions = [n for path, n in asked(state, since).items() if path.endswith("/sessions")]
        assert sessions == [1, 1], "one request per scheduler: nothing retried"


def test_the_latest_copy_of_a_record_is_kept_as_an_instant_not_as_text(baseline):
    state, base, warehouse, _ = baseline
    records = state.sessions["sched-a"]
    newer = {**records[0], "modifiedOn": f"{DAY}T00:00:30.500Z"}
    records[0] = {**records[0], "modifiedOn": f"{DAY}T00:00:30Z"}
    records.append(newer)  # the same id again, on a later page, newer by half a second

    def pages_of_100(h, sid, page, size):  # the count of distinct records, as the API gives it
        h.send(200, orjson.dumps({**state.sessions_page(sid, page, 100), "totalCount": hostile.PER_SCHEDULER}))

    state.overrides["small"], state.mode = pages_of_100, "small"
    assert run(base, warehouse).success
    kept = stored(warehouse.path)["sched-a-0000"][1]
    assert kept.microsecond == 500000


def test_ids_are_path_segments_and_credentials_stay_on_their_paths(baseline):
    state, base, warehouse, before = baseline
    state.schedulers = ["../../../../connect/token?x=", "sched-a", "sched-b"]
    assert run(base, warehouse).success
    assert stored(warehouse.path) == before
    gets = [r for r in state.requests if r.method == "GET"]
    assert all(r.path.startswith(f"/schedulingpro/v2/tenant/{hostile.TENANT}/") for r in gets)
    assert any("..%2F..%2F..%2F..%2Fconnect%2Ftoken%3Fx%3D/sessions" in r.path for r in gets)
    assert all(r.path == "/connect/token" for r in state.requests if r.method == "POST")


@pytest.mark.parametrize(
    "environment, token_url, named",
    [
        ("production", "http://auth.example.test/connect/token", "ST_TOKEN_URL must be an https URL"),
        ("http://api.example.test", None, "ST_ENVIRONMENT must be an https URL"),
    ],
)
def test_credentials_never_travel_over_plain_http_to_another_host(tmp_path, environment, token_url, named):
    warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"))
    result = materialize([raw_scheduler_sessions], api(environment, token_url=token_url), warehouse, DAY, DAY)
    assert named in failure(result)


def launch_env(base: str, home: Path, warehouse_path: str, **overrides: str) -> dict:
    """The environment of a live install pointed at the hostile server, with the test's short limits."""
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ST_ENVIRONMENT": base,
        "ST_CLIENT_ID": hostile.CLIENT_ID,
        "ST_CLIENT_SECRET": hostile.CLIENT_SECRET,
        "ST_APP_KEY": hostile.APP_KEY,
        "ST_TENANT_IDS": str(hostile.TENANT),
        "ST_DUCKDB_PATH": warehouse_path,
        "ST_START_DATE": "2026-09-01",
        "ST_API_MAX_ATTEMPTS": "2",
        "ST_API_RETRY_BASE_SECONDS": "0.01",
        **overrides,
    }


def dg_launch(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "dg"),
            "launch",
            "--assets",
            "raw/scheduler_sessions",
            "--partition",
            DAY,
            *args,
        ],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_dg_launch_refuses_a_shrink_and_takes_the_override_as_run_config(baseline, tmp_path):
    state, base, warehouse, before = baseline
    state.sessions = {s: records[:1] for s, records in state.sessions.items()}
    env = launch_env(base, tmp_path / "home", warehouse.path)
    refused = dg_launch(env)
    assert refused.returncode != 0 and "refusing to delete them" in refused.stdout + refused.stderr
    assert stored(warehouse.path) == before
    override = {"ops": {"raw__scheduler_sessions": {"config": {"allow_shrink": True}}}}
    allowed = dg_launch(env, "--config-json", json.dumps(override))
    assert allowed.returncode == 0, (allowed.stdout + allowed.stderr)[-3000:]
    assert set(stored(warehouse.path)) == {"sched-a-0000", "sched-b-0000"}


@pytest.mark.slow
def test_canaries_from_echoing_and_malformed_endpoints_never_leave_the_pii_tables(server, tmp_path):
    """Through `dg launch` on a real instance: secrets and a customer's details served back by a token
    endpoint that echoes its form and a malformed page appear nowhere but raw.scheduler_sessions."""
    state, base = server
    canaries = {
        "client id": "canary-client-id-7731",
        "secret": "canary-secret-8842",
        "app key": "canary-app-key-9953",
        "token": hostile.TOKEN,
        "email": "canary.customer@example.test",
        "phone": "555-867-5309",
        "name": "Zebulon",
    }
    for records in state.sessions.values():
        records[3] = {
            **records[3],
            "customer": {
                **records[3]["customer"],
                "email": canaries["email"],
                "phone": canaries["phone"],
                "firstName": canaries["name"],
            },
        }

    def malformed(h, sid, page, size):
        h.send(200, orjson.dumps(state.sessions_page(sid, page, size))[:-40])

    state.overrides["malformed"] = malformed
    home = tmp_path / "home"
    env = launch_env(
        base,
        home,
        str(tmp_path / "w.duckdb"),
        ST_CLIENT_ID=canaries["client id"],
        ST_CLIENT_SECRET=canaries["secret"],
        ST_APP_KEY=canaries["app key"],
    )
    outputs = []
    for mode in ("normal", "malformed", "token_echo"):
        state.mode = mode
        launched = dg_launch(env)
        outputs.append(launched.stdout + launched.stderr)
        assert (launched.returncode == 0) == (mode == "normal"), outputs[-1][-3000:]
    assert "malformed body" in outputs[1] and "token endpoint" in outputs[2]
    files = "\n".join(p.read_bytes().decode(errors="replace") for p in home.rglob("*") if p.is_file())
    assert "returned a malformed body" in files, "the failures' event log is among the files searched"
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert (
            con.execute(
                "SELECT count(*) FROM raw.scheduler_sessions WHERE customer_email = ?", [canaries["email"]]
            ).fetchone()[0]
            == 2
        ), "the canary customer was stored"
        others = [
            t
            for (t,) in con.execute(
                "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE table_name <> 'scheduler_sessions'"
            ).fetchall()
        ]
        tables = "\n".join(str(con.execute(f"SELECT * FROM {t}").fetchall()) for t in others)
    for where, text in {"instance files": files, "run output": "\n".join(outputs), "other tables": tables}.items():
        leaked = [name for name, value in canaries.items() if value in text]
        assert not leaked, f"{leaked} in the {where}"


def test_a_slow_api_never_holds_the_warehouse_lock_and_a_failed_staging_leaves_nothing(baseline, tmp_path):
    state, base, warehouse, before = baseline
    reading = threading.Event()

    def slow(h, sid, page, size):
        reading.set()
        time.sleep(3)
        h.send(200, orjson.dumps(state.sessions_page(sid, page, size))[:-10])  # and then malformed

    state.overrides["slow"], state.mode = slow, "slow"
    staging = tmp_path / "staging"
    staging.mkdir()
    staged = DuckDBWarehouse(database=warehouse.path, staging_dir=str(staging))
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("result", run(base, staged, timeout_seconds=10)))
    runner.start()
    assert reading.wait(30)
    reader = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1], "
            "read_only=True); print(con.execute('SELECT count(*) FROM raw.scheduler_sessions')"
            ".fetchone()[0])",
            warehouse.path,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    runner.join(120)
    assert reader.returncode == 0 and reader.stdout.strip() == str(len(before)), "readable while the API is read"
    assert "returned a malformed body" in failure(outcome["result"])
    assert stored(warehouse.path) == before
    assert list(staging.iterdir()) == [], "staging files removed"
