"""`python -m st_scheduling.vocabulary calibrate --out FILE`: propose a vocabulary file from /performance.

Reads the raw tables a run already loaded (the warehouse of ST_DUCKDB_PATH, or --duckdb), fits the
lastStep and sessionOutcome mapping and the definition switches that best reproduce ServiceTitan's
/performance for every stored scheduler-day, writes them as a ready vocabulary file, and prints the fit.
Point ST_VOCABULARY at the file to use it. Opens the warehouse read-only: stop running jobs first.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from st_scheduling import vocabulary
from st_scheduling.config import Settings
from st_scheduling.vocabulary.calibrate import calibrate, read_loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m st_scheduling.vocabulary",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    cal = sub.add_parser("calibrate", help="propose a vocabulary file from the API's /performance numbers")
    cal.add_argument("--out", required=True, help="vocabulary file to write")
    cal.add_argument("--duckdb", help="warehouse to read (default: ST_DUCKDB_PATH, as a run would)")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    path = args.duckdb or settings.duckdb_path
    try:
        with duckdb.connect(path, read_only=True) as con:
            groups, api = read_loaded(con, settings.timezone)
    except duckdb.Error as err:
        print(f"calibrate: cannot read the raw tables in {path}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    if not api:
        print(
            f"calibrate: {path} holds no scheduler performance: materialize raw/scheduler_sessions and "
            "raw/scheduler_performance for some days first",
            file=sys.stderr,
        )
        return 2
    fit = calibrate(groups, api, vocabulary.load(settings.vocabulary_file))
    header = (
        f"Calibrated {datetime.now(UTC):%Y-%m-%d} by `python -m st_scheduling.vocabulary calibrate` from "
        f"{len(api)} scheduler-days of /performance and\n{sum(g.sessions for g in groups):,} sessions. "
        "Review it, then point ST_VOCABULARY at this file.\n\nFit (scheduler-days whose numbers "
        "these definitions reproduce):\n" + fit.report()
    )
    Path(args.out).write_text(vocabulary.render(fit.vocabulary, header), encoding="utf-8")
    print(fit.report())
    print(f"wrote {args.out}; use it with ST_VOCABULARY={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
