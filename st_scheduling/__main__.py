"""`python -m st_scheduling erase --email X --phone Y`: erase one customer on request (README runbook).

Removes the customer's events from the webhook inbox first (a file inbox only while no receiver runs: stop it,
erase, start it again); deletes every row of the customer (their email, any case; their phone, by its digits)
from the raw tables, the marts and meta; rewrites the published snapshots without them; removes what runs killed
while staging or publishing left behind; and rewrites the warehouse (ST_DUCKDB_PATH, as a run would) into a
fresh file, so no freed block keeps their bytes. Waits for the warehouse's write lock as a run does. Prints
counts, never the email or phone.
"""

from __future__ import annotations

import argparse
import sys

import duckdb
import psycopg2

from st_scheduling.config import Settings, SettingsError
from st_scheduling.ingest import staging
from st_scheduling.warehouse import erasure, publish
from st_scheduling.warehouse.store import WarehouseSettings, WarehouseUnavailableError
from st_scheduling.webhooks import backend
from st_scheduling.webhooks.inbox import InboxLocked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m st_scheduling", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    erase = sub.add_parser("erase", help="erase one customer on request: every row, snapshot and byte of them")
    erase.add_argument("--email", help="the customer's email")
    erase.add_argument("--phone", help="the customer's phone")
    args = parser.parse_args(argv)
    return erase_customer(args.email, args.phone)


def erase_customer(email: str | None, phone: str | None) -> int:
    try:
        customer = erasure.Customer.of(email, phone)
        settings = Settings.from_env()
    except (ValueError, SettingsError) as err:
        print(f"erase: {err}", file=sys.stderr)
        return 2
    where = backend.chosen(settings.webhooks) if settings.webhooks else None
    try:
        # The inbox first: a receiver holding it stops the erasure before anything else changed.
        events = where.erase(backend.about(customer.email, customer.phone)) if where else None
    except InboxLocked as err:
        print(f"erase: {err}; nothing was erased", file=sys.stderr)
        return 1
    except psycopg2.Error as err:  # its text may quote a value: the class only
        print(f"erase: the webhook inbox in {where} failed ({type(err).__name__}); erase again", file=sys.stderr)
        return 1
    if where:
        print(f"webhook inbox ({where}): {events:,} event(s) of the customer erased")
    path = settings.duckdb_path
    try:
        done = erasure.erase(
            WarehouseSettings(path, settings.duckdb_threads, settings.duckdb_memory_limit),
            customer,
            settings.publish_dir or publish.default_directory(path),
            on_wait=lambda message: print(message, file=sys.stderr),
        )
    except (FileNotFoundError, WarehouseUnavailableError) as err:
        print(f"erase: {err}", file=sys.stderr)
        return 1
    except duckdb.Error as err:  # its text may quote a value: the class only
        print(
            f"erase: DuckDB failed ({type(err).__name__}); if before the rows were committed, nothing changed",
            file=sys.stderr,
        )
        return 1
    swept = staging.sweep(staging.default_root(path)) if not path.startswith("md:") else 0
    print(report(path, done, swept))
    return 0


def report(path: str, done: erasure.Erasure, swept: int) -> str:
    """What was erased where, in numbers."""
    lines = [
        f"{path}: "
        + (
            f"deleted {sum(done.rows.values()):,} row(s) of the customer"
            if done.rows
            else "no row of the customer (erased before?)"
        )
    ]
    lines += [f"  {table}: {n:,}" for table, n in sorted(done.rows.items())]
    lines.append(f"published snapshots rewritten: {', '.join(done.snapshots) or 'none'}")
    if done.leftovers:
        lines.append(f"half-written snapshots of killed runs removed: {done.leftovers}")
    if swept:
        lines.append(f"staging areas of killed runs removed: {swept}")
    lines.append(
        f"warehouse rewritten into a fresh file: {done.bytes_before:,} -> {done.bytes_after:,} bytes"
        if done.rewritten
        else "MotherDuck keeps its own storage: rows deleted, no file rewritten"
    )
    if done.rows:
        lines.append("next: materialize the scheduling_pro_marts group (they rebuild in full by themselves)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
