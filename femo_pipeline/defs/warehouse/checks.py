"""Asset checks: blocking where bad data must stop the run, WARN where an expectation is soft."""

import dagster as dg
import duckdb as duckdb_lib
from dagster_duckdb import DuckDBResource
from pydantic import Field

from femo_pipeline import benchmark, quality
from femo_pipeline.defs.faces.catalog import image_catalog
from femo_pipeline.defs.faces.faces import balanced_sample
from femo_pipeline.defs.model.predictions import predictions
from femo_pipeline.defs.warehouse.warehouse import images
from femo_pipeline.io_managers import StagedTable
from femo_pipeline.resources import FemoStorage, QualityThresholds

WARN = dg.AssetCheckSeverity.WARN


def _result(outcome: tuple[bool, dict], severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    passed, details = outcome
    return dg.AssetCheckResult(passed=passed, severity=severity,
                               metadata={k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v
                                         for k, v in details.items()})


@dg.asset_check(asset=images, blocking=True, pool="duckdb")
def images_keys_valid(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """Image ids are unique, every source and emotion id exists, every image has its pixels."""
    with duckdb.get_connection() as con:
        return _result(quality.image_keys(con))


@dg.asset_check(asset=images, blocking=True, pool="duckdb")
def images_have_labels(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """No image without an emotion label or a source."""
    with duckdb.get_connection() as con:
        return _result(quality.image_labels(con))


@dg.asset_check(asset=images, pool="duckdb")
def images_train_duplicates(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """WARN: byte-identical files inside a training split (FER-2013 has many; the sample drops them)."""
    with duckdb.get_connection() as con:
        return _result(quality.train_duplicates(con), WARN)


@dg.asset_check(asset=images, pool="duckdb")
def images_class_balance(duckdb: DuckDBResource, quality_thresholds: QualityThresholds) -> dg.AssetCheckResult:
    """WARN: per source, the largest emotion class is at most max_imbalance_ratio times the smallest."""
    with duckdb.get_connection() as con:
        return _result(quality.class_balance(con, quality_thresholds.max_imbalance_ratio), WARN)


@dg.asset_check(asset=image_catalog)
def catalog_quarantine_share(image_catalog: StagedTable, quality_thresholds: QualityThresholds) -> dg.AssetCheckResult:
    """WARN: at most max_quarantine_share of the files are quarantined."""
    con = duckdb_lib.connect()
    con.register("c", image_catalog.read(["status"]))
    return _result(quality.quarantine_share(con, "c", quality_thresholds.max_quarantine_share), WARN)


@dg.asset_check(asset=balanced_sample, blocking=True, pool="duckdb")
def sample_covers_every_emotion(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """Every sampled source has all seven basic emotions in the sample."""
    with duckdb.get_connection() as con:
        return _result(quality.sample_coverage(con))


@dg.asset_check(asset=balanced_sample, blocking=True, pool="duckdb")
def sample_has_no_duplicates(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """No two sampled images share their bytes (no leak between what trains and what tests)."""
    with duckdb.get_connection() as con:
        return _result(quality.sample_duplicates(con))


class AccuracyFloorConfig(dg.Config):
    floor: float = Field(default=0.55, description="Lowest validation accuracy (0-1) of the declared femo model "
                                                   "for the report to publish (real profile).")


@dg.asset_check(asset=predictions, blocking=True, pool="duckdb", op_tags={"femo/writer": "duckdb"})
def declared_model_accuracy_floor(context: dg.AssetCheckExecutionContext, config: AccuracyFloorConfig,
                                  duckdb: DuckDBResource, storage: FemoStorage) -> dg.AssetCheckResult:
    """The declared femo model's validation accuracy is at least the floor before the report publishes (real)."""
    with duckdb.get_connection() as con:
        row = con.execute("SELECT r.reader, r.validation_accuracy FROM model_runs r JOIN warehouse_info w "
                          "ON w.key = 'declared_model_run' AND w.value = r.id").fetchall()
        row = row[0] if row else None
    return _result(benchmark.accuracy_floor(row, config.floor, storage.is_demo))
