"""The whole graph on simulator data: raw, marts and every check, through Dagster."""

import dagster as dg
import duckdb

from st_scheduling.defs.marts.assets import MART_ASSETS
from st_scheduling.defs.raw.checks import raw_check_definitions
from st_scheduling_tests.conftest import materialize, raw_assets


def everything() -> list:
    return [*raw_assets(), *MART_ASSETS.values(), *raw_check_definitions().asset_checks]


def test_marts_reconcile_with_the_api_on_simulator_data_until_a_session_goes_missing(served, warehouse):
    result = materialize(everything(), served.resource(), warehouse, "2026-09-01", "2026-10-15")
    assert result.success
    evaluations = {f"{c.asset_key.to_user_string()}:{c.check_name}": c for c in result.get_asset_check_evaluations()}
    declared = {f"{k.asset_key.to_user_string()}:{k.name}" for d in everything() for k in d.check_keys}
    assert set(evaluations) == declared, "every declared check ran"
    assert [k for k, c in evaluations.items() if not c.passed] == []
    funnel = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["marts", "milestone_funnel"])
    )
    assert funnel["funnel_chart"].value.startswith("![milestone funnel](data:image/png;base64,iVBORw0KGgo")
    follow_ups = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["marts", "customer_follow_ups"])
    )
    assert "@example.com" not in follow_ups["preview"].value, "no PII in metadata"

    with duckdb.connect(warehouse.path) as con:
        scheduler, day = con.execute("""
            DELETE FROM raw.scheduler_sessions
            WHERE id = (SELECT min(id) FROM raw.scheduler_sessions WHERE created_on::DATE = DATE '2026-10-02')
            RETURNING listed_by_id, created_on::DATE::VARCHAR""").fetchone()
    rerun = materialize(
        everything(),
        served.resource(),
        warehouse,
        "2026-09-01",
        "2026-10-15",
        selection=dg.AssetSelection.groups("scheduling_pro_marts"),
    )
    reconciliation = next(
        c for c in rerun.get_asset_check_evaluations() if c.check_name == "reconciled_with_performance_api"
    )
    assert not reconciliation.passed
    assert reconciliation.metadata["mismatched_scheduler_days"].value == [f"scheduler {scheduler} on {day}"]
