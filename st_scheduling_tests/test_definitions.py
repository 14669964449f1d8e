"""The definitions load, name what the README promises, and loading touches no secret, file or API."""

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from st_scheduling.config import API_LIMITS, Settings, SettingsError, start_date, tenant_ids
from st_scheduling.defs.raw.assets import raw_schedulers
from st_scheduling.defs.resources import DuckDBWarehouse, build_resources

ROOT = Path(__file__).resolve().parents[1]
ASSETS = {
    "raw/schedulers",
    "raw/scheduler_sessions",
    "raw/scheduler_performance",
    "raw/router_sessions",
    "raw/router_performance",
    "marts/sessions",
    "marts/milestone_funnel",
    "marts/campaign_attribution",
    "marts/booking_volume",
    "marts/customer_follow_ups",
    "marts/service_demand",
    "marts/scheduler_scorecard",
    "marts/schedulers",
    "marts/blocker_impact",
    "marts/booking_lag",
}
LOAD = """
import json, socket
def refuse(*args, **kwargs):
    raise AssertionError("loading the definitions opened a network connection")
socket.socket.connect = refuse
socket.create_connection = refuse
from st_scheduling.definitions import defs
d = defs()
graph = d.resolve_asset_graph()
print(json.dumps({"assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
                  "jobs": sorted(j.name for j in d.jobs), "schedules": sorted(s.name for s in d.schedules),
                  "sensors": sorted(s.name for s in d.sensors)}))
"""


def _load(env: dict, tmp_path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", LOAD],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_definitions_load_with_every_asset_job_schedule_and_sensor(tmp_path):
    loaded = _load({"ST_DUCKDB_PATH": str(tmp_path / "never.duckdb")}, tmp_path)
    assert loaded == {
        "assets": sorted(ASSETS),
        "jobs": ["raw_schedulers_job", "raw_sessions_job", "scheduling_pro_job"],
        "schedules": ["refresh_lookback", "refresh_recent_days"],
        "sensors": [
            "alert_on_failed_checks",
            "alert_on_run_failure",
            "alert_on_stale_assets",
            "fail_runs_whose_process_died",
            "late_session_updates",
            "marts_follow_raw",
            "scheduler_changes",
            "webhook_callbacks",
            "webhook_sessions",
        ],
    }
    assert not (tmp_path / "never.duckdb").exists(), "loading opened no DuckDB file"


def test_live_mode_loads_without_its_secrets_and_reads_none(tmp_path, monkeypatch):
    env = {"ST_ENVIRONMENT": "production", "ST_DUCKDB_PATH": str(tmp_path / "live.duckdb")}
    for name in ("ST_CLIENT_ID", "ST_CLIENT_SECRET", "ST_APP_KEY", "ST_TENANT_IDS"):
        env[name] = ""
    assert "raw/schedulers" in _load(env, tmp_path)["assets"]
    monkeypatch.setenv("ST_CLIENT_SECRET", "set")
    resources = build_resources(Settings("production", "UTC", "2026-09-01", "x.duckdb", "", None))
    assert isinstance(resources["servicetitan"].client_secret, dg.EnvVar), "secrets stay unresolved EnvVars"


def test_live_and_simulator_warehouses_are_different_files(monkeypatch):
    monkeypatch.delenv("ST_DUCKDB_PATH", raising=False)
    monkeypatch.delenv("ST_ENVIRONMENT", raising=False)
    assert Settings.from_env().duckdb_path == "data/simulator.duckdb"
    monkeypatch.setenv("ST_ENVIRONMENT", "production")
    assert Settings.from_env().duckdb_path == "data/st_scheduling.duckdb"


@pytest.mark.parametrize("missing", ["ST_CLIENT_ID", "ST_CLIENT_SECRET", "ST_APP_KEY", "ST_TENANT_IDS"])
def test_live_mode_missing_a_variable_fails_at_launch_naming_it(missing, monkeypatch, tmp_path):
    for name in ("ST_CLIENT_ID", "ST_CLIENT_SECRET", "ST_APP_KEY", "ST_TENANT_IDS"):
        monkeypatch.setenv(name, "123" if name == "ST_TENANT_IDS" else "set")
    monkeypatch.delenv(missing)
    resources = build_resources(Settings("production", "UTC", "2026-09-01", str(tmp_path / "w.duckdb"), "", None))
    with pytest.raises(Exception, match=missing):
        dg.materialize([raw_schedulers], resources=resources, instance=dg.DagsterInstance.ephemeral())
    assert not (tmp_path / "w.duckdb").exists()


def _dg_check_defs(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), **settings}
    return subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dg_check_defs_passes(tmp_path):
    result = _dg_check_defs(tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_bad_settings_give_clear_errors(monkeypatch):
    from st_scheduling.servicetitan import ConfigurationError

    monkeypatch.setenv("ST_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(SettingsError, match="ST_TIMEZONE='Mars/Olympus_Mons' is not an IANA time zone"):
        Settings.from_env()
    monkeypatch.setenv("ST_TIMEZONE", "UTC")
    monkeypatch.setenv("ST_START_DATE", "last tuesday")
    with pytest.raises(SettingsError, match="ST_START_DATE"):
        Settings.from_env()
    from st_scheduling.defs.resources import ServiceTitanResource

    with pytest.raises(ConfigurationError, match="ST_TENANT_IDS='acme' must be comma-separated integer"):
        ServiceTitanResource(environment="production", tenant_ids="acme").tenants()
    with pytest.raises(ConfigurationError, match="ST_ROUTER_IDS entry 'r1'"):
        ServiceTitanResource(environment="production", router_ids="r1").routers()


@pytest.mark.parametrize(
    "variable, value",
    [
        ("ST_LOOKBACK_DAYS", "thirty"),
        ("ST_LOOKBACK_DAYS", "0"),
        *((name, "-1") for name in API_LIMITS),
        ("ST_API_MAX_ATTEMPTS", "many"),
    ],
)
def test_a_bad_number_in_any_setting_is_named(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"{variable}='{value}' must be a positive"):
        Settings.from_env()


def test_dg_check_defs_refuses_bad_settings_in_one_line_naming_every_one(tmp_path):
    result = _dg_check_defs(tmp_path, ST_LOOKBACK_DAYS="thirty", ST_TENANT_IDS="4_242", ST_DUCKDB_PATH=":memory:")
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.startswith("st_scheduling.config.SettingsError: ")]
    assert result.returncode != 0 and lines, output[-3000:]
    line = lines[0]
    assert "ST_LOOKBACK_DAYS='thirty' must be a positive whole number" in line
    assert "ST_TENANT_IDS='4_242' must be comma-separated integer tenant ids" in line
    assert "ST_DUCKDB_PATH=':memory:' is an in-memory database" in line


TOMORROW = (date.today() + timedelta(days=2)).isoformat()  # tomorrow in every time zone


@pytest.mark.parametrize(
    "variable, value, named",
    [
        ("ST_TENANT_IDS", "4_242", "'4_242'"),  # int() takes underscores
        ("ST_TENANT_IDS", "\u0664\u0662\u0664\u0662", "'\u0664\u0662\u0664\u0662'"),  # and Arabic-Indic digits
        ("ST_TENANT_IDS", "12345678901234567890", "each 1 to 9223372036854775807"),  # past the API's int64
        ("ST_TENANT_IDS", "1001,-4242", "(refused: '-4242')"),
        ("ST_TENANT_IDS", "0", "(refused: '0')"),
        ("ST_TENANT_IDS", "1001,1001", "lists 1001 more than once"),
        ("ST_ROUTER_IDS", "\u0664:r1", "ST_ROUTER_IDS entry '\u0664:r1'"),
        ("ST_API_TIMEOUT_SECONDS", "nan", "must be a positive number no greater than 3600"),
        ("ST_API_TIMEOUT_SECONDS", "inf", "must be a positive number"),
        ("ST_API_TIMEOUT_SECONDS", "1e3", "must be a positive number"),
        ("ST_API_TIMEOUT_SECONDS", "86400", "no greater than 3600"),
        ("ST_API_MAX_ATTEMPTS", "1_0", "must be a positive whole number no greater than 100"),
        ("ST_API_MAX_ATTEMPTS", "\u00b2", "must be a positive whole number"),  # isdigit() says yes, int() says no
        ("ST_LOOKBACK_DAYS", "9" * 30, "must be a positive whole number no greater than 3660"),
        ("ST_DUCKDB_THREADS", "0", "must be a positive whole number"),
        ("ST_DUCKDB_MEMORY_LIMIT", "0GB", "must be an amount of memory"),
        ("ST_TIMEZONE", "posixrules", "is not an IANA time zone"),
        ("ST_TIMEZONE", "Factory", "is not an IANA time zone"),
        ("ST_TIMEZONE", "localtime", "is not an IANA time zone"),
        ("ST_TIMEZONE", "utc", "is not an IANA time zone"),
        ("ST_START_DATE", "0001-01-01", "must be a day from 2015-01-01 to today"),
        ("ST_START_DATE", TOMORROW, "must be a day from 2015-01-01 to today"),
        ("ST_START_DATE", "20260901", "is not a date (YYYY-MM-DD)"),
        ("ST_START_DATE", "2026-02-30", "is not a date (YYYY-MM-DD)"),
        ("ST_DUCKDB_PATH", ":memory:", "is an in-memory database"),
        ("ST_DUCKDB_PATH", ":memory:other", "is an in-memory database"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_variable(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        Settings.from_env()
    assert str(refused.value).startswith(variable) and named in str(refused.value)


@pytest.mark.parametrize("setting", ["/dev/zero", "fifo", "folder", "large"])
def test_a_vocabulary_that_is_no_regular_small_file_is_refused_without_reading_it(tmp_path, monkeypatch, setting):
    paths = {"fifo": tmp_path / "fifo", "folder": tmp_path, "large": tmp_path / "large.toml"}
    os.mkfifo(paths["fifo"])  # a FIFO nobody writes to: opening it to read would wait forever
    paths["large"].write_text("# " + "x" * 2**20)
    path = str(paths.get(setting, setting))
    monkeypatch.setenv("ST_VOCABULARY", path)
    with pytest.raises(SettingsError, match=r"the vocabulary file (must be a regular file|is larger than 1 MB)"):
        Settings.from_env()


def test_good_settings_are_read_as_given(monkeypatch):
    for variable, value in {
        "ST_TENANT_IDS": " 4242, 9223372036854775807 ",
        "ST_ROUTER_IDS": "4242:r-1",
        "ST_API_TIMEOUT_SECONDS": "2.5",
        "ST_TIMEZONE": "America/Chicago",
        "ST_START_DATE": "2015-01-01",
        "ST_DUCKDB_PATH": "md:st_scheduling",
    }.items():
        monkeypatch.setenv(variable, value)
    settings = Settings.from_env()
    assert (settings.api_limits, settings.timezone, settings.start_date, settings.duckdb_path) == (
        {"timeout_seconds": 2.5},
        "America/Chicago",
        "2015-01-01",
        "md:st_scheduling",
    )
    assert tenant_ids(" 4242, 9223372036854775807 ") == [4242, 2**63 - 1]
    assert start_date(date.today().isoformat(), date.today()) == date.today().isoformat()


def test_run_time_settings_reach_runs_through_resource_config(monkeypatch, tmp_path):
    monkeypatch.setenv("ST_TIMEZONE", "America/Chicago")
    monkeypatch.setenv("ST_ATTRIBUTION_WINDOW_DAYS", "30")
    monkeypatch.setenv("ST_API_PARALLEL_TENANTS", "8")
    resources = build_resources(Settings.from_env())
    warehouse, api = resources["warehouse"], resources["servicetitan"]
    assert warehouse.model_settings().timezone == "America/Chicago"
    assert warehouse.model_settings().attribution_days == 30
    assert warehouse.load_options(api, allow_shrink=False).parallel_tenants == 8


def test_duckdb_settings_reach_the_warehouse_and_a_bad_amount_is_named(monkeypatch):
    monkeypatch.setenv("ST_DUCKDB_THREADS", "8")
    monkeypatch.setenv("ST_DUCKDB_MEMORY_LIMIT", "32GB")
    warehouse = build_resources(Settings.from_env())["warehouse"]
    assert (warehouse.settings.threads, warehouse.settings.memory_limit) == (8, "32GB")
    monkeypatch.setenv("ST_DUCKDB_MEMORY_LIMIT", "lots")
    with pytest.raises(SettingsError, match="ST_DUCKDB_MEMORY_LIMIT='lots' must be an amount of memory"):
        Settings.from_env()


def test_per_tenant_credentials_alone_suffice_and_a_tenant_without_any_is_named_in_one_line(
    served, monkeypatch, tmp_path
):
    from st_scheduling.defs.automation import late_session_updates

    credentials, tenants = served.simulator.credentials, [t.id for t in served.simulator.tenants]
    for name in ("ST_CLIENT_ID", "ST_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    for tenant in tenants:
        client_id, secret = credentials.for_tenant(tenant)
        monkeypatch.setenv(f"ST_CLIENT_ID_{tenant}", client_id)
        monkeypatch.setenv(f"ST_CLIENT_SECRET_{tenant}", secret)
    monkeypatch.setenv("ST_APP_KEY", credentials.app_key)
    monkeypatch.setenv("ST_TENANT_IDS", ",".join(map(str, tenants)))
    settings = Settings(served.base_url, "UTC", "2026-09-01", str(tmp_path / "w.duckdb"), "", None)
    assert dg.materialize(
        [raw_schedulers], resources=build_resources(settings), instance=dg.DagsterInstance.ephemeral()
    ).success

    monkeypatch.delenv(f"ST_CLIENT_SECRET_{tenants[1]}")
    resources = build_resources(settings)
    failed = dg.materialize(
        [raw_schedulers], resources=resources, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    [failure] = failed.get_step_failure_events()
    expected = (
        f"tenant {tenants[1]} has no ST_CLIENT_SECRET: set ST_CLIENT_SECRET_{tenants[1]} (its own client), "
        f"or ST_CLIENT_SECRET (the default for every tenant)"
    )
    assert failure.event_specific_data.error.message.strip().splitlines()[-1].endswith(f"schedulers: {expected}")
    tick = late_session_updates(dg.build_sensor_context(resources={"servicetitan": resources["servicetitan"]}))
    assert tick.skip_message == f"not configured: {expected}"


def test_an_instance_belongs_to_the_first_warehouse_it_recorded_and_refuses_another_naming_both(tmp_path):
    from st_scheduling.defs.marts.assets import MART_ASSETS
    from st_scheduling.defs.resources import DuckDBWarehouse

    home = tmp_path / "home"
    home.mkdir()
    first, second = str(tmp_path / "simulator.duckdb"), str(tmp_path / "live.duckdb")
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        for path in (first, first):  # the same warehouse again is fine
            assert dg.materialize(
                [MART_ASSETS["schedulers"]], resources={"warehouse": DuckDBWarehouse(database=path)}, instance=instance
            ).success
        other = dg.materialize(
            [MART_ASSETS["schedulers"]],
            resources={"warehouse": DuckDBWarehouse(database=second)},
            instance=instance,
            raise_on_error=False,
        )
    assert not other.success
    message = str([e.event_specific_data.error for e in other.all_events if e.is_failure])
    assert f"holds the history of the warehouse {first}" in message and f"this run writes {second}" in message
    assert not Path(second).exists(), "the refused run opened nothing"


def test_the_make_targets_choose_one_instance_per_warehouse():
    def home(**env) -> str:
        out = subprocess.run(
            ["make", "-n", "--no-print-directory", "instance"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={
                k: v
                for k, v in os.environ.items()
                if k not in ("DAGSTER_HOME", "ST_DUCKDB_PATH", "ST_ENVIRONMENT", "MAKEFLAGS", "MAKELEVEL")
            }
            | env,
        )
        return next(line for line in out.stdout.splitlines() if line.startswith("mkdir -p")).split()[2]

    assert home().endswith(".dagster_home/simulator")
    assert home(ST_ENVIRONMENT="production").endswith(".dagster_home/st_scheduling")
    assert home(ST_DUCKDB_PATH="elsewhere/agency.duckdb").endswith(".dagster_home/agency")


def test_the_warehouse_is_the_duckdb_resource_a_data_team_knows(tmp_path):
    """A team's own asset takes the warehouse as dagster_duckdb's DuckDBResource: `get_connection()` opens the
    file with the schemas in place and the resource's `connection_config` applied."""
    from dagster_duckdb import DuckDBResource

    @dg.asset
    def own_table(warehouse: DuckDBResource) -> str:
        with warehouse.get_connection() as con:
            con.execute("CREATE TABLE marts.own_table AS SELECT count(*) AS schedulers FROM raw.schedulers")
            return con.execute("SELECT current_setting('default_order')").fetchone()[0]

    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(database=str(path), connection_config={"default_order": "desc"})
    result = dg.materialize([own_table], resources={"warehouse": warehouse})
    assert result.success and result.output_for_node("own_table").lower() == "desc"
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT schedulers FROM marts.own_table").fetchall() == [(0,)]
