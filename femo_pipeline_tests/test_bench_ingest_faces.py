"""bench/ingest.py and bench/faces.py cannot rot: their tiny modes run end to end in CI (seconds, synthetic data,
no ../shared needed), in this process, and write nothing."""

from __future__ import annotations

import importlib
import sys

import pytest

from femo_pipeline.resources import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"


def _docs() -> dict:
    return {p.name: p.read_bytes() for p in DOCS.glob("benchmarks.*")}


def _tiny(script: str, monkeypatch, capsys, *extra: str) -> str:
    """The script's main() with --tiny, in this process (its imports are loaded already); what it printed."""
    before = _docs()
    monkeypatch.syspath_prepend(str(PROJECT_ROOT))
    monkeypatch.setattr(sys, "argv", [script, "--tiny", *extra])
    importlib.import_module(f"bench.{script.removesuffix('.py')}").main()
    out = capsys.readouterr().out
    assert "tiny run: ok, nothing written" in out
    assert _docs() == before
    return out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ingest_bench_tiny_times_synthetic_folder_to_warehouse(monkeypatch, capsys):
    out = _tiny("ingest.py", monkeypatch, capsys)
    assert "synthetic_300: 300 files" in out and "images/s" in out and "MiB" in out
    for step in ("fer2013_images", "image_catalog", "images"):
        assert f"| {step} |" in out


def test_ingest_bench_synthetic_files_are_distinct_and_in_fer_layout(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(PROJECT_ROOT))
    from bench.ingest import write_synthetic

    write_synthetic(tmp_path, 120)
    files = sorted(tmp_path.glob("*/*/*.jpg"))
    assert len(files) == 120
    assert {f.parts[-3] for f in files} == {"train", "test"}
    assert len({f.read_bytes() for f in files}) == 120


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_faces_bench_tiny_runs_without_shared_data(monkeypatch, capsys):
    out = _tiny("faces.py", monkeypatch, capsys, "--fer2013", str(PROJECT_ROOT / "no-such-folder"))
    assert "<!-- faces:start -->" in out and "shrunk to 320 px (femo)" in out
