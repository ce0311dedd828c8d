"""The answer: every reader and humans on the same test images, paired verdicts, tables in DuckDB, the report."""

import datetime as dt
import json

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from femo_pipeline import benchmark, fair
from femo_pipeline import warehouse as wh
from femo_pipeline.defs._meta import md_table, png_md, warehouse_tables
from femo_pipeline.defs.model._bench import FER2013, MODEL_WRITER, json_value, latest_metadata, read_images, skipped
from femo_pipeline.defs.model.contenders import contender_predictions
from femo_pipeline.defs.model.factors import data_factors_table
from femo_pipeline.defs.model.humans import human_votes
from femo_pipeline.defs.model.model_evaluation import model_evaluation
from femo_pipeline.files import write_text_atomic
from femo_pipeline.resources import FemoStorage

TABLES = ("benchmark_scores", "verdicts", "verdicts_per_class")


class ReportConfig(dg.Config):
    n_boot: int = Field(default=2000, description="Paired bootstrap resamples (shared by every comparison).")
    seed: int = Field(default=0, description="Bootstrap seed.")


def lineage_runs(context, con, synthetic_profile: bool) -> tuple[pd.DataFrame, dict[str, str]]:
    """The model runs the latest model_evaluation and contender_predictions recorded (the current lineage),
    less any trained on synthetic data when the profile is real (a demo-trained model is never reported as real;
    a real model may be shown on demo images, whose report says it is synthetic)."""
    ids, refused = [], {}
    for asset in ("model_evaluation", "contender_predictions"):
        meta = latest_metadata(context, asset) or {}
        ids += json_value(meta.get("model_run_ids", []))
        refused.update(json_value(meta.get("not_used", meta.get("not_run", {}))) or {})
    runs = con.execute("SELECT * FROM model_runs WHERE list_contains(?, id) ORDER BY origin DESC, reader",
                       [ids]).df()
    wrong = runs["synthetic"].astype(bool) & (not synthetic_profile)
    for reader in runs.loc[wrong, "reader"]:
        refused[reader] = "trained on SYNTHETIC demo data: never reported under the real profile"
    return runs[~wrong].reset_index(drop=True), refused


@dg.asset(deps=[model_evaluation, contender_predictions, human_votes, data_factors_table],
          kinds={"markdown", "json", "duckdb"},
          metadata=warehouse_tables("verdicts", "benchmark_scores", "verdicts_per_class", "disagreements"),
          **MODEL_WRITER)
def benchmark_report(context: dg.AssetExecutionContext, config: ReportConfig, duckdb: DuckDBResource,
                     storage: FemoStorage) -> dg.MaterializeResult:
    """The answer: femo's declared model, other readers and FER+ humans on the same test images, paired verdicts."""
    from femo_pipeline import reports

    with duckdb.get_connection() as con:
        wh.ensure_schema(con)
        runs, not_run = lineage_runs(context, con, storage.is_demo)
        test = read_images(con, FER2013, "AND i.split = 'test'", pixels=False)
        preds = con.execute("SELECT model_run_id, image_id, emotion_id FROM predictions WHERE list_contains(?, "
                            "model_run_id)", [list(runs["id"])]).df()
        votes = con.execute("SELECT * EXCLUDE (fer2013new_rows) FROM human_votes").df()
        declared_id = [v for (v,) in con.execute(
            "SELECT value FROM warehouse_info WHERE key = 'declared_model_run'").fetchall()] or [""]
        declared_id = declared_id[0]
        if len(votes) and (votes["synthetic"].astype(bool) != storage.is_demo).any():
            not_run["FER+ votes"] = "the votes table holds votes of the other profile: materialize human_votes"
            votes = votes.iloc[0:0]
        predictions, run_of = {}, {}
        for run in runs.itertuples(index=False):
            p = preds[preds["model_run_id"] == run.id].set_index("image_id")["emotion_id"]
            if not test["id"].isin(p.index).all():
                not_run[run.reader] = "its predictions do not cover the current test images"
                continue
            predictions[run.reader] = p.loc[test["id"]].to_numpy(int)
            run_of[run.reader] = run.id
        runs = runs[runs["reader"].isin(predictions)]
        declared = next((r for r, i in run_of.items() if i == declared_id), None)
        if test.empty:
            return skipped(context, "benchmark_report", "no FER-2013 test images in the warehouse")
        tables = benchmark.benchmark_tables(test, votes.drop(columns="synthetic") if len(votes) else None,
                                            predictions, run_of, declared, config.n_boot, config.seed)
        factors = con.execute("SELECT * FROM data_factors ORDER BY label_source, without_duplicates, fraction, "
                              "reference").df()
        for name in TABLES:
            columns = [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                                                 "AND schema_name = 'main' ORDER BY column_index", [name]).fetchall()]
            frame = tables[name]
            wh.replace_rows(con, name, frame.reindex(columns=columns))
    report = build_report(tables, runs, declared, not_run, storage.is_demo)
    if len(factors):
        if (factors["synthetic"].astype(bool) != storage.is_demo).any():
            report["not_run"]["data_factors"] = "the data_factors table holds runs of the other profile"
        else:
            report["data_factors"] = factors.drop(columns=["synthetic"]).to_dict("records")
            report["data_factors_png"] = reports.factors_png(
                factors, storage.path("reports", "data_factors.png"),
                "What affects the model" + (" (SYNTHETIC)" if storage.is_demo else "")).name
    plot = None
    pc = tables["verdicts_per_class"]
    if declared and len(pc):
        dataset, reference, variant = benchmark.HEADLINE
        sel = pc[(pc["dataset"] == dataset) & (pc["reference"] == reference) & (pc["variant"] == variant)
                 & (pc["reader"] == declared)]
        plot = reports.per_class_png(sel, storage.path("reports", "benchmark_per_class.png"),
                                     f"{declared} vs one human, leak-free test, FER+ reference"
                                     + (" (SYNTHETIC)" if storage.is_demo else ""))
        report["per_class"] = sel.to_dict("records")
        report["per_class_png"] = plot.name
    md = reports.render_markdown(report)
    write_text_atomic(json.dumps(report, indent=1, default=_json), storage.path("reports", "benchmark.json"))
    md_path = write_text_atomic(md, storage.path("reports", "benchmark.md"))
    html_path = write_text_atomic(reports.to_html(md), storage.path("reports", "benchmark.html"))
    context.log.info(report["headline"])
    return dg.MaterializeResult(metadata={
        "headline": report["headline"],
        "report": dg.MetadataValue.md(md),
        "per_class": png_md(plot, "per-class recall") if plot else "no declared model or no votes",
        **({"data_factors": png_md(storage.path("reports", report["data_factors_png"]), "accuracy vs training images")}
           if report.get("data_factors_png") else {}),
        "verdicts": md_table(tables["verdicts"].drop(columns=["model_run_id"], errors="ignore"), 40),
        "rows": dg.MetadataValue.json({name: len(tables[name]) for name in TABLES}),
        "declared_model_run": declared_id if declared else "",
        "markdown_file": dg.MetadataValue.path(str(md_path)),
        "html_file": dg.MetadataValue.path(str(html_path)),
        "synthetic": storage.is_demo,
    })


def _json(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return value.isoformat()
    return str(value)


def headline(verdicts: pd.DataFrame, declared: str | None) -> str:
    dataset, reference, variant = benchmark.HEADLINE
    if declared is None:
        return "No verdict: no femo model (neither trained in this lineage nor shipped) was scored."
    if not len(verdicts):
        return "No verdict: no FER+ human votes exist for these test images."
    row = verdicts[(verdicts["dataset"] == dataset) & (verdicts["reference"] == reference)
                   & (verdicts["variant"] == variant) & (verdicts["reader"] == declared)
                   & (verdicts["against"] == fair.HUMAN)]
    if row.empty:
        return "No verdict: the declared model has no headline comparison."
    r = row.iloc[0]
    return (f"On the {int(r['images'])} leak-free test images, against the FER+ crowd (seven classes), "
            f"{benchmark.sentence(r, declared)}.")


def build_report(tables: dict, runs: pd.DataFrame, declared: str | None, not_run: dict, synthetic: bool) -> dict:
    verdicts = tables["verdicts"]
    return {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "synthetic": synthetic,
        "headline": headline(verdicts, declared),
        "declared": declared,
        "datasets": benchmark.DATASETS,
        "verdicts": verdicts.to_dict("records"),
        "scores": tables["benchmark_scores"].to_dict("records"),
        "model_runs": runs.drop(columns=["config"]).to_dict("records"),
        "not_run": not_run,
    }
