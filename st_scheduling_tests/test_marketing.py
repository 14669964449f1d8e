"""Campaign identity and attribution windows on the simulator's data (hand-built cases are in test_marts)."""

import shutil

import dagster as dg
import duckdb
import pytest

from st_scheduling import vocabulary
from st_scheduling.defs.marts.assets import MART_ASSETS
from st_scheduling.defs.resources import DuckDBWarehouse
from st_scheduling.warehouse import incremental, marts
from st_scheduling.warehouse.store import WarehouseSettings, connect
from st_scheduling_tests.conftest import materialize, raw_assets, serve

FIRST, LAST = "2026-09-01", "2026-10-15"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> DuckDBWarehouse:
    served = serve()
    try:
        warehouse = DuckDBWarehouse(path=str(tmp_path_factory.mktemp("marketing") / "w.duckdb"))
        assert materialize(raw_assets(), served.resource(), warehouse, FIRST, LAST).success
    finally:
        served.close()
    result = dg.materialize(list(MART_ASSETS.values()), resources={"warehouse": warehouse})
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "one_name_per_campaign"]
    assert check.passed
    return warehouse


def test_every_simulated_campaign_appears_under_one_name_with_its_utm_only_sessions(warehouse):
    with duckdb.connect(warehouse.path, read_only=True) as con:
        named = con.execute("""SELECT tenant_id, campaign_id, count(DISTINCT campaign) FROM marts.sessions
                               WHERE campaign_id IS NOT NULL GROUP BY ALL""").fetchall()
        unnamed = con.execute("""SELECT count(*) FROM marts.sessions AS s JOIN raw.scheduler_sessions AS r
                                 ON r.tenant_id = s.tenant_id AND r.id = s.session_id
                                 WHERE s.campaign_id IS NOT NULL AND nullif(r.campaign_name, '') IS NULL""").fetchone()
    assert named and all(n == 1 for *_, n in named)
    assert unnamed[0] > 0, "sessions without a campaignName still carry their campaign's one name"


def test_a_shorter_window_moves_first_touch_credit_and_every_model_still_adds_up_to_the_bookings(warehouse):
    def first_touch(days: int) -> tuple[dict, dict]:
        with connect(WarehouseSettings(warehouse.path)) as con:
            incremental.build(con, marts.CAMPAIGN_ATTRIBUTION, marts.ModelSettings("UTC", vocabulary.load(),
                                                                             attribution_days=days))
            credits = dict(con.execute("""SELECT attribution_model, sum(credit) FROM marts.campaign_attribution
                                          GROUP BY ALL""").fetchall())
            by_campaign = dict(con.execute("""SELECT campaign, sum(credit) FROM marts.campaign_attribution
                                              WHERE attribution_model = 'first_touch' GROUP BY ALL""").fetchall())
        return credits, by_campaign

    wide, wide_first = first_touch(90)
    narrow, narrow_first = first_touch(1)
    # Session, first, last and linear: the same bookings (linear's thirds and fifths add up to float precision).
    assert wide == pytest.approx(dict.fromkeys(wide, wide["session"])) and narrow == pytest.approx(wide)
    assert wide_first != narrow_first  # returning customers' earlier sessions fall out of a one-day window


def test_a_tenant_sending_an_id_per_visit_shows_the_campaigns_it_shows_with_stable_ids(warehouse, tmp_path):
    """One simulated tenant's campaignIds rewritten to one per session, as some integrations send them: identified by
    name, its campaigns show the sessions and bookings they show under the simulator's stable ids; the sessions
    metadata names the tenant with its figures, and no campaign name spans many ids."""
    path = str(tmp_path / "per_visit.duckdb")
    shutil.copy(warehouse.path, path)
    totals = """SELECT campaign, sum(sessions), sum(booked_sessions) FROM marts.campaign_attribution
                WHERE tenant_id = ? AND attribution_model = 'session' AND campaign_id IS NOT NULL GROUP BY ALL"""
    with duckdb.connect(path) as con:
        tenant = con.execute("SELECT max(tenant_id) FROM raw.scheduler_sessions").fetchone()[0]
        stable = sorted(con.execute(totals, [tenant]).fetchall())
        for table in ("raw.scheduler_sessions", "raw.router_sessions"):
            con.execute(f"UPDATE {table} SET source_campaign_id = 'visit-' || id "
                        "WHERE tenant_id = ? AND source_campaign_id IS NOT NULL", [tenant])
    result = dg.materialize([MART_ASSETS["sessions"], MART_ASSETS["campaign_attribution"]],
                            resources={"warehouse": DuckDBWarehouse(path=path)},
                            run_config={"ops": {"marts__sessions": {"config": {"full_rebuild": True}}}})
    with duckdb.connect(path, read_only=True) as con:
        assert sorted(con.execute(totals, [tenant]).fetchall()) == stable
        assert con.execute("SELECT count(DISTINCT campaign_id) FILTER (WHERE campaign_id LIKE 'name:%'), "
                           "count(DISTINCT campaign_id) FROM marts.sessions WHERE tenant_id = ?",
                           [tenant]).fetchone() == (len(stable), len(stable))
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata
                for e in result.get_asset_materialization_events()}
    identity = metadata["marts/sessions"]["campaign_identity"].value
    assert f"Campaigns identified by name (campaign_id name:<slug>) on {tenant}." in identity
    assert f"| {tenant} | name |" in identity and "| id |" in identity, "every tenant with its figures"
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "campaign_names_within_few_ids"]
    assert check.passed
