"""Incremental marts equal a full rebuild, table for table, after random batches of new, changed, late and
removed sessions; and the decision to rebuild in full, tested on its own."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from st_scheduling import vocabulary
from st_scheduling.warehouse import incremental, marts
from st_scheduling.warehouse.incremental import BuildState, full_rebuild_reason
from st_scheduling.warehouse.raw_tables import ROUTER_SESSIONS, SCHEDULER_PERFORMANCE, SCHEDULER_SESSIONS, SCHEDULERS
from st_scheduling.warehouse.store import StagedOwner, WarehouseSettings, commit_tenant, connect

MODEL = marts.ModelSettings("America/Chicago", vocabulary.load(), "salt", attribution_days=20)
TODAY = datetime(2026, 11, 3, 15, tzinfo=UTC)  # a Tuesday: yesterday, last week and last month all differ
STEPS = ("WelcomeViewed", "ZipCodeEntered", "ServiceTypeChosen", "IssueDescribed", "TimeslotChosen",
         "ContactInfoEntered", "DetailsConfirmed", "BookingSubmitted")
OUTCOMES = ("Abandoned", "JobBooked", "BookingRequested", "AbandonedSentToBooking", "AbandonedSentToLead", None)
# Few customers, campaigns and schedulers, so batches keep touching the same customers' look-back windows, the
# catalogue's most frequent names and the UTM matches.
EMAILS = ("ann@x.com", "bob@x.com", "cy@x.com", "dee@x.com", None, None)
CAMPAIGNS = (("c1", "Fall AC"), ("c1", "fall ac promo"), ("c2", "Spring"), (None, None), (None, None))
UTMS = ("Fall AC", "fall_ac", "spring", "newsletter", None)
OWNERS = {SCHEDULER_SESSIONS.name: ("s1", "s2"), ROUTER_SESSIONS.name: ("r1",)}


def random_session(rng: random.Random, sid: str, created: datetime) -> dict:
    outcome = rng.choice(OUTCOMES)
    booked_later = timedelta(minutes=rng.choice((5, 30, 60 * 30, 60 * 24 * 9)))
    campaign_id, campaign_name = rng.choice(CAMPAIGNS)
    return {
        "id": sid, "createdOn": created.isoformat(), "modifiedOn": (created + booked_later).isoformat(),
        "lastCheckinDate": (created + booked_later).isoformat(), "lastStep": rng.choice(STEPS),
        "sessionOutcome": outcome,
        "jobId": rng.randrange(1, 10**6) if outcome == "JobBooked" else None,
        "bookingId": rng.randrange(1, 10**6) if outcome in ("BookingRequested", "AbandonedSentToBooking") else None,
        "leadId": rng.randrange(1, 10**6) if outcome == "AbandonedSentToLead" else None,
        "category": rng.choice(("HVAC", "Plumbing", None)), "blockerType": rng.choice((None, None, "NoAvailability")),
        "timeslotStart": (created + timedelta(days=rng.choice((1, 6, 35)))).isoformat() if rng.random() < 0.5 else None,
        "campaignName": campaign_name,
        "customer": {"isBot": rng.random() < 0.1, "email": rng.choice(EMAILS), "firstName": rng.choice(("A", None)),
                     "phone": None, "address": {}},
        "sourceTracking": {"campaignId": campaign_id, "utmCampaign": rng.choice(UTMS),
                           "gclid": rng.choice(("g", None)), "utmMedium": rng.choice(("cpc", "email", None))},
    }


class World:
    """Raw tables of two warehouses, written alike: one built incrementally after every batch, one in full."""

    def __init__(self, rng: random.Random, cons: list):
        self.rng, self.cons, self.stored, self.next_id = rng, cons, {}, 0

    def created(self, days_back: int) -> datetime:
        return TODAY - timedelta(days=self.rng.randrange(days_back + 1), minutes=self.rng.randrange(24 * 60))

    def put(self, table, tenant: int, owner: str, record: dict) -> None:
        for con in self.cons:
            con.execute(f"DELETE FROM {table.qualified} WHERE tenant_id = ? AND id = ?", [tenant, record["id"]])
            con.register("batch", table.to_arrow([record], {"tenant_id": tenant, "listed_by_id": owner}))
            con.execute(f"INSERT INTO {table.qualified} BY NAME SELECT *, now() AS ingested_at, 'run' AS run_id "
                        "FROM batch")
            con.unregister("batch")
        self.stored[(table.name, tenant, record["id"])] = (table, owner, record)

    def new(self, days_back: int) -> None:
        table = self.rng.choice((SCHEDULER_SESSIONS, SCHEDULER_SESSIONS, ROUTER_SESSIONS))
        self.next_id += 1
        self.put(table, self.rng.choice((1, 2)), self.rng.choice(OWNERS[table.name]),
                 random_session(self.rng, f"x{self.next_id}", self.created(days_back)))

    def remove_owner_day(self, key: tuple) -> None:
        """The API now answers an owner's day with nothing, and the shrink is allowed: the commit removes them."""
        table, owner, record = self.stored[key]
        day = datetime.fromisoformat(record["createdOn"]).replace(hour=0, minute=0)
        window = (day, day + timedelta(days=1))
        for con in self.cons:
            commit_tenant(con, table, key[1], window, [StagedOwner(owner, ())], [owner], run_id="r", allow_shrink=True)
        self.stored = {k: v for k, v in self.stored.items() if not (
            k[:2] == key[:2] and v[1] == owner and window[0] <= datetime.fromisoformat(v[2]["createdOn"]) < window[1])}

    def apply_batch(self) -> None:
        """New sessions of today and yesterday, changes to stored ones, late arrivals, removals, and a router
        session upgraded to a scheduler."""
        for _ in range(self.rng.randrange(3, 12)):
            self.new(1)
        for _ in range(self.rng.randrange(1, 3)):
            self.new(60)  # late: stored now, created weeks ago
        keys = sorted(self.stored)
        for key in self.rng.sample(keys, min(len(keys), self.rng.randrange(2, 8))):
            table, owner, record = self.stored[key]
            self.put(table, key[1], owner, random_session(self.rng, record["id"],
                                                          datetime.fromisoformat(record["createdOn"])))
        if self.rng.random() < 0.5:
            self.remove_owner_day(self.rng.choice(sorted(self.stored)))
        routed = [k for k in sorted(self.stored) if k[0] == ROUTER_SESSIONS.name]
        if routed and self.rng.random() < 0.5:
            _, owner, record = self.stored[self.rng.choice(routed)]
            self.put(SCHEDULER_SESSIONS, 1, "s1", record)
        self.performance()

    def performance(self) -> None:
        day, sessions = (TODAY - timedelta(days=self.rng.randrange(5))).date(), self.rng.randrange(9)
        for con in self.cons:
            con.execute(f"DELETE FROM {SCHEDULER_PERFORMANCE.qualified} WHERE tenant_id = 1 AND id = 's1' "
                        "AND window_start = ?", [datetime(day.year, day.month, day.day, 5, tzinfo=UTC)])
            con.register("batch", SCHEDULER_PERFORMANCE.to_arrow(
                [{"id": "s1", "schedulerName": "Website", "brandName": "Acme", "totalSessions": sessions,
                  "milestoneFrequencyCount": {"opened": 1}}],
                {"tenant_id": 1, "window_start": f"{day}T05:00:00Z", "window_end": f"{day + timedelta(days=1)}T05:00:00Z"}))
            con.execute(f"INSERT INTO {SCHEDULER_PERFORMANCE.qualified} BY NAME SELECT *, now() AS ingested_at "
                        "FROM batch")
            con.unregister("batch")

    def name_schedulers(self, name: str) -> None:
        for con in self.cons:
            con.execute(f"DELETE FROM {SCHEDULERS.qualified}")
            for tenant, sid in ((1, "s1"), (1, "s2"), (2, "s1")):
                con.register("batch", SCHEDULERS.to_arrow([{"id": sid, "name": f"{name} {sid}"}], {"tenant_id": tenant}))
                con.execute(f"INSERT INTO {SCHEDULERS.qualified} BY NAME SELECT * FROM batch")
                con.unregister("batch")


def differences(con, reference, mart: marts.Mart) -> tuple[int, int]:
    """Rows only in the incremental mart, rows only in the full one (as multisets)."""
    ours = con.execute(f"SELECT * FROM {mart.qualified}").to_arrow_table()
    theirs = reference.execute(f"SELECT * FROM {mart.qualified}").to_arrow_table()
    con.register("theirs", theirs)
    con.register("ours", ours)
    try:
        return tuple(con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchall()[0][0]
                     for a, b in (("ours", "theirs"), ("theirs", "ours")))
    finally:
        con.unregister("theirs")
        con.unregister("ours")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_marts_equal_a_full_rebuild_after_random_batches(tmp_path, seed):
    with (connect(WarehouseSettings(str(tmp_path / "incremental.duckdb"))) as con,
          connect(WarehouseSettings(str(tmp_path / "full.duckdb"))) as reference):
        world = World(random.Random(seed), [con, reference])
        world.name_schedulers("Website")
        for _ in range(60):
            world.new(70)
        merged = 0
        for batch in range(6):
            if batch:
                world.apply_batch()
            if batch == 4:
                world.name_schedulers("Renamed")  # names show in every period: the marts with names rebuild
            for mart in marts.MARTS:
                built = incremental.build(con, mart, MODEL)
                incremental.build(reference, mart, MODEL, full=True)
                assert differences(con, reference, mart) == (0, 0), (seed, batch, mart.name, built)
                merged += not built.full
        assert merged >= 4 * (len(marts.MARTS) - 1)  # the incremental path ran, not full rebuilds throughout


def test_a_full_rebuild_is_one_setting_away_and_a_merge_with_nothing_changed_changes_nothing(tmp_path):
    with connect(WarehouseSettings(str(tmp_path / "w.duckdb"))) as con:
        world = World(random.Random(7), [con])
        world.name_schedulers("Website")
        for _ in range(30):
            world.new(40)
        first = [incremental.build(con, mart, MODEL) for mart in marts.MARTS]
        again = [incremental.build(con, mart, MODEL) for mart in marts.MARTS]
        asked = incremental.build(con, marts.SESSIONS, MODEL, full=True)
    assert all(b.full and b.reason == "first build" for b in first)
    assert [(b.full, b.changed, b.rows) for b in again if b.full is False] == [
        (False, 0, b.rows) for b in first if b is not first[marts.MARTS.index(marts.SCHEDULERS)]]
    assert asked.full and asked.reason == "full rebuild requested"


STATE = BuildState("f", sessions_build=5, full_build=3, raw_watermark=None)


@pytest.mark.parametrize(("requested", "own", "fingerprint", "exists", "scoped", "sessions", "reason"), [
    (True, STATE, "f", True, True, STATE, "full rebuild requested"),
    (False, None, "f", True, True, STATE, "first build"),
    (False, STATE, "f", False, True, STATE, "first build"),
    (False, STATE, "f", True, False, STATE, "this mart is always rebuilt in full (it is small)"),
    (False, STATE, "g", True, True, STATE, "its SQL, settings, vocabulary or scheduler names changed since the last "
                                           "build"),
    (False, STATE, "f", True, True, None, "marts/sessions was rebuilt outside the incremental path"),
    (False, STATE, "f", True, True, BuildState("x", 9, 6, None), "marts/sessions was rebuilt in full since"),
    (False, STATE, "f", True, True, BuildState("x", 9, 5, None), None),
])
def test_when_a_mart_is_rebuilt_in_full(requested, own, fingerprint, exists, scoped, sessions, reason):
    assert full_rebuild_reason(requested, own, fingerprint, exists, scoped, sessions) == reason
