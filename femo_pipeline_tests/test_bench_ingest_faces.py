"""bench/ingest.py and bench/faces.py cannot rot: their tiny modes run end to end in CI (seconds, synthetic data,
no ../shared needed) and write nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from femo_pipeline.resources import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"


def _docs() -> dict:
    return {p.name: p.read_bytes() for p in DOCS.glob("benchmarks.*")}


def _tiny(script: str, *extra: str) -> str:
    before = _docs()
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / script), "--tiny", *extra],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "tiny run: ok, nothing written" in done.stdout
    assert _docs() == before
    return done.stdout


@pytest.mark.timeout(300)
def test_ingest_bench_tiny_times_synthetic_folder_to_warehouse():
    out = _tiny("ingest.py")
    assert "synthetic_300: 300 files" in out and "images/s" in out and "MiB" in out
    for step in ("fer2013_images", "image_catalog", "images"):
        assert f"| {step} |" in out


def test_ingest_bench_synthetic_files_are_distinct_and_in_fer_layout(tmp_path):
    sys.path.insert(0, str(PROJECT_ROOT))
    from bench.ingest import write_synthetic

    write_synthetic(tmp_path, 120)
    files = sorted(tmp_path.glob("*/*/*.jpg"))
    assert len(files) == 120
    assert {f.parts[-3] for f in files} == {"train", "test"}
    assert len({f.read_bytes() for f in files}) == 120


@pytest.mark.timeout(300)
def test_faces_bench_tiny_runs_without_shared_data():
    out = _tiny("faces.py", "--fer2013", str(PROJECT_ROOT / "no-such-folder"))
    assert "<!-- faces:start -->" in out and "shrunk to 320 px (femo)" in out
