"""The benchmarks still run (tiny sizes, no timing asserted: figures belong in bench/, not in tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.slow


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=110, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_core_benchmark_reports_every_figure_against_its_baseline() -> None:
    out = run(str(BENCH / "bench_core.py"), "--quick")
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert sorted(lines) == ["cycle", "publish", "scrape"]
    assert "x faster" in lines["scrape"] and "GaugeMetricFamily baseline" in lines["scrape"]
    assert "exporter overhead" in lines["cycle"] and "peak RSS" in lines["cycle"]
    assert "p99" in lines["publish"]


def test_shure_push_benchmark_sees_every_pushed_change() -> None:
    out = run(str(BENCH / "bench_shure_push.py"), "-n", "5", "--duration", "3", "--warmup", "0.5")
    figures = dict(line.split("  ", 1) for line in out.splitlines() if "  " in line)
    seen, _coalesced, missing = (int(x) for x in figures["pushed changes seen / coalesced / missing"].split("/"))
    assert seen > 0
    assert missing == 0
