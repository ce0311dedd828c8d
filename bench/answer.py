"""Benchmark: the answer on real FER-2013 + FER+ with the models shipped in the package (no training).

Materializes the real pipeline from the FER-2013 folders to benchmark_report on a fresh data folder (every asset
but emotion_model, data_factors and the web sources; --factors adds data_factors), so model_evaluation uses the shipped femo models, then
prints the leak-free paired verdicts from the warehouse's `verdicts` table and writes them to
docs/benchmarks.md ('answer' markers) and docs/benchmarks.json.

    .venv/bin/python bench/answer.py [--fer2013 ../shared/datasets/fer2013] [--data-dir DIR] [--tiny]

--tiny: the demo profile on a few hundred generated images, nothing written (a test runs it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SKIP = {"emotion_model", "data_factors", "pixabay_hits", "pixabay_images", "duckduckgo_hits", "duckduckgo_images"}
DEMO_OPS = {"demo_source_files": {"config": {"fer_train_per_class": 8, "fer_test_per_class": 4,
                                             "kaggle_per_class": 5, "survey_rows": 300}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fer2013", default=str(ROOT.parent / "shared" / "datasets" / "fer2013"))
    parser.add_argument("--fer2013new", default=str(ROOT.parent / "shared" / "datasets" / "ferplus" / "fer2013new.csv"))
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--factors", action="store_true",
                        help="also run data_factors (training-set size and label quality; about 50 min on 2 cores) "
                             "and write its section ('factors' markers)")
    parser.add_argument("--factors-epochs-at-full", type=float, default=0,
                        help="data_factors' compute per run in epochs of the whole of Training (0: its default)")
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
    skip = (SKIP | {"data_factors_table"}) - ({"data_factors", "data_factors_table"} if args.factors else set())
    keys = [k for a in all_assets for k in a.keys if k.to_user_string() not in skip]
    ops = dict(DEMO_OPS) if args.tiny else {}
    if args.factors and args.factors_epochs_at_full:
        ops["data_factors"] = {"config": {"epochs_at_full": args.factors_epochs_at_full}}
    start = time.perf_counter()
    result = dg.materialize([*all_assets, *all_checks], selection=keys, resources=resources,
                            run_config={"ops": ops} if ops else None)
    assert result.success
    wall = time.perf_counter() - start
    factors_s = sum(e.event_specific_data.duration_ms / 1000 for e in result.all_events
                    if e.is_step_success and e.step_key == "data_factors")
    wall -= factors_s  # the answer's own time; data_factors is reported in its section
    with duckdb.connect(str(storage.warehouse_path), read_only=True) as con:
        verdicts = con.execute(
            "SELECT dataset, reference, variant, reader, images, accuracy_reader, accuracy_against, difference_pp, "
            "ci_low_pp, ci_high_pp, verdict, declared FROM verdicts WHERE against = 'human' "
            "ORDER BY dataset DESC, reference, variant, declared DESC, accuracy_reader DESC").df()
    rows = "\n".join(
        f"| {r.dataset} | {r.reference} | {r.variant} | {r.reader}{' (declared)' if r.declared else ''} | "
        f"{r.images:,} | {100 * r.accuracy_reader:.1f} % | {100 * r.accuracy_against:.1f} % | "
        f"{r.difference_pp:+.1f} ({r.ci_low_pp:+.1f} to {r.ci_high_pp:+.1f}) | {r.verdict} |"
        for r in verdicts.itertuples())
    today, where = dt.date.today().isoformat(), machine()
    section = f"""<!-- answer:start -->
## The answer with the shipped models (`bench/answer.py`)

Measured {today} on {where}: the real pipeline from the FER-2013 folders to `benchmark_report` on a fresh
warehouse, with the femo models shipped in `femo_pipeline/shipped/` (no training of them), in {wall / 60:.1f} min.
Every model against one FER+ annotator on the same images and references (paired bootstrap over images; points
= model minus human; the declared model is the one the report's headline uses):

| dataset | reference | variant | reader | images | reader | one annotator | difference, points (95 % CI) | verdict |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}
<!-- answer:end -->"""
    print(section)
    if args.tiny:
        if args.factors:
            factors_section(storage.warehouse_path, today, where, write=False)
        return
    records = []
    for r in verdicts.itertuples():
        if r.dataset == "leak-free test" and r.variant == "seven_classes" and r.declared:
            stem = f"declared_vs_human_{r.reference}_leakfree"
            records += [{"name": f"{stem}_difference_points", "value": round(float(r.difference_pp), 2),
                         "unit": "points", "machine": where, "date": today},
                        {"name": f"{stem}_ci_low_points", "value": round(float(r.ci_low_pp), 2), "unit": "points",
                         "machine": where, "date": today}]
    records.append({"name": "answer_pipeline_minutes_no_training", "value": round(wall / 60, 2), "unit": "minutes",
                    "machine": where, "date": today})
    if args.factors:
        records += factors_section(storage.warehouse_path, today, where)
    write_records(records)
    print(f"written to {write_section('answer', section)}")


def factors_section(warehouse, today: str, where: str, write: bool = True) -> list[dict]:
    """The data_factors table as a 'factors' section of docs/benchmarks.md; its records."""
    import duckdb

    from bench._report import write_section
    from femo_pipeline.defs.model.factors import DataFactorsConfig
    from femo_pipeline.reports import factors_table

    with duckdb.connect(str(warehouse), read_only=True) as con:
        f = con.execute("SELECT * FROM data_factors ORDER BY label_source, without_duplicates, fraction, "
                        "reference").df()
    if f.empty:
        print("data_factors wrote no rows (skipped?): the 'factors' section and records are left as they were")
        return []
    runs = f.drop_duplicates(["label_source", "fraction", "without_duplicates"])
    table = "\n".join(factors_table(f)).strip()
    section = f"""<!-- factors:start -->
## What affects the model (`data_factors`, `bench/answer.py --factors`)

Measured {today} on {where}: {len(runs)} runs of femo's recipe at width {DataFactorsConfig().width}, each seeing the same number of
training images (epochs = epochs_at_full / share), {runs['seconds'].sum() / 60:.1f} training minutes in all. FER+
labels are the crowd's plurality (seven classes) on the same drawn images; "no duplicates" leaves out every image
with a byte copy and every conflicting one. Scored on the leak-free test images against each reference; the
intervals cover the test images' sampling only (one training seed per run, so run-to-run training noise is not in
them).

{table}
<!-- factors:end -->"""
    print(section)
    if write:
        print(f"written to {write_section('factors', section)}")
    out = [{"name": "data_factors_training_minutes_cpu", "value": round(float(runs["seconds"].sum()) / 60, 1),
            "unit": "minutes", "machine": where, "date": today}]
    for r in f.itertuples():
        name = (f"data_factors_{r.label_source}_{round(100 * r.fraction)}pct"
                f"{'_nodup' if r.without_duplicates else ''}_leakfree_accuracy_vs_{r.reference}")
        out.append({"name": name, "value": round(float(r.accuracy), 4), "unit": "fraction", "machine": where,
                    "date": today})
    return out


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
