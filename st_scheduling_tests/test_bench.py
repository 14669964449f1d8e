"""`make bench --quick` as a smoke test: it completes and the baselines agree on the numbers. No timings
are asserted here; speed is reported by `make bench`, never judged by a test."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.bench
def test_the_quick_benchmark_completes_and_the_baselines_agree(tmp_path):
    # Its own session, output to a file: if the runner dies, the servers it started neither outlive the test
    # nor hold a pipe the test would wait on.
    log = tmp_path / "bench.log"
    with log.open("w") as out:
        bench = subprocess.Popen(
            [sys.executable, "-m", "bench.run", "--quick"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = bench.wait(timeout=600)
        finally:
            try:
                os.killpg(bench.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    output = log.read_text()
    assert returncode == 0, output[-6000:]
    assert "baselines agree on the numbers: True" in output
    for variant in (
        "server",
        "floor",
        "platform",
        "dagster",
        "dlt_fastest",
        "hourly refresh",
        "pandas",
        "DuckDB SQL: the same",
        "tenants, 50 ms per call: all at once",
        "file inbox: acknowledged durably",
        "webhooks: sensor tick",
        "hourly polling: next :05",
    ):
        assert variant in output
