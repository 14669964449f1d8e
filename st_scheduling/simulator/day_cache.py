"""A disk cache of serialized sessions for settled days, so large simulated histories serve fast in bounded memory.

A day is *settled* once MAX_LIFETIME has passed since it ended: none of its sessions changes again, so its
records, serialized once, serve every later request unchanged. They live in a SQLite file, not in memory.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable


class DayCache:
    def __init__(self, path: str):
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.executescript(
            """
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = OFF;
            CREATE TABLE IF NOT EXISTS settled_days (owner TEXT, day INTEGER, PRIMARY KEY (owner, day));
            CREATE TABLE IF NOT EXISTS records (
                owner TEXT, day INTEGER, seq INTEGER, created INTEGER, modified TEXT, body BLOB,
                PRIMARY KEY (owner, day, seq)
            ) WITHOUT ROWID;
            """
        )
        self._lock = threading.Lock()

    def day(self, owner: str, day: int, produce: Callable[[], list[tuple[int, str, bytes]]]) -> list[tuple]:
        """(created, modified, body) of every session of the day, produced and stored on first use."""
        with self._lock:
            known = self._db.execute("SELECT 1 FROM settled_days WHERE owner = ? AND day = ?", (owner, day)).fetchone()
            if known:
                return self._db.execute(
                    "SELECT created, modified, body FROM records WHERE owner = ? AND day = ? ORDER BY seq", (owner, day)
                ).fetchall()
            rows = produce()
            with self._db:
                self._db.executemany(
                    "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)",
                    [(owner, day, seq, *row) for seq, row in enumerate(rows)],
                )
                self._db.execute("INSERT INTO settled_days VALUES (?, ?)", (owner, day))
            return rows

    def close(self) -> None:
        self._db.close()
