"""bench/train.py cannot rot: its tiny mode trains, scores and prints on real FER-2013 in CI (writing nothing);
the records helper keeps docs/benchmarks.json a list of named, dated, machine-stamped figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench._report import write_records
from femo_pipeline.resources import PROJECT_ROOT
from femo_pipeline_tests.conftest import requires_fer2013

DOCS = PROJECT_ROOT / "docs"


@pytest.mark.slow
@requires_fer2013
@pytest.mark.timeout(600)
def test_train_bench_tiny_mode_runs_end_to_end_and_writes_nothing():
    before = {p.name: p.read_bytes() for p in DOCS.glob("benchmarks.*")}
    run = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "train.py"), "--tiny", "--n-boot", "50"],
                         capture_output=True, text=True, timeout=580, cwd=PROJECT_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "<!-- train:start -->" in out and "<!-- train:end -->" in out
    for reader in ("| fer2013 |", "| ferplus |", "| femo_ferplus |"):  # both heads scored on both references
        assert reader in out
    assert "images/s" in out and "leak-free" in out
    assert {p.name: p.read_bytes() for p in DOCS.glob("benchmarks.*")} == before


def test_records_merge_by_name_and_must_be_complete(tmp_path):
    path = tmp_path / "benchmarks.json"
    rec = {"name": "a", "value": 1.0, "unit": "s", "machine": "m", "date": "2026-11-25"}
    write_records([rec, {**rec, "name": "b"}], path)
    write_records([{**rec, "value": 2.0}], path)
    assert json.loads(path.read_text()) == [{**rec, "value": 2.0}, {**rec, "name": "b"}]
    with pytest.raises(ValueError, match="lacks"):
        write_records([{"name": "c", "value": 1}], path)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_answer_bench_tiny_mode_runs_the_graph_without_training_and_writes_nothing():
    before = {p.name: p.read_bytes() for p in DOCS.glob("benchmarks.*")}
    run = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "answer.py"), "--tiny"],
                         capture_output=True, text=True, timeout=580, cwd=PROJECT_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "<!-- answer:start -->" in run.stdout and "| leak-free test |" in run.stdout
    assert "**Headline**: SYNTHETIC DEMO" in run.stdout and "| ferplus | balanced_recall | 5 |" in run.stdout
    assert {p.name: p.read_bytes() for p in DOCS.glob("benchmarks.*")} == before


@pytest.mark.slow
@requires_fer2013
@pytest.mark.timeout(600)
def test_gpu_recipe_grid_and_declare_benches_run_tiny_on_the_cpu_and_write_nothing(tmp_path):
    """The GPU recipe flag, the data-factor grid (from a FER-2013 pack, as a GPU machine reads it) and the choice of
    the declared mix run in their tiny modes here; records name the device they ran on, a CPU here."""
    before = {p.name: p.read_bytes() for p in DOCS.glob("benchmarks.*")}
    pack = tmp_path / "fer2013.npz"
    made = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "_fer2013.py"), "pack", str(pack)],
                          capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert made.returncode == 0 and pack.stat().st_size > 10_000_000, made.stderr[-2000:]
    train = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "train.py"), "--tiny", "--recipe", "gpu",
                            "--pack", str(pack), "--n-boot", "50"], capture_output=True, text=True, timeout=580,
                           cwd=PROJECT_ROOT)
    assert train.returncode == 0, train.stderr[-3000:]
    assert "<!-- train_gpu:start -->" in train.stdout and "(CPU), Keras on the tensorflow backend" in train.stdout
    assert '"width": 8, "block_convs": [2, 2, 2, 2]' in train.stdout  # the GPU recipe's blocks, shrunk for tiny
    grid = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "grid.py"), "--tiny", "--pack", str(pack)],
                          capture_output=True, text=True, timeout=580, cwd=PROJECT_ROOT)
    assert grid.returncode == 0, grid.stderr[-3000:]
    assert grid.stdout.count("(CPU): {") == 2 and "2 cell(s) trained" in grid.stdout
    declare = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "declare.py"), "--tiny"],
                             capture_output=True, text=True, timeout=580, cwd=PROJECT_ROOT)
    assert declare.returncode == 0, declare.stderr[-3000:]
    assert "best on validation w=" in declare.stdout and "test declared" in declare.stdout
    assert {p.name: p.read_bytes() for p in DOCS.glob("benchmarks.*")} == before


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_train_speed_bench_tiny_mode_runs_every_variant_and_writes_nothing():
    before = {p.name: p.read_bytes() for p in DOCS.glob("benchmarks.*")}
    run = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / "train_speed.py"), "--tiny"],
                         capture_output=True, text=True, timeout=580, cwd=PROJECT_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "<!-- train_speed:start -->" in run.stdout and "<!-- train_speed:end -->" in run.stdout
    for variant in ("XLA (Keras default)", "w32 1-2-2-2 |", "crop 40", "w16"):
        assert variant in run.stdout
    assert {p.name: p.read_bytes() for p in DOCS.glob("benchmarks.*")} == before
