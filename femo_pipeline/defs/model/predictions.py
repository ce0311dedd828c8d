"""Every reader's answers in the warehouse: what model_evaluation and contender_predictions computed, written in
one short pooled step."""

import json

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from femo_pipeline import warehouse as wh
from femo_pipeline.defs._meta import md_table, warehouse_tables
from femo_pipeline.defs.model._bench import MODEL_WRITER


@dg.asset(kinds={"duckdb"}, metadata=warehouse_tables("predictions", "model_runs"), **MODEL_WRITER)
def predictions(context: dg.AssetExecutionContext, model_evaluation: dict, contender_predictions: dict,
                duckdb: DuckDBResource) -> dg.MaterializeResult:
    """femo's and the public models' predictions and model runs -> warehouse (predictions, model_runs), with the
    declared reader and the readers this lineage scored (warehouse_info), which the report reads."""
    entries = [*model_evaluation["entries"], *contender_predictions["entries"]]
    not_used = {**model_evaluation["not_used"], **contender_predictions["not_used"]}
    with duckdb.get_connection() as con:
        wh.ensure_schema(con)
        for run, ids, probs in entries:
            wh.record_model_run(con, {**run, "dagster_run_id": run.get("dagster_run_id") or context.run_id})
            wh.replace_predictions(con, run["id"], ids, probs)
        wh.set_info(con, {"declared_model_run": model_evaluation["declared"] or "",
                          "scored_model_runs": json.dumps([run["id"] for run, _, _ in entries]),
                          "not_scored": json.dumps(not_used)})
    table = pd.DataFrame([{"reader": run["reader"], "model_run_id": run["id"], "origin": run["origin"],
                           "images": len(ids)} for run, ids, _ in entries])
    return dg.MaterializeResult(metadata={
        "readers": md_table(table, 40), "declared_model_run": model_evaluation["declared"] or "",
        "not_scored": dg.MetadataValue.json(not_used),
    })
