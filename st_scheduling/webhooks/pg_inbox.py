"""The inbox in the Dagster instance's PostgreSQL (when the DAGSTER_PG_* variables are set): the same contract as the
file inbox, so a receiver may run on another machine than the warehouse and the daemon.

One table, `st_scheduling_webhooks.inbox`, created when missing: `position` (bigserial, the readers' position),
`userassignedid` (unique: a duplicate is stored once, by `ON CONFLICT DO NOTHING`), `received_at` and the envelope
as received (`jsonb`).

Durability, by group commit as in the file inbox: one writer thread inserts every event waiting in one transaction
and answers them only once its COMMIT has returned, with `synchronous_commit` on, so the commit record is flushed to
the server's disk first. A failed batch is answered 503 and retried by the sender; being deduplicated by
`userassignedid`, the retry is safe whether the commit reached the disk or not.

Why positions are monotonic: bigserial values are taken when a row is inserted, not when it commits, so with two
writers a reader could see position 12 committed before 11 and step past 11 for good. Here one thread of one
receiver writes (a second receiver is refused by an advisory lock, as the file inbox refuses it by `.lock`), and
each of its transactions commits before the next begins: positions become visible in the order they were taken.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
import psycopg2
import psycopg2.errors
import psycopg2.extras

from st_scheduling.webhooks.inbox import InboxBroken, InboxLocked, Stored, batches, received_now

SCHEMA, TABLE = "st_scheduling_webhooks", "st_scheduling_webhooks.inbox"
POSITION_PREFIX = "pg:"  # a position here is `pg:<position>`, never mistaken for the file inbox's `<segment>:<offset>`
# pg_advisory_lock's key for "a receiver writes this inbox": any constant other users of the database do not take.
WRITER_LOCK = 0x57_45_42_48_4F_4F_4B  # "WEBHOOK"
CONNECT_TIMEOUT_SECONDS = 10
log = logging.getLogger("st_scheduling.webhooks")

CREATE = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    position bigserial PRIMARY KEY,
    userassignedid text NOT NULL UNIQUE,
    received_at text NOT NULL,
    event jsonb NOT NULL
);
"""


@dataclass(frozen=True)
class Server:
    """Where the instance's PostgreSQL is, from DAGSTER_PG_* (as deploy/postgres-storage.yaml reads them)."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def from_env(cls) -> Server | None:
        """None unless DAGSTER_PG_HOST is set: the instance then stores runs in PostgreSQL, and the inbox follows."""
        if not os.getenv("DAGSTER_PG_HOST"):
            return None
        return cls(
            os.environ["DAGSTER_PG_HOST"],
            int(os.getenv("DAGSTER_PG_PORT") or 5432),
            os.getenv("DAGSTER_PG_USERNAME") or "",
            os.getenv("DAGSTER_PG_PASSWORD") or "",
            os.getenv("DAGSTER_PG_DB") or "",
        )

    def __str__(self) -> str:  # for logs: never the password
        return f"PostgreSQL {self.host}:{self.port}/{self.database}, table {TABLE}"

    def connect(self):
        con = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.database,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="st_scheduling webhooks",
        )
        with con.cursor() as cursor:
            # The server's default may trade durability for speed; an acknowledged event must not be lost.
            cursor.execute("SET synchronous_commit = on")
        con.commit()
        try:
            with con.cursor() as cursor:
                cursor.execute(CREATE)
            con.commit()
        except (psycopg2.errors.UniqueViolation, psycopg2.errors.DuplicateObject):
            # Two sessions creating the table at once (the sensors' first ticks): IF NOT EXISTS does not make
            # PostgreSQL's catalogue insert atomic, and the one that lost finds the table made by the other.
            con.rollback()
        return con


@contextmanager
def _connection(server: Server):
    con = server.connect()
    try:
        yield con
    finally:
        con.close()


class PostgresInbox:
    """The writing side, for one receiver process: `submit` as FileInbox's."""

    def __init__(self, server: Server):
        self.server = server
        self._con = server.connect()
        with self._con.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [WRITER_LOCK])
            if not cursor.fetchone()[0]:
                self._con.close()
                raise InboxLocked(f"another receiver holds the inbox in {server}")
            cursor.execute(f"SELECT count(*) FROM {TABLE}")
            self._count = cursor.fetchone()[0]
        self._con.commit()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.broken: BaseException | None = None
        self.stored = 0
        self._thread = threading.Thread(target=self._write_forever, name="inbox-writer", daemon=True)
        self._thread.start()

    def submit(self, userassignedid: str, event: dict) -> Future:
        future: Future = Future()
        self._queue.put((userassignedid, event, future))
        return future

    def _write_forever(self) -> None:
        for batch in batches(self._queue):
            self._write(batch)

    def _write(self, batch: list) -> None:
        fresh: dict[str, tuple[str, str, str]] = {}
        received_at = received_now()
        for uid, event, _ in batch:
            fresh.setdefault(uid, (uid, received_at, orjson.dumps(event).decode()))
        try:
            if self._con.closed:
                self._reconnect()
            with self._con.cursor() as cursor:
                inserted = {
                    uid
                    for (uid,) in psycopg2.extras.execute_values(
                        cursor,
                        f"INSERT INTO {TABLE} (userassignedid, received_at, event) VALUES %s "
                        "ON CONFLICT (userassignedid) DO NOTHING RETURNING userassignedid",
                        list(fresh.values()),
                        template="(%s, %s, %s::jsonb)",
                        page_size=len(fresh),
                        fetch=True,
                    )
                }
            self._con.commit()
        except psycopg2.Error as err:
            # Whether the commit reached the disk is unknown: nothing of the batch is acknowledged, the sender
            # retries it, and the unique userassignedid stores it once whatever happened. The next batch reconnects.
            self.broken = err
            self._con.close()
            for _, _, future in batch:
                future.set_exception(InboxBroken(f"writing the inbox failed ({type(err).__name__})"))
            return
        self.broken = None
        self._count += len(inserted)
        self.stored += len(inserted)
        for uid, _, future in batch:
            # The first of duplicates within one batch is the one stored.
            future.set_result(uid in inserted)
            inserted.discard(uid)

    def _reconnect(self) -> None:
        self._con = self.server.connect()
        with self._con.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [WRITER_LOCK])
            if not cursor.fetchone()[0]:
                # Another receiver started while this one's connection was down: the lock is theirs now.
                raise psycopg2.OperationalError("another receiver took the inbox while this one was disconnected")
        self._con.commit()

    def close(self) -> None:
        """Store what was submitted, then let the inbox go (closing the connection frees the advisory lock)."""
        self._queue.put(None)
        self._thread.join()
        self._con.close()

    def __len__(self) -> int:
        """Events in the inbox when this receiver started, plus those it stored since."""
        return self._count


def read(server: Server, position: str | None, limit: int = 10_000) -> tuple[list[Stored], str | None]:
    """Up to `limit` events stored after `position` (None, or another backend's position: from the first), and the
    position after the last one returned (unchanged when there is none)."""
    after = int(position[len(POSITION_PREFIX) :]) if position and position.startswith(POSITION_PREFIX) else 0
    with _connection(server) as con, con.cursor() as cursor:
        cursor.execute(
            f"SELECT position, received_at, event FROM {TABLE} WHERE position > %s ORDER BY position LIMIT %s",
            [after, limit],
        )
        found = [Stored(f"{POSITION_PREFIX}{row[0]}", row[1], row[2]) for row in cursor.fetchall()]
    return found, (found[-1].position if found else position)


def erase(server: Server, mentions: Callable[[dict], bool]) -> int:
    """Delete every stored event that `mentions` and return how many; then VACUUM FULL rewrites the table into new
    files, so the deleted rows' bytes leave the table's files too (a plain DELETE leaves them in its pages). The
    receiver may keep running: its inserts wait for the rewrite's lock. Other positions do not change."""
    with _connection(server) as con:
        doomed = [position for position, event in _events(con) if mentions(event)]
        with con.cursor() as cursor:
            cursor.execute(f"DELETE FROM {TABLE} WHERE position = ANY(%s)", [doomed])
        con.commit()
        con.autocommit = True  # VACUUM runs outside a transaction
        with con.cursor() as cursor:
            cursor.execute(f"VACUUM FULL {TABLE}")
    return len(doomed)


def _events(con) -> Iterator[tuple[int, dict]]:
    """Every stored event, read in batches by a server-side cursor (the table is never loaded whole)."""
    with con.cursor(name="st_scheduling_inbox_erasure") as cursor:
        cursor.itersize = 2000
        cursor.execute(f"SELECT position, event FROM {TABLE} ORDER BY position")
        yield from cursor
