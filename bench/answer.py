"""Benchmark: the answer on real FER-2013 + FER+ with the models shipped in the package (no training).

Materializes the real pipeline from the FER-2013 folders to benchmark_report on a fresh data folder (every asset
but training, the data-factor grid and the web sources), so the shipped femo models and their declared mix are
scored, then prints from the warehouse the headline, the panels of people, both fair metrics, the equal-views rows
and the seed spread, and writes them to docs/benchmarks.md ('answer' markers) and docs/benchmarks.json.

    .venv/bin/python bench/answer.py [--fer2013 ../shared/datasets/fer2013] [--data-dir DIR] [--tiny]

--tiny: the demo profile on a few hundred generated images, nothing written (a test runs it). The data-factor grid
has its own bench (bench/grid.py) and job (`femo factors`).
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

SKIP = {"emotion_model", "trained_model_run", "data_factors", "data_factors_table", "pixabay_hits", "pixabay_images",
        "duckduckgo_hits", "duckduckgo_images"}
DEMO_OPS = {"demo_source_files": {"config": {"fer_train_per_class": 8, "fer_test_per_class": 4,
                                             "kaggle_per_class": 5, "survey_rows": 300}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fer2013", default=str(ROOT.parent / "shared" / "datasets" / "fer2013"))
    parser.add_argument("--fer2013new", default=str(ROOT.parent / "shared" / "datasets" / "ferplus" / "fer2013new.csv"))
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="femo-answer-"))
    os.environ["FEMO_FACS_URL"] = "fixture"
    os.environ["FEMO_FER2013NEW"] = args.fer2013new

    import dagster as dg
    import duckdb

    from bench._report import machine, write_records, write_section
    from femo_pipeline.definitions import all_assets, all_checks, core_resources, web_resources
    from femo_pipeline.resources import FacsPageResource, FemoStorage, QualityThresholds

    if args.tiny:
        storage = FemoStorage(data_dir=str(data_dir), profile="demo")
    else:
        storage = FemoStorage(data_dir=str(data_dir), profile="real", fer2013_dir=args.fer2013)
    resources = {**core_resources(storage),
                 "facs_source": FacsPageResource(url="fixture"), "quality_thresholds": QualityThresholds(),
                 **web_resources()}
    keys = [k for a in all_assets for k in a.keys if k.to_user_string() not in SKIP]
    ops = dict(DEMO_OPS) if args.tiny else {}
    start = time.perf_counter()
    result = dg.materialize([*all_assets, *all_checks], selection=keys, resources=resources,
                            run_config={"ops": ops} if ops else None)
    assert result.success
    wall = time.perf_counter() - start
    with duckdb.connect(str(storage.warehouse_path), read_only=True) as con:
        verdicts = con.execute(
            "SELECT dataset, reference, variant, metric, reader, images, accuracy_reader, accuracy_against, "
            "difference_pp, ci_low_pp, ci_high_pp, verdict, declared FROM verdicts WHERE against = 'human' "
            "AND variant = 'seven_classes' ORDER BY dataset DESC, reference, metric, declared DESC, "
            "accuracy_reader DESC").df()
        panels = con.execute("SELECT p.* FROM panel_scores p JOIN warehouse_info w ON w.key = 'declared_model_run' "
                             "AND w.value = p.model_run_id ORDER BY reference, metric, k").df()
    report = json.loads((storage.root / "reports" / "benchmark.json").read_text())
    rows = "\n".join(
        f"| {r.dataset} | {r.reference} | {r.metric} | {r.reader}{' (declared)' if r.declared else ''} | "
        f"{r.images:,} | {100 * r.accuracy_reader:.1f} % | {100 * r.accuracy_against:.1f} % | "
        f"{r.difference_pp:+.1f} ({r.ci_low_pp:+.1f} to {r.ci_high_pp:+.1f}) | {r.verdict} |"
        for r in verdicts.itertuples())
    panel_rows = "\n".join(
        f"| {r.reference} | {r.metric} | {r.k} | {r.images:,} | {100 * r.panel_value:.1f} % | {100 * r.value:.1f} % | "
        f"{r.difference_pp:+.1f} ({r.ci_low_pp:+.1f} to {r.ci_high_pp:+.1f}) | {r.verdict} |"
        for r in panels.itertuples())
    spread = "\n".join(f"| {r['figure']} | {r['values']} | {r['mean']:.1f} | {_one_decimal(r['sd'])} | {r['n']} |"
                       for r in report.get("seed_spread", []))
    today, where = dt.date.today().isoformat(), machine()
    section = f"""<!-- answer:start -->
## The answer with the shipped models (`bench/answer.py`)

Measured {today} on {where}: the real pipeline from the FER-2013 folders to `benchmark_report` on a fresh
warehouse, with the femo models shipped in `femo_pipeline/shipped/` (no training of them), in {wall / 60:.1f} min.

**Headline**: {report["headline"]}

The declared reader against panels of k people (each image's votes split at random into the panel and the rest,
20 splits per image shared by every reader; both scored against the plurality of the rest, or the FER-2013 label;
leak-free test, seven-class votes, one view; paired bootstrap over images):

| reference | metric | people | images | panel | declared | difference, points (95 % CI) | verdict |
| --- | --- | --- | --- | --- | --- | --- | --- |
{panel_rows}

Every reader against one FER+ annotator on the same images and references (seven-class votes; accuracy is
vote-weighted, balanced recall the mean of the per-class recalls; rows ending in "views" average the face and its
mirror, the rest see one view):

| dataset | reference | metric | reader | images | reader | one annotator | difference, points (95 % CI) | verdict |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

The declared reader and the same recipe trained with other seeds (each seed's heads mixed by the rule chosen on
its own validation split):

| figure | per seed | mean | sd | seeds |
| --- | --- | --- | --- | --- |
{spread}
<!-- answer:end -->"""
    print(section)
    if args.tiny:
        return
    write_records(answer_records(verdicts, panels, wall, today, where))
    print(f"written to {write_section('answer', section)}")


def _one_decimal(x) -> str:
    return "-" if x is None or x != x else f"{x:.1f}"


def answer_records(verdicts, panels, wall: float, today: str, where: str) -> list[dict]:
    """The declared reader's headline figures as records (leak-free test, seven-class votes, one view)."""
    def record(name, value, unit):
        return {"name": name, "value": round(float(value), 4), "unit": unit, "machine": where, "date": today}

    out = [record("answer_pipeline_minutes_no_training", wall / 60, "minutes")]
    for r in verdicts.itertuples():
        if r.dataset == "leak-free test" and r.declared and r.reference == "ferplus":
            stem = "femo_minus_human" if r.metric == "accuracy" else "femo_minus_human_balanced_recall"
            bound = "" if r.metric != "accuracy" else "_ferplus_loo"
            out += [record(f"{stem}_ferplus_loo_difference", r.difference_pp / 100, "fraction"),
                    record(f"{stem}{bound}_ci_low", r.ci_low_pp / 100, "fraction"),
                    record(f"{stem}{bound}_ci_high", r.ci_high_pp / 100, "fraction")]
    for r in panels.itertuples():
        if r.reference == "ferplus" and r.metric == "accuracy":
            out += [record(f"femo_minus_panel{r.k}_ferplus_loo_difference", r.difference_pp / 100, "fraction"),
                    record(f"femo_minus_panel{r.k}_ferplus_loo_ci_low", r.ci_low_pp / 100, "fraction")]
    return out


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
