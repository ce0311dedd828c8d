"""Serving assets: the read-only warehouse snapshot that the HTTP API reads."""

import os

import dagster as dg
from dagster_duckdb import DuckDBResource

from femo_pipeline import serving
from femo_pipeline.defs.warehouse.warehouse import WRITER, erd, images, study_query_results, survey_responses
from femo_pipeline.resources import FemoStorage


@dg.asset(kinds={"duckdb"}, deps=[images, survey_responses, study_query_results, erd, dg.AssetKey("balanced_sample"),
                                  dg.AssetKey("benchmark_report")],
          **{**WRITER, "group_name": "serving"})
def serving_snapshot(context: dg.AssetExecutionContext, duckdb: DuckDBResource, storage: FemoStorage) -> dg.MaterializeResult:
    """A CHECKPOINTed copy of the warehouse, renamed atomically into place, that the HTTP API reads read-only."""
    target = storage.serving_path
    with duckdb.get_connection() as con:
        counts = serving.publish_snapshot(con, storage.warehouse_path, target)
    copy = counts.pop("path")
    context.log.info(f"serving snapshot {target} -> {copy}: {counts}")
    return dg.MaterializeResult(metadata={
        "snapshot": dg.MetadataValue.path(str(target)),
        "copy": dg.MetadataValue.path(copy),
        "bytes": os.path.getsize(copy),
        **{f"rows_{k}": v for k, v in counts.items()},
        "serve_with": "python -m femo_pipeline serve",
    })
