"""`make bench --quick` as a smoke test: it completes and the baselines agree on the numbers. No timings
are asserted here; speed is reported by `make bench`, never judged by a test."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.bench
def test_the_quick_benchmark_completes_and_the_baselines_agree():
    result = subprocess.run([sys.executable, "-m", "bench.run", "--quick"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "baselines agree on the numbers: True" in result.stdout
    for variant in ("server", "floor", "platform", "dagster", "dlt_fastest", "hourly refresh", "pandas",
                    "DuckDB SQL: the same", "tenants, 50 ms per call: all at once"):
        assert variant in result.stdout
