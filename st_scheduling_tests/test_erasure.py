"""Erasing one customer on request (`python -m st_scheduling erase`): no row of them in any table or published
snapshot, and no byte of them in the warehouse file, its write-ahead log, the snapshots or staging."""

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq

from st_scheduling.defs.marts.assets import MART_ASSETS
from st_scheduling.defs.resources import DuckDBWarehouse
from st_scheduling.ingest.staging import AREA_PREFIX
from st_scheduling.warehouse.erasure import Customer
from st_scheduling.warehouse.raw_tables import ROUTER_SESSIONS
from st_scheduling.warehouse.store import WarehouseSettings, connect
from st_scheduling_tests.conftest import put_sessions, session_record

# Long and distinctive, so that finding them in the bytes means the customer and nothing else.
EMAIL = "Erasmus.Canary-7d3f9a@Example.org"
PHONE = "(312) 867-5309"
TRACES = [EMAIL.encode(), EMAIL.lower().encode(), PHONE.encode(), b"3128675309", b"Erasmus-Canary"]


def _warehouse(path: str) -> None:
    """Fifty other customers and two sessions of the canary customer (one by email, one by phone alone, seen by a
    router too), built into every mart and published, the call-back list included."""
    others = [
        session_record(
            f"o{n}",
            "DetailsConfirmed",
            "Abandoned",
            email=f"other{n}@example.com",
            phone=f"555-01{n:02d}",
            firstName=f"Other{n}",
        )
        for n in range(50)
    ]
    mine = [
        session_record("m1", "DetailsConfirmed", "Abandoned", email=EMAIL, firstName="Erasmus-Canary"),
        session_record("m2", "DetailsConfirmed", "Abandoned", phone=PHONE, firstName="Erasmus-Canary"),
    ]
    with connect(WarehouseSettings(path)) as con:
        put_sessions(con, others + mine)
        con.register("batch", ROUTER_SESSIONS.to_arrow(mine[1:], {"tenant_id": 1, "listed_by_id": "r"}))
        con.execute(f"INSERT INTO {ROUTER_SESSIONS.qualified} BY NAME SELECT * FROM batch")
    warehouse = DuckDBWarehouse(database=path, publish_pii=True)
    assert dg.materialize(list(MART_ASSETS.values()), resources={"warehouse": warehouse}).success


def _files(*roots: Path) -> dict[Path, bytes]:
    return {f: f.read_bytes() for root in roots for f in root.rglob("*") if f.is_file()}


def _rows(path: str) -> dict[str, list]:
    with duckdb.connect(path, read_only=True) as con:
        tables = [
            f"{s}.{t}"
            for s, t in con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall()
        ]
        return {t: sorted(map(repr, con.execute(f"FROM {t}").fetchall())) for t in tables}


def test_a_customer_is_normalised_as_the_marts_identify_them_and_never_quoted_when_refused():
    assert Customer.of("  Jane@Example.COM ", "(555) 010-0100") == Customer("jane@example.com", "5550100100")
    try:
        Customer.of(None, "call me")
    except ValueError as err:
        assert "call me" not in str(err)
    else:
        raise AssertionError("a phone without digits is refused")


def test_erase_removes_every_row_and_byte_of_the_customer_and_nothing_else(tmp_path):
    path = str(tmp_path / "w.duckdb")
    _warehouse(path)
    published, staging = tmp_path / "published" / "w", tmp_path / ".staging"
    follow_ups = published / "customer_follow_ups.parquet"
    # What killed runs leave: a half-written snapshot, a staging area no process holds.
    shutil.copy(follow_ups, published / "customer_follow_ups.parquet.killed-run.tmp")
    (staging / f"{AREA_PREFIX}999999-killed").mkdir(parents=True)
    (staging / f"{AREA_PREFIX}999999-killed" / "0.parquet").write_bytes(EMAIL.encode())
    assert EMAIL in pq.read_table(follow_ups).column("email").to_pylist()
    before = _rows(path)
    with duckdb.connect(path, read_only=True) as con:
        keys = [
            k
            for (k,) in con.execute(
                "SELECT customer_key FROM marts.sessions WHERE session_id IN ('m1', 'm2')"
            ).fetchall()
        ]
    assert len(keys) == 2
    assert EMAIL.encode() in Path(path).read_bytes() and PHONE.encode() in Path(path).read_bytes(), (
        "the customer is in the file's bytes, so the test can fail"
    )

    # Why the file is rewritten: deleting the rows leaves their bytes in the file, whatever is run after.
    deleted_by_hand = tmp_path / "by_hand.duckdb"
    shutil.copy(path, deleted_by_hand)
    with duckdb.connect(str(deleted_by_hand)) as con:
        con.execute("DELETE FROM raw.scheduler_sessions WHERE id IN ('m1', 'm2')")
        con.execute("DELETE FROM raw.router_sessions WHERE id = 'm2'")
        con.execute("DELETE FROM marts.customer_follow_ups WHERE first_name = 'Erasmus-Canary'")
        con.execute("FORCE CHECKPOINT")
        con.execute("VACUUM")
    assert EMAIL.encode() in deleted_by_hand.read_bytes()
    deleted_by_hand.unlink()

    env = {**os.environ, "ST_DUCKDB_PATH": path}
    for name in ("ST_PUBLISH_DIR", "ST_ENVIRONMENT"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "st_scheduling", "erase", "--email", f"  {EMAIL.upper()} ", "--phone", PHONE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "raw.scheduler_sessions: 2\n" in output and "raw.router_sessions: 1\n" in output
    assert "marts.customer_follow_ups: 2\n" in output and "marts.sessions: 2\n" in output
    assert "half-written snapshots of killed runs removed: 1" in output
    assert "staging areas of killed runs removed: 1" in output
    assert not [t for t in TRACES if t.decode() in output], "counts, never the customer"

    left = _files(tmp_path)
    assert Path(path) in left and not [f for f in left if f.suffix == ".wal" or f.name.endswith(".tmp")]
    assert not {f.name for f, data in left.items() for t in TRACES if t in data}, "not a byte of them anywhere"
    assert "Erasmus-Canary" not in str(pq.read_table(follow_ups).to_pylist())
    after = _rows(path)
    assert set(after) == set(before)
    theirs = ("'m1'", "'m2'", "Erasmus", *keys)  # the customer's sessions, name and hashed keys
    for table, rows in before.items():
        removed = Counter(rows) - Counter(after[table])
        assert not Counter(after[table]) - Counter(rows), f"{table}: nothing added or changed"
        assert all(any(t in row for t in theirs) for row in removed), f"{table}: only the customer's rows removed"
        assert not [row for row in after[table] if any(t in row for t in theirs)], f"{table}: none of theirs left"

    rebuilt = dg.materialize(
        list(MART_ASSETS.values()), resources={"warehouse": DuckDBWarehouse(database=path, publish_pii=True)}
    )
    assert rebuilt.success
    [sessions] = [
        e.materialization
        for e in rebuilt.get_asset_materialization_events()
        if e.materialization.asset_key.path == ["marts", "sessions"]
    ]
    assert sessions.metadata["build"].value.startswith("full rebuild"), "raw changed by hand: rebuilt in full"
    assert sessions.metadata["dagster/row_count"].value == 50
