"""Benchmark: train femo's CNN on real FER-2013 on this machine, evaluate it, and run the benchmark report.

Materializes the real assets (FER-2013 ingest -> warehouse -> emotion_model -> model_evaluation,
contender_predictions, human_baseline -> benchmark_report) on a fresh data folder, with the FER+ votes, then
writes training time and speed, test accuracy with intervals, inference speed and the report's verdicts to
docs/benchmarks.md ('train' markers). Goals (issue 4): >= 73 % test accuracy within 15 GPU minutes; >= 65 %
within 60 minutes on 2 CPU cores; batched CPU inference >= 2,000 images/s.

    .venv/bin/python bench/train.py --epochs 12 [--fer2013 ../shared/datasets/fer2013] [--votes ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
from dagster_duckdb import DuckDBResource  # noqa: E402

from bench._report import write_section  # noqa: E402
from bench.ingest import machine  # noqa: E402
from femo_pipeline.definitions import all_assets, web_resources  # noqa: E402
from femo_pipeline.resources import FacsPageResource, FemoStorage, QualityThresholds  # noqa: E402

SELECTION = ["fer2013_images", "image_catalog", "data_sources", "emotions", "images", "emotion_model",
             "model_evaluation", "contender_predictions", "human_baseline", "benchmark_report"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fer2013", default=str(ROOT.parent / "shared" / "datasets" / "fer2013"))
    parser.add_argument("--votes", default=str(ROOT.parent / "shared" / "datasets" / "ferplus" / "ferplus_votes_by_file.csv"))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--max-minutes", type=float, default=0, help="training time budget (stops after that epoch)")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="report on an earlier run in --data-dir, no training")
    args = parser.parse_args()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="femo-train-"))
    storage = FemoStorage(data_dir=str(data_dir), profile="real", fer2013_dir=args.fer2013)
    resources = {"storage": storage, "duckdb": DuckDBResource(database=str(storage.warehouse_path)),
                 "facs_source": FacsPageResource(url="fixture"), "quality_thresholds": QualityThresholds(),
                 **web_resources()}
    votes_config = {"config": {"votes_csv": args.votes}}
    run_config = {"ops": {"emotion_model": {"config": {"epochs": args.epochs, "max_minutes": args.max_minutes}},
                          "human_baseline": votes_config, "benchmark_report": votes_config},
                  "loggers": {"console": {"config": {"log_level": "INFO"}}}}
    start = time.perf_counter()
    if not args.reuse:
        result = dg.materialize(all_assets, selection=SELECTION, resources=resources, run_config=run_config)
        assert result.success
    wall = time.perf_counter() - start
    reports = data_dir / "reports"
    train = json.loads((data_dir / "models" / "config.json").read_text())
    femo = json.loads((reports / "model_evaluation.json").read_text())[0]
    contenders = json.loads((reports / "contenders.json").read_text())
    report = json.loads((reports / "benchmark.json").read_text())

    # batched inference alone (images already decoded), best of three passes over the test set
    import duckdb

    from femo_pipeline import model as femo_model
    from femo_pipeline import modeldata

    with duckdb.connect(str(storage.warehouse_path), read_only=True) as con:
        blobs = [b for (b,) in con.execute("SELECT p.pixels FROM images i JOIN image_pixels p ON p.image_id = i.id "
                                          "WHERE i.source_id = 4 AND i.split = 'test'").fetchall()]
    x = modeldata.stack(blobs, 48)
    net = femo_model.load(data_dir / "models" / "emotion_model.keras")
    femo_model.predict(net, x[:512])
    passes = []
    for _ in range(3):
        t = time.perf_counter()
        femo_model.predict(net, x, batch_size=512)
        passes.append(len(x) / (time.perf_counter() - t))
    infer = max(passes)

    def row(reader: dict, set_name: str) -> str:
        s = reader["sets"][set_name]
        lo, hi = s["accuracy_ci95"]
        return f"{100 * s['accuracy']:.1f} % ({100 * lo:.1f}-{100 * hi:.1f})"

    sets = [k for k in femo["sets"] if k.startswith("FER-2013 test")]
    table = "\n".join(
        f"| {s.removeprefix('FER-2013 test: ')} | {row(femo, s)} | "
        + " | ".join(row(c, s) for c in contenders) + " |" for s in sets)
    header = " | ".join(c["reader"] for c in contenders)
    verdicts = "\n".join(f"- {d['name']}: {d['verdict']}" for d in report["datasets"])
    section = f"""<!-- train:start -->
## Training and the benchmark on real FER-2013 (`bench/train.py`)

Measured {dt.date.today().isoformat()} on {machine()}, Keras {train['backend']} backend on the CPU (no GPU was
lent to this session). {train['train_images']:,} FER-2013 Training images ({train['validation_images']:,} more held
out for validation), {train.get('epochs_run', train['epochs'])} epochs run of {train['epochs']} planned
(time budget {train.get('max_minutes') or 'none'} min), batch {train['batch_size_used']}, {train['parameters']:,} parameters.

| measure | value |
| --- | --- |
| training time | {train['seconds'] / 60:.1f} min ({train['train_images_per_second']:.0f} images/s) |
| whole run (ingest, training, evaluation, contenders, report) | {"see the run's log" if args.reuse else f"{wall / 60:.1f} min"} |
| batched inference (batch 512, decoded 48x48 arrays), CPU | {infer:,.0f} images/s |
| the same including JPEG decode (model_evaluation) | {femo['images_per_second']:,.0f} images/s |

Test accuracy (95 % bootstrap CI), FER-2013 labels:

| test set | femo CNN | {header} |
| --- | --- | {' | '.join('---' for _ in contenders)} |
{table}

Verdicts of the report (`data/reports/benchmark.md`):
{verdicts}

Goals: >= 65 % within 60 min on 2 CPU cores; >= 73 % within 15 GPU minutes; >= 2,000 images/s inference.
<!-- train:end -->"""
    print(section)
    if not args.no_write:
        print(f"written to {write_section('train', section)}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
