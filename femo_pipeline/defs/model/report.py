"""The answer: every reader and humans on the same test images, paired verdicts, tables in DuckDB, the report."""

import datetime as dt
import json

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from femo_pipeline import answer, benchmark, factor_grid, other_faces, report_text
from femo_pipeline import warehouse as wh
from femo_pipeline.defs._meta import percent_table, png_md, table_schema, warehouse_tables
from femo_pipeline.defs.model._bench import EXTRA, FER2013, KAGGLE, MODEL_WRITER, read_images, skipped
from femo_pipeline.defs.model.factors import data_factors_table
from femo_pipeline.defs.model.humans import human_votes
from femo_pipeline.defs.model.predictions import predictions
from femo_pipeline.files import write_text_atomic
from femo_pipeline.resources import FemoStorage

TABLES = ("benchmark_scores", "verdicts", "verdicts_per_class", "panel_scores")
OTHER_TABLES = tuple(t for t in TABLES if t != "verdicts")  # shown after the answer (verdicts is the answer)


class ReportConfig(dg.Config):
    n_boot: int = Field(default=2000, ge=1, description="Paired bootstrap resamples (shared by every comparison).")
    seed: int = Field(default=0, ge=0, description="Bootstrap seed.")


def lineage_runs(con, synthetic_profile: bool) -> tuple[pd.DataFrame, dict[str, str]]:
    """The model runs the latest `predictions` step wrote (the current lineage, recorded in warehouse_info), less
    any trained on synthetic data when the profile is real (a demo-trained model is never reported as real; a real
    model may be shown on demo images, whose report says it is synthetic)."""
    info = dict(con.execute("SELECT key, value FROM warehouse_info WHERE key IN ('scored_model_runs', "
                            "'not_scored')").fetchall())
    ids = json.loads(info.get("scored_model_runs") or "[]")
    refused = json.loads(info.get("not_scored") or "{}")
    runs = con.execute("SELECT * FROM model_runs WHERE list_contains(?, id)", [ids]).df()
    runs = runs.set_index("id").loc[[i for i in ids if i in set(runs["id"])]].reset_index()
    wrong = runs["synthetic"].astype(bool) & (not synthetic_profile)
    for reader in runs.loc[wrong, "reader"]:
        refused[reader] = "trained on SYNTHETIC demo data: never reported under the real profile"
    return runs[~wrong].reset_index(drop=True), refused


@dg.asset(deps=[predictions, human_votes, data_factors_table],
          kinds={"markdown", "json", "duckdb"},
          metadata=warehouse_tables("verdicts", "benchmark_scores", "verdicts_per_class", "panel_scores",
                                    "disagreements", other_schemas=False),
          **MODEL_WRITER)
def benchmark_report(context: dg.AssetExecutionContext, config: ReportConfig, duckdb: DuckDBResource,
                     storage: FemoStorage) -> dg.MaterializeResult:
    """The answer: femo's declared model, other readers and FER+ humans on the same test images, paired verdicts."""
    from femo_pipeline import reports

    with duckdb.get_connection() as con:
        wh.ensure_schema(con)
        runs, not_run = lineage_runs(con, storage.is_demo)
        test = read_images(con, FER2013, "AND i.split = 'test'", pixels=False)
        kaggle, extra = (read_images(con, s, pixels=False, seven=False) for s in (KAGGLE, EXTRA))
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
        factors = con.execute("SELECT * FROM data_factors ORDER BY cell, reference, metric").df()
    if test.empty:
        return skipped(context, "benchmark_report", "no FER-2013 test images in the warehouse")
    # the statistics run with the warehouse file closed; the tables are written in a second short connection
    tables = benchmark.benchmark_tables(test, votes.drop(columns="synthetic") if len(votes) else None,
                                        predictions, run_of, declared, config.n_boot, config.seed)
    others, sets = other_faces.tables(kaggle, extra, preds, run_of, set(benchmark.DATASETS), config.n_boot,
                                      config.seed)
    tables["benchmark_scores"] = pd.concat([tables["benchmark_scores"], others], ignore_index=True)
    with duckdb.get_connection() as con:
        frames = {}
        for name in TABLES:
            columns = [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                                                 "AND schema_name = 'main' ORDER BY column_index", [name]).fetchall()]
            frames[name] = tables[name].reindex(columns=columns)
        wh.replace_tables(con, frames)  # one transaction: never the scores of one run beside the verdicts of another
    report = build_report(tables, runs, declared, not_run, storage.is_demo)
    report["other_faces"] = {"sets": sets, "scores": others.to_dict("records")}
    suffix = " (SYNTHETIC)" if storage.is_demo else ""
    if len(factors):
        if (factors["synthetic"].astype(bool) != storage.is_demo).any():
            report["not_run"]["data_factors"] = "the data_factors table holds cells of the other profile"
        else:
            curves, missing = factor_grid.aggregate(factor_grid.records_from_rows(factors))
            report["data_factors"] = {"curves": curves.to_dict("records"), "missing": missing,
                                      "cells": int(factors["cell"].nunique()),
                                      "devices": sorted(set(factors["device_text"].dropna()))}
            report["data_factors_png"] = reports.factors_png(
                curves, storage.path("reports", "data_factors.png"), "What affects the model" + suffix).name
    plots = {}
    pc = tables["verdicts_per_class"]
    if declared and len(pc):
        dataset, reference, variant = benchmark.HEADLINE
        sel = pc[(pc["dataset"] == dataset) & (pc["reference"] == reference) & (pc["variant"] == variant)
                 & (pc["reader"] == declared)]
        plots["per_class"] = reports.per_class_png(sel, storage.path("reports", "benchmark_per_class.png"),
                                                   f"{declared} vs one human, leak-free test, FER+ reference{suffix}")
        report["per_class"] = sel.to_dict("records")
        report["per_class_png"] = plots["per_class"].name
    panel = tables["panel_scores"]
    if len(panel):
        plots["panels"] = reports.panels_png(panel, storage.path("reports", "benchmark_panels.png"),
                                             "Accuracy against panel size, leak-free test, FER+ reference" + suffix)
        report["panels_png"] = plots["panels"].name
    md = report_text.render_markdown(report)
    write_text_atomic(json.dumps(report, indent=1, default=_json), storage.path("reports", "benchmark.json"))
    md_path = write_text_atomic(md, storage.path("reports", "benchmark.md"))
    html_path = write_text_atomic(reports.to_html(md), storage.path("reports", "benchmark.html"))
    context.log.info(report["headline"])
    verdicts = tables["verdicts"]
    shown = verdicts[verdicts["dataset"] == benchmark.HEADLINE[0]] if len(verdicts) else verdicts
    return dg.MaterializeResult(metadata={
        "headline": dg.MetadataValue.md(f"**{report['headline']}**"),
        **({"panels": png_md(plots["panels"], "accuracy against panel size")} if "panels" in plots else {}),
        **({"per_class": png_md(plots["per_class"], "per-class recall")} if "per_class" in plots else {}),
        "verdicts": percent_table(
            shown.reindex(columns=["reader", "reference", "variant", "metric", "accuracy_reader", "accuracy_against",
                                   "difference_pp", "ci_low_pp", "ci_high_pp", "verdict"]),
            percent=("accuracy_reader", "accuracy_against"), points=("difference_pp", "ci_low_pp", "ci_high_pp")),
        "benchmark_scores": percent_table(
            tables["benchmark_scores"].reindex(columns=["dataset", "reference", "variant", "reader", "metric",
                                                        "value", "ci_low", "ci_high", "n"]),
            percent=("value", "ci_low", "ci_high")),
        **({"data_factors": png_md(storage.path("reports", report["data_factors_png"]), "what affects the model")}
           if report.get("data_factors_png") else {}),
        "report": dg.MetadataValue.md(md),
        # the other tables it writes, with their columns, after the answer (not in the definition, which the UI
        # shows first)
        **{f"columns of {t}": table_schema(t) for t in OTHER_TABLES},
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


def build_report(tables: dict, runs: pd.DataFrame, declared: str | None, not_run: dict, synthetic: bool) -> dict:
    verdicts, panel = tables["verdicts"], tables["panel_scores"]
    spread = answer.seed_spread(verdicts, panel, declared)
    return {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "synthetic": synthetic,
        "headline": answer.headline(verdicts, panel, declared, synthetic, spread),
        "declared": declared,
        "datasets": benchmark.DATASETS,
        "verdicts": verdicts.to_dict("records"),
        "scores": tables["benchmark_scores"].to_dict("records"),
        "panels": panel.to_dict("records"),
        "views": answer.views_table(verdicts).to_dict("records"),
        "seed_spread": spread.to_dict("records"),
        "model_runs": runs.drop(columns=["config"]).to_dict("records"),
        "not_run": not_run,
    }
