"""Campaign identity and attribution windows on the simulator's data (hand-built cases are in test_marts)."""

import dataclasses
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg
import duckdb
import pytest

from st_scheduling import transform, vocabulary
from st_scheduling.defs.marts.assets import MART_ASSETS
from st_scheduling.defs.resources import DuckDBWarehouse
from st_scheduling.ingest import pipeline, sources
from st_scheduling.transform import catalogue
from st_scheduling.warehouse.store import WarehouseSettings, connect
from st_scheduling_tests.conftest import NOW, SMALL, materialize, raw_assets, serve

FIRST, LAST = "2026-09-01", "2026-10-15"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> DuckDBWarehouse:
    served = serve()
    try:
        warehouse = DuckDBWarehouse(database=str(tmp_path_factory.mktemp("marketing") / "w.duckdb"))
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
            transform.build(
                con,
                catalogue.CAMPAIGN_ATTRIBUTION,
                transform.ModelSettings("UTC", vocabulary.load(), attribution_days=days),
            )
            credits = dict(
                con.execute("""SELECT attribution_model, sum(credit) FROM marts.campaign_attribution
                                          GROUP BY ALL""").fetchall()
            )
            by_campaign = dict(
                con.execute("""SELECT campaign, sum(credit) FROM marts.campaign_attribution
                                              WHERE attribution_model = 'first_touch' GROUP BY ALL""").fetchall()
            )
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
            con.execute(
                f"UPDATE {table} SET source_campaign_id = 'visit-' || id "
                "WHERE tenant_id = ? AND source_campaign_id IS NOT NULL",
                [tenant],
            )
    result = dg.materialize(
        [MART_ASSETS["sessions"], MART_ASSETS["campaign_attribution"]],
        resources={"warehouse": DuckDBWarehouse(database=path)},
        run_config={"ops": {"marts__sessions": {"config": {"full_rebuild": True}}}},
    )
    with duckdb.connect(path, read_only=True) as con:
        assert sorted(con.execute(totals, [tenant]).fetchall()) == stable
        assert con.execute(
            "SELECT count(DISTINCT campaign_id) FILTER (WHERE campaign_id LIKE 'name:%'), "
            "count(DISTINCT campaign_id) FROM marts.sessions WHERE tenant_id = ?",
            [tenant],
        ).fetchone() == (len(stable), len(stable))
    metadata = {
        e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()
    }
    identity = metadata["marts/sessions"]["campaign_identity"].value
    assert f"Campaigns identified by name (campaign_id name:<slug>) on {tenant}." in identity
    assert f"| {tenant} | name |" in identity and "| id |" in identity, "every tenant with its figures"
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "campaign_names_within_few_ids"]
    assert check.passed


# A year of the simulator's history: customers' journeys of several visits, and customers coming back months after
# one, past the 90-day attribution window.
YEAR = dataclasses.replace(SMALL, daily_sessions=6.0, epoch=date(2025, 10, 15))
ABANDONMENTS = {"Abandoned", "AbandonedSentToBooking", "AbandonedSentToLead"}  # the simulator's default world


@pytest.fixture(scope="module")
def year(tmp_path_factory) -> str:
    """A year of sessions read over loopback HTTP by the platform's own load (the daily partitions begin at
    ST_START_DATE, after this history does), and the sessions mart built on them."""
    path = str(tmp_path_factory.mktemp("journeys") / "w.duckdb")
    served = serve(YEAR)
    tenants = [t.id for t in served.simulator.tenants]
    clients = {t: served.client(t) for t in tenants}
    try:
        window = (datetime.combine(YEAR.epoch, time(), UTC), NOW)
        loaded = pipeline.load(
            sources.scheduler_sessions(clients.__getitem__, window), tenants, WarehouseSettings(path), "a-year"
        )
        assert not loaded.problems()
    finally:
        for client in clients.values():
            client.close()
        served.close()
    with connect(WarehouseSettings(path)) as con:
        transform.build(con, catalogue.SESSIONS, transform.ModelSettings("UTC", vocabulary.load()))
    return path


@dataclass(frozen=True)
class Row:
    id: str
    created: datetime
    channel: str


def touches_by_hand(con, days: int) -> dict[str, list[Row]]:
    """Every booked session's touches, worked out in plain Python from the raw rows: the same customer's sessions
    (email, else phone digits, within the tenant; bots left out) created at most `days` before it, itself included,
    in time order. Only the channel labels come from the sessions mart (its rules are tested in test_marts)."""
    rows = con.execute("""
        SELECT r.tenant_id, r.id, r.created_on, r.customer_email, r.customer_phone, r.session_outcome,
               r.job_id IS NOT NULL OR r.booking_id IS NOT NULL, s.channel
        FROM raw.scheduler_sessions AS r JOIN marts.sessions AS s ON s.tenant_id = r.tenant_id AND s.session_id = r.id
        WHERE NOT coalesce(r.customer_is_bot, false)""").fetchall()
    sessions_of, booked = defaultdict(list), []
    for tenant, sid, created, email, phone, outcome, has_job_or_booking, channel in rows:
        email, digits = (email or "").strip().lower(), re.sub(r"\D", "", phone or "")
        customer = (tenant, "email", email) if email else (tenant, "phone", digits) if digits else None
        row = Row(sid, created, channel)
        if customer:
            sessions_of[customer].append(row)
        if has_job_or_booking and outcome not in ABANDONMENTS:
            booked.append((customer, row))
    return {
        row.id: sorted(
            (t for t in sessions_of[customer] if row.created - timedelta(days=days) <= t.created <= row.created),
            key=lambda t: (t.created, t.id),
        )
        if customer
        else [row]
        for customer, row in booked
    }


def credit_by_hand(touches: dict[str, list[Row]]) -> Counter:
    """Credit per (model, channel): the first touch, the last, or each touch an equal share."""
    credit = Counter()
    for mine in touches.values():
        credit["first_touch", mine[0].channel] += 1
        credit["last_touch", mine[-1].channel] += 1
        for touch in mine:
            credit["linear", touch.channel] += 1 / len(mine)
    return credit


def credit_in_mart(con, days: int) -> dict[tuple[str, str], float]:
    transform.build(
        con, catalogue.CAMPAIGN_ATTRIBUTION, transform.ModelSettings("UTC", vocabulary.load(), attribution_days=days)
    )
    return {
        (model, channel): credit
        for model, channel, credit in con.execute(
            """SELECT attribution_model, channel, sum(credit) FROM marts.campaign_attribution
           WHERE attribution_model <> 'session' GROUP BY ALL"""
        ).fetchall()
    }


def test_a_quarter_of_bookings_have_several_touches_and_linear_credit_differs_from_first_and_last(year):
    with connect(WarehouseSettings(year)) as con:
        touches = touches_by_hand(con, 90)
        in_mart = credit_in_mart(con, 90)
    credit = credit_by_hand(touches)
    assert in_mart == pytest.approx(dict(credit))
    several = [mine for mine in touches.values() if len(mine) > 1]
    print(
        f"\n{len(touches)} bookings, {len(several)} ({len(several) / len(touches):.0%}) with 2+ touches in 90 days, "
        f"touches per booking: {sorted(Counter(map(len, touches.values())).items())}"
    )
    assert 0.2 <= len(several) / len(touches) <= 0.34
    assert {2, 3, 4, 5} <= {len(mine) for mine in several}
    assert sum(len({t.channel for t in mine}) > 1 for mine in several) > len(several) / 2, "through other channels"
    # Customers find the business through ads and come back to it directly or from an email: first touch credits
    # the ads more and last touch the returns more than linear does; linear moves a twentieth of the bookings or
    # more away from each of them.
    for found in ("Paid Search", "Paid Social"):
        assert credit["first_touch", found] > credit["linear", found] > credit["last_touch", found], found
    for returned in ("Direct", "Email"):
        assert credit["last_touch", returned] > credit["linear", returned] > credit["first_touch", returned], returned
    channels = {channel for _, channel in credit}
    for model in ("first_touch", "last_touch"):
        moved = sum(abs(credit["linear", channel] - credit[model, channel]) for channel in channels)
        assert moved >= len(touches) / 20, model


def test_the_window_leaves_out_what_returning_customers_did_months_before(year):
    with connect(WarehouseSettings(year)) as con:
        within, ever = touches_by_hand(con, 90), touches_by_hand(con, 3650)
        for days, touches in ((90, within), (3650, ever)):
            assert credit_in_mart(con, days) == pytest.approx(dict(credit_by_hand(touches)))
    beyond = {sid: len(ever[sid]) - len(within[sid]) for sid in within if len(ever[sid]) > len(within[sid])}
    print(f"\n{sum(beyond.values())} touches more than 90 days before a booking, on {len(beyond)} bookings")
    assert len(beyond) >= 40
    assert all(ever[sid][-len(within[sid]) :] == within[sid] for sid in beyond), "only the oldest touches go"
    credit_within, credit_ever = credit_by_hand(within), credit_by_hand(ever)

    def by_channel(credit: Counter, model: str) -> dict[str, float]:
        return {channel: value for (m, channel), value in credit.items() if m == model}

    assert by_channel(credit_within, "last_touch") == by_channel(credit_ever, "last_touch"), "never the last touch"
    for model in ("first_touch", "linear"):
        assert by_channel(credit_within, model) != by_channel(credit_ever, model), model
