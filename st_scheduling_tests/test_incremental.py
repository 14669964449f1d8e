"""Incremental marts equal a full rebuild, table for table, after random batches of new, changed, late and
removed sessions; and the decision to rebuild in full, tested on its own."""

import random
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from st_scheduling import transform, vocabulary
from st_scheduling.defs.marts.assets import MART_ASSETS
from st_scheduling.defs.resources import DuckDBWarehouse
from st_scheduling.simulator.vocabulary import DEFAULT
from st_scheduling.transform import catalogue
from st_scheduling.transform.build import BuildState, full_rebuild_reason
from st_scheduling.warehouse import publish
from st_scheduling.warehouse.raw_tables import ROUTER_SESSIONS, SCHEDULER_PERFORMANCE, SCHEDULER_SESSIONS, SCHEDULERS
from st_scheduling.warehouse.store import StagedOwner, WarehouseSettings, commit_tenant, connect
from st_scheduling_tests.conftest import materialize, raw_assets, serve

MODEL = transform.ModelSettings("America/Chicago", vocabulary.load(), "salt", attribution_days=20)
TODAY = datetime(2026, 11, 3, 15, tzinfo=UTC)  # a Tuesday: yesterday, last week and last month all differ
STEPS = DEFAULT.steps  # the shipped flow's lastStep values, in order
OUTCOMES = ("Abandoned", "JobBooked", "BookingRequested", "AbandonedSentToBooking", "AbandonedSentToLead", None)
# Few customers, campaigns and schedulers, so batches keep touching the same customers' look-back windows, the
# catalogue's most frequent names and the UTM matches.
EMAILS = ("ann@x.com", "bob@x.com", "cy@x.com", "dee@x.com", None, None)
CAMPAIGNS = (("c1", "Fall AC"), ("c1", "fall ac promo"), ("c2", "Spring"), (None, None), (None, None))
UTMS = ("Fall AC", "fall_ac", "spring", "newsletter", None)
OWNERS = {SCHEDULER_SESSIONS.name: ("s1", "s2"), ROUTER_SESSIONS.name: ("r1",)}
PER_VISIT = 2  # this tenant's integration sends a new campaignId with every visit: it crosses to campaigns by name


def random_session(rng: random.Random, sid: str, created: datetime, tenant: int) -> dict:
    outcome = rng.choice(OUTCOMES)
    booked_later = timedelta(minutes=rng.choice((5, 30, 60 * 30, 60 * 24 * 9)))
    campaign_id, campaign_name = rng.choice(CAMPAIGNS)
    if campaign_id and tenant == PER_VISIT:
        campaign_id = f"{campaign_id}-{sid}"
    return {
        "id": sid,
        "createdOn": created.isoformat(),
        "modifiedOn": (created + booked_later).isoformat(),
        "lastCheckinDate": (created + booked_later).isoformat(),
        "lastStep": rng.choice(STEPS),
        "sessionOutcome": outcome,
        "jobId": rng.randrange(1, 10**6) if outcome == "JobBooked" else None,
        "bookingId": rng.randrange(1, 10**6) if outcome in ("BookingRequested", "AbandonedSentToBooking") else None,
        "leadId": rng.randrange(1, 10**6) if outcome == "AbandonedSentToLead" else None,
        "category": rng.choice(("HVAC", "Plumbing", None)),
        "blockerType": rng.choice((None, None, "NoAvailability")),
        "timeslotStart": (created + timedelta(days=rng.choice((1, 6, 35)))).isoformat() if rng.random() < 0.5 else None,
        "campaignName": campaign_name,
        "customer": {
            "isBot": rng.random() < 0.1,
            "email": rng.choice(EMAILS),
            "firstName": rng.choice(("A", None)),
            "phone": None,
            "address": {},
        },
        "sourceTracking": {
            "campaignId": campaign_id,
            "utmCampaign": rng.choice(UTMS),
            "gclid": rng.choice(("g", None)),
            "utmMedium": rng.choice(("cpc", "email", None)),
        },
    }


class World:
    """Raw tables of two warehouses, written alike through the platform's own commit (staged Parquet, one owner
    and day at a time): one warehouse is built incrementally after every batch, the other in full."""

    def __init__(self, rng: random.Random, cons: list, folder: Path):
        self.rng, self.cons, self.folder, self.stored, self.next_id, self.files = rng, cons, folder, {}, 0, 0

    def created(self, days_back: int) -> datetime:
        return TODAY - timedelta(days=self.rng.randrange(days_back + 1), minutes=self.rng.randrange(24 * 60))

    def commit(self, table, tenant: int, owner: str, window, records: list[dict], lead: dict) -> None:
        """The API now answers this owner and window with `records`, read in full."""
        files = ()
        if records:
            self.files += 1
            files = (str(self.folder / f"{self.files}.parquet"),)
            pq.write_table(table.to_arrow(records, {"tenant_id": tenant, **lead}).cast(table.staged_schema), files[0])
        for con in self.cons:
            commit_tenant(
                con, table, tenant, window, [StagedOwner(owner, files)], [owner], run_id="r", allow_shrink=True
            )

    def commit_day(self, table, tenant: int, owner: str, created: str) -> None:
        start = datetime.fromisoformat(created).replace(hour=0, minute=0, second=0, microsecond=0)
        window = (start, start + timedelta(days=1))
        records = [
            r
            for (name, t, _), (_, o, r) in sorted(self.stored.items())
            if (name, t, o) == (table.name, tenant, owner)
            and window[0] <= datetime.fromisoformat(r["createdOn"]) < window[1]
        ]
        self.commit(table, tenant, owner, window, records, {"listed_by_id": owner})

    def put(self, table, tenant: int, owner: str, record: dict) -> None:
        self.stored[(table.name, tenant, record["id"])] = (table, owner, record)
        self.commit_day(table, tenant, owner, record["createdOn"])

    def new(self, days_back: int) -> None:
        table = self.rng.choice((SCHEDULER_SESSIONS, SCHEDULER_SESSIONS, ROUTER_SESSIONS))
        self.next_id += 1
        tenant = self.rng.choice((1, 2))
        self.put(
            table,
            tenant,
            self.rng.choice(OWNERS[table.name]),
            random_session(self.rng, f"x{self.next_id}", self.created(days_back), tenant),
        )

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
            self.put(
                table,
                key[1],
                owner,
                random_session(self.rng, record["id"], datetime.fromisoformat(record["createdOn"]), key[1]),
            )
        if self.rng.random() < 0.5:  # the API no longer lists a session, and the shrink is allowed
            key = self.rng.choice(sorted(self.stored))
            table, owner, record = self.stored.pop(key)
            self.commit_day(table, key[1], owner, record["createdOn"])
        routed = [k for k in sorted(self.stored) if k[0] == ROUTER_SESSIONS.name]
        if routed and self.rng.random() < 0.5:
            _, owner, record = self.stored[self.rng.choice(routed)]
            self.put(SCHEDULER_SESSIONS, 1, "s1", record)
        self.performance()

    def performance(self) -> None:
        day = (TODAY - timedelta(days=self.rng.randrange(5))).replace(hour=5, minute=0)
        self.commit(
            SCHEDULER_PERFORMANCE,
            1,
            "s1",
            (day, day + timedelta(days=1)),
            [
                {
                    "id": "s1",
                    "schedulerName": "Website",
                    "brandName": "Acme",
                    "totalSessions": self.rng.randrange(9),
                    "milestoneFrequencyCount": {"opened": 1},
                }
            ],
            {"window_start": day.isoformat(), "window_end": (day + timedelta(days=1)).isoformat()},
        )

    def name_schedulers(self, name: str) -> None:
        for tenant, ids in ((1, ("s1", "s2")), (2, ("s1",))):
            self.commit(
                SCHEDULERS, tenant, str(tenant), None, [{"id": sid, "name": f"{name} {sid}"} for sid in ids], {}
            )


def differences(con, reference, mart: catalogue.Mart) -> tuple[int, int]:
    """Rows only in the incremental mart, rows only in the full one (as multisets)."""
    ours = con.sql(f"SELECT * FROM {mart.qualified}").to_arrow_table()
    theirs = reference.sql(f"SELECT * FROM {mart.qualified}").to_arrow_table()
    con.register("theirs", theirs)
    con.register("ours", ours)
    try:
        return tuple(
            con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchall()[0][0]
            for a, b in (("ours", "theirs"), ("theirs", "ours"))
        )
    finally:
        con.unregister("theirs")
        con.unregister("ours")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_marts_equal_a_full_rebuild_after_random_batches(tmp_path, seed):
    with (
        connect(WarehouseSettings(str(tmp_path / "incremental.duckdb"))) as con,
        connect(WarehouseSettings(str(tmp_path / "full.duckdb"))) as reference,
    ):
        world = World(random.Random(seed), [con, reference], tmp_path)
        world.name_schedulers("Website")
        for _ in range(60):
            world.new(70)
        rebuilt, by_name = set(), []
        for batch in range(6):
            if batch:
                world.apply_batch()
            if batch == 4:
                world.name_schedulers("Renamed")  # names show in every period: the marts with names rebuild
            for mart in catalogue.MARTS:
                built = transform.build(con, mart, MODEL)
                transform.build(reference, mart, MODEL, full=True)
                assert differences(con, reference, mart) == (0, 0), (seed, batch, mart.name, built)
                if batch and built.full:
                    rebuilt.add((batch if mart is not catalogue.SCHEDULERS else None, built.reason))
            by_name.append({tenant: named for tenant, named, *_ in transform.campaign_identity(con)})
        # After the first build only the small inventory and the renamed schedulers' marts were rebuilt in full.
        assert rebuilt == {
            (None, "this mart is always rebuilt in full (it is small)"),
            (4, "its SQL, settings, vocabulary or scheduler names changed since the last build"),
        }
        # The tenant sending an id per visit passed the rule's minimum of ids between two incremental builds.
        assert by_name[0] == {1: False, PER_VISIT: False} and by_name[-1] == {1: False, PER_VISIT: True}


def test_a_worker_clock_behind_the_last_commit_loses_no_change(tmp_path):
    """The rows stored so far carry times two hours ahead of this worker's clock (written by a machine whose clock
    ran ahead): the commits that follow are still read, since builds follow commit numbers, not times."""
    with (
        connect(WarehouseSettings(str(tmp_path / "incremental.duckdb"))) as con,
        connect(WarehouseSettings(str(tmp_path / "full.duckdb"))) as reference,
    ):
        world = World(random.Random(3), [con, reference], tmp_path)
        world.name_schedulers("Website")
        for _ in range(40):
            world.new(40)
        for table in ("raw.scheduler_sessions", "raw.router_sessions", "raw.schedulers", "meta.raw_replaced"):
            con.execute(f"UPDATE {table} SET ingested_at = ingested_at + INTERVAL 2 HOUR")
        for mart in catalogue.MARTS:
            transform.build(con, mart, MODEL)
        for key in world.rng.sample(sorted(world.stored), 10):  # changed, not added: the row counts stay as they were
            table, owner, record = world.stored[key]
            world.put(
                table,
                key[1],
                owner,
                random_session(world.rng, record["id"], datetime.fromisoformat(record["createdOn"]), key[1]),
            )
        for mart in catalogue.MARTS:
            built = transform.build(con, mart, MODEL)
            transform.build(reference, mart, MODEL, full=True)
            assert differences(con, reference, mart) == (0, 0), (mart.name, built)
            assert not built.full or mart is catalogue.SCHEDULERS, "found by commit number, not by a full rebuild"


def test_a_session_changed_weeks_ago_recomputes_its_own_periods_and_not_the_days_between(tmp_path):
    """An hourly merge sees today's sessions and a few stragglers: a mart recomputes the periods of its own
    lengths holding a changed day, so a straggler does not pull in every day since it."""
    with connect(WarehouseSettings(str(tmp_path / "w.duckdb"))) as con:
        world = World(random.Random(5), [con], tmp_path)
        world.name_schedulers("Website")
        for _ in range(40):
            world.new(60)
        for mart in catalogue.MARTS:
            transform.build(con, mart, MODEL)
        straggler = TODAY - timedelta(days=40)  # 2026-09-24, a Thursday, in Chicago too
        for sid, created in (("old", straggler), ("new", TODAY)):
            record = random_session(world.rng, sid, created, 1)
            record.update(sessionOutcome="Abandoned", jobId=None, bookingId=None, leadId=None, timeslotStart=None)
            world.put(SCHEDULER_SESSIONS, 1, "s1", record)
        transform.build(con, catalogue.SESSIONS, MODEL)

        def recomputed(mart: catalogue.Mart) -> set[tuple[str, str]]:
            built = transform.build(con, mart, MODEL)
            assert not built.full, built.reason
            return {(g, str(d)) for g, d in con.sql("SELECT grain, period_start FROM scope_periods").fetchall()}

        days = {("day", "2026-09-24"), ("day", "2026-11-03")}
        assert recomputed(catalogue.SCHEDULER_SCORECARD) == days
        assert recomputed(catalogue.MILESTONE_FUNNEL) == days | {
            ("week", "2026-09-21"),
            ("month", "2026-09-01"),
            ("week", "2026-11-02"),
            ("month", "2026-11-01"),
        }


def test_a_full_rebuild_is_one_setting_away_and_happens_by_itself_after_raw_rows_are_deleted_by_hand(tmp_path):
    with connect(WarehouseSettings(str(tmp_path / "w.duckdb"))) as con:
        world = World(random.Random(7), [con], tmp_path)
        world.name_schedulers("Website")
        for _ in range(30):
            world.new(40)
        first = [transform.build(con, mart, MODEL) for mart in catalogue.MARTS]
        again = [transform.build(con, mart, MODEL) for mart in catalogue.MARTS]
        asked = transform.build(con, catalogue.SESSIONS, MODEL, full=True)
        con.execute("DELETE FROM raw.scheduler_sessions WHERE id = (SELECT min(id) FROM raw.scheduler_sessions)")
        by_hand = transform.build(con, catalogue.SESSIONS, MODEL)
    assert all(b.full and b.reason == "first build" for b in first)
    assert [(b.full, b.changed, b.rows) for b in again if b.full is False] == [
        (False, 0, b.rows) for b in first if b is not first[catalogue.MARTS.index(catalogue.SCHEDULERS)]
    ]
    assert asked.full and asked.reason == "full rebuild requested"
    assert by_hand.full and by_hand.rows == asked.rows - 1
    assert by_hand.reason == "raw rows were added or removed outside the platform's loads since the last build"


STATE = BuildState("f", sessions_build=5, full_build=3, raw_commit=None, raw_rows=10, content=1)


@pytest.mark.parametrize(
    ("requested", "own", "fingerprint", "exists", "scoped", "sessions", "edited", "reason"),
    [
        (True, STATE, "f", True, True, STATE, False, "full rebuild requested"),
        (False, None, "f", True, True, STATE, False, "first build"),
        (False, STATE, "f", False, True, STATE, False, "first build"),
        (False, STATE, "f", True, False, STATE, False, "this mart is always rebuilt in full (it is small)"),
        (
            False,
            STATE,
            "g",
            True,
            True,
            STATE,
            False,
            "its SQL, settings, vocabulary or scheduler names changed since the last build",
        ),
        (
            False,
            STATE,
            "f",
            True,
            True,
            STATE,
            True,
            "raw rows were added or removed outside the platform's loads since the last build",
        ),
        (False, STATE, "f", True, True, None, False, "marts/sessions was rebuilt outside the incremental path"),
        (
            False,
            STATE,
            "f",
            True,
            True,
            BuildState("x", 9, 6, None, 10, 1),
            False,
            "marts/sessions was rebuilt in full since",
        ),
        (False, STATE, "f", True, True, BuildState("x", 9, 5, None, 10, 1), False, None),
    ],
)
def test_when_a_mart_is_rebuilt_in_full(requested, own, fingerprint, exists, scoped, sessions, edited, reason):
    assert full_rebuild_reason(requested, own, fingerprint, exists, scoped, sessions, edited) == reason


def test_the_data_team_sees_how_each_mart_was_built_and_can_ask_for_a_full_rebuild(tmp_path):
    served = serve()
    try:
        warehouse = DuckDBWarehouse(database=str(tmp_path / "w.duckdb"))
        assert materialize(raw_assets(), served.resource(), warehouse, "2026-10-01", "2026-10-04").success
    finally:
        served.close()
    mart_assets = list(MART_ASSETS.values())

    def builds(**kwargs) -> dict[str, str]:
        result = dg.materialize(mart_assets, resources={"warehouse": warehouse}, **kwargs)
        return {
            event.asset_key.to_user_string(): event.materialization.metadata["build"].value
            for event in result.get_asset_materialization_events()
        }

    snapshot = publish.snapshot_path(warehouse.publish_directory(), "sessions")
    first = builds()
    published = snapshot.stat().st_mtime_ns
    again = builds()
    kept = snapshot.stat().st_mtime_ns
    asked = builds(run_config={"ops": {"marts__sessions": {"config": {"full_rebuild": True}}}})
    assert set(first.values()) == {"full rebuild: first build"}
    assert again["marts/sessions"] == (
        "incremental: re-read 0 sessions stored or replaced since the last build; 0 changed"
    )
    assert again["marts/milestone_funnel"].startswith("incremental: recomputed the rows 0 session changes")
    assert asked["marts/sessions"] == "full rebuild: full rebuild requested"
    assert asked["marts/milestone_funnel"] == "full rebuild: marts/sessions was rebuilt in full since"
    assert kept == published != snapshot.stat().st_mtime_ns  # a build that wrote no row leaves the snapshot be


def test_a_snapshot_left_behind_by_a_crash_or_an_unwritable_folder_is_republished_by_the_next_run(tmp_path):
    """A crash between the table's commit and the snapshot's rename leaves a snapshot of an older build and a
    temporary file; a publish folder that cannot be written fails the step naming the snapshot. Either way the
    mart's next run, even one that changes no row, republishes what the table holds."""
    path, published = str(tmp_path / "w.duckdb"), tmp_path / "published"
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    warehouse = DuckDBWarehouse(database=path, publish_dir=str(published))
    unwritable = DuckDBWarehouse(database=path, publish_dir=str(blocked / "published"))
    sessions, snapshot = MART_ASSETS["sessions"], published / "sessions.parquet"

    def build(on: DuckDBWarehouse) -> dg.ExecuteInProcessResult:
        return dg.materialize([sessions], resources={"warehouse": on}, raise_on_error=False)

    def table_rows() -> int:
        with duckdb.connect(path, read_only=True) as con:
            return con.execute("SELECT count(*) FROM marts.sessions").fetchone()[0]

    served = serve()
    try:
        for first, last in (("2026-10-01", "2026-10-01"), ("2026-10-02", "2026-10-02")):
            assert materialize(raw_assets(), served.resource(), warehouse, first, last).success
            assert build(warehouse).success
            if first == "2026-10-01":
                older = snapshot.read_bytes()
        snapshot.write_bytes(older)  # the rename never happened
        (published / "sessions.parquet.crashed-run.tmp").write_bytes(older[:100])
        assert pq.read_metadata(snapshot).num_rows < table_rows()
        again = build(warehouse)
        assert again.success and pq.read_metadata(snapshot).num_rows == table_rows()
        assert (
            again.get_asset_materialization_events()[0].materialization.metadata["build"].value.endswith("0 changed")
        ), "nothing changed in the table: the snapshot was republished for its state alone"
        assert sorted(p.name for p in published.iterdir()) == ["sessions.parquet"]

        assert materialize(raw_assets(), served.resource(), warehouse, "2026-10-03", "2026-10-03").success
        full = build(unwritable)
    finally:
        served.close()
    assert not full.success
    failure = next(e for e in full.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error.message
    assert "marts/sessions: the table is current, but its snapshot" in failure and "republishes it" in failure
    materialized = full.get_asset_materialization_events()[0].materialization.metadata
    assert materialized["dagster/row_count"].value == table_rows(), "the table's build is recorded all the same"
    assert pq.read_metadata(snapshot).num_rows < table_rows()
    assert build(warehouse).success and pq.read_metadata(snapshot).num_rows == table_rows()


@pytest.fixture
def small_disk(tmp_path):
    """A 16 kB tmpfs: a real file system that fills up. Mounting needs root (as CI runs); elsewhere it skips."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_fails_the_snapshot_by_name_and_the_next_run_on_free_space_republishes_it(tmp_path, small_disk):
    path = str(tmp_path / "w.duckdb")
    served = serve()
    try:
        assert materialize(
            raw_assets(), served.resource(), DuckDBWarehouse(database=path), "2026-10-01", "2026-10-02"
        ).success
    finally:
        served.close()
    full = dg.materialize(
        [MART_ASSETS["sessions"]],
        resources={"warehouse": DuckDBWarehouse(database=path, publish_dir=str(small_disk))},
        raise_on_error=False,
    )
    assert not full.success
    failure = next(e for e in full.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error.message
    assert "marts/sessions: the table is current, but its snapshot" in failure and "space" in failure.lower()
    assert not list(small_disk.iterdir()), "no half-written snapshot is left on the full disk"
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    again = dg.materialize(
        [MART_ASSETS["sessions"]], resources={"warehouse": DuckDBWarehouse(database=path, publish_dir=str(small_disk))}
    )
    assert again.get_asset_materialization_events()[0].materialization.metadata["build"].value.endswith("0 changed")
    with duckdb.connect(path, read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM marts.sessions").fetchone()[0]
    assert pq.read_metadata(small_disk / "sessions.parquet").num_rows == rows > 0
