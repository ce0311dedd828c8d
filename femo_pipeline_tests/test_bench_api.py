"""bench/api.py --tiny: the API benchmark runs end to end in seconds (in this process; the server is its own
process, as in a real run) and writes nothing."""

from __future__ import annotations

import pytest

from femo_pipeline.resources import PROJECT_ROOT


def _stamps() -> dict:
    docs = PROJECT_ROOT / "docs"
    return {p.name: p.stat().st_mtime_ns for p in (docs / "benchmarks.md", docs / "benchmarks.json") if p.exists()}


@pytest.mark.slow
def test_api_bench_tiny_runs_and_writes_nothing(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(PROJECT_ROOT))
    from bench.api import main

    before = _stamps()
    with pytest.raises(SystemExit) as done:
        main(["--tiny"])
    out = capsys.readouterr().out
    assert done.value.code == 0, out
    assert "tiny run: ok, nothing written" in out
    for scenario in ("page of 50", "one PNG", "gallery page"):
        assert scenario in out and "'errors': 0" in out
    assert _stamps() == before
