"""`make sql`: a DuckDB prompt over the published marts, never the working warehouse.

    python -m st_scheduling.sql                      # interactive; end each statement with ;
    python -m st_scheduling.sql -c "FROM marts.booking_volume LIMIT 5"

Each published mart is a view `marts.<name>` over its Parquet snapshot, so this prompt (like a notebook
or BI tool reading the same files) never holds the lock a run needs.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

from st_scheduling.config import Settings
from st_scheduling.warehouse import publish


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m st_scheduling.sql", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-c", "--command", help="run one statement and exit")
    parser.add_argument("--dir", help="published snapshots (default: ST_PUBLISH_DIR, or beside the warehouse)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    directory = args.dir or settings.publish_dir or publish.default_directory(settings.duckdb_path)
    if directory is None:
        print("no published directory: set ST_PUBLISH_DIR", file=sys.stderr)
        return 2
    con = publish.reader(directory)
    views = [
        name
        for (name,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE schema_name = 'marts' ORDER BY 1"
        ).fetchall()
    ]
    if args.command:
        return _run(con, args.command)
    print(f"published marts in {directory}: {', '.join(f'marts.{v}' for v in views) or '(none yet: run make demo)'}")
    print("end statements with ; — Ctrl-D to leave")
    buffer = ""
    while True:
        try:
            line = input("sql> " if not buffer else "...> ")
        except EOFError:
            print()
            return 0
        buffer += line + "\n"
        if buffer.rstrip().endswith(";"):
            _run(con, buffer)
            buffer = ""


def _run(con: duckdb.DuckDBPyConnection, statement: str) -> int:
    try:
        relation = con.sql(statement)
        if relation is not None:
            relation.show(max_rows=40)
        return 0
    except duckdb.Error as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
