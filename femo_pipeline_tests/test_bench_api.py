"""bench/api.py --tiny: the API benchmark runs end to end in seconds and writes nothing."""

from __future__ import annotations

import subprocess
import sys

from femo_pipeline.resources import PROJECT_ROOT


def _stamps() -> dict:
    docs = PROJECT_ROOT / "docs"
    return {p.name: p.stat().st_mtime_ns for p in (docs / "benchmarks.md", docs / "benchmarks.json") if p.exists()}


def test_api_bench_tiny_runs_and_writes_nothing():
    before = _stamps()
    done = subprocess.run([sys.executable, "bench/api.py", "--tiny"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tiny run: ok, nothing written" in done.stdout
    for scenario in ("page of 50", "one PNG", "gallery page"):
        assert scenario in done.stdout and "'errors': 0" in done.stdout
    assert _stamps() == before
