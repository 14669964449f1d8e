"""A real PostgreSQL server for one test: `initdb` and `pg_ctl` in a temporary folder, on a free loopback port,
with a password, stopped and removed afterwards. As root (CI), the server runs as the `postgres` user that
Debian's package creates, since PostgreSQL refuses to run as root."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER, DATABASE = "dagster", "dagster"


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl (Debian keeps them off PATH), or None when PostgreSQL is absent."""
    found = shutil.which("pg_ctl") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)), None
    )
    return Path(found).resolve().parent if found else None


@dataclass(frozen=True)
class Server:
    port: int
    password: str

    def environment(self) -> dict[str, str]:
        """The DAGSTER_PG_* variables that select PostgreSQL storage for the instance."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": USER,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": DATABASE,
        }

    def query(self, sql: str) -> list[tuple]:
        import psycopg2

        with (
            psycopg2.connect(
                host="127.0.0.1", port=self.port, user=USER, password=self.password, dbname=DATABASE
            ) as con,
            con.cursor() as cursor,
        ):
            cursor.execute(sql)
            return cursor.fetchall()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(bin_dir: Path, durable: bool = False) -> Iterator[Server]:
    """A server for one test; fsync off (nothing here outlives it) unless `durable`, as the webhook benchmark needs
    to count commits as a production server makes them."""
    folder = Path(tempfile.mkdtemp(prefix="st_scheduling_pg_"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = Server(_free_port(), secrets.token_urlsafe(16))
    (folder / "password").write_text(server.password)
    if as_user:
        os.chown(folder / "password", owner.pw_uid, owner.pw_gid)
    data = folder / "data"

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    try:
        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "-A",
            "scram-sha-256",
            f"--pwfile={folder / 'password'}",
            "--no-sync",
        )
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {server.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={folder}"
            + ("" if durable else " -c fsync=off"),
            "start",
        )
        import psycopg2

        con = psycopg2.connect(
            host="127.0.0.1", port=server.port, user=USER, password=server.password, dbname="postgres"
        )
        con.autocommit = True
        with con.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {DATABASE}")
        con.close()
        yield server
    finally:
        if data.exists():
            subprocess.run(
                [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(folder, ignore_errors=True)
