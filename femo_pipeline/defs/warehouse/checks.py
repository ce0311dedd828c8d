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


def warehouse_check(name: str, asset, rule, description: str, blocking: bool = False) -> dg.AssetChecksDefinition:
    """An asset check that runs a quality rule, rule(connection, thresholds) -> (passed, details), on the
    warehouse in the duckdb pool: blocking (ERROR) where bad data must stop the run, WARN otherwise."""

    @dg.asset_check(name=name, asset=asset, blocking=blocking, pool="duckdb", description=description)
    def _check(duckdb: DuckDBResource, quality_thresholds: QualityThresholds) -> dg.AssetCheckResult:
        with duckdb.get_connection() as con:
            return _result(rule(con, quality_thresholds), dg.AssetCheckSeverity.ERROR if blocking else WARN)

    return _check


warehouse_checks = [
    warehouse_check("images_keys_valid", images, lambda con, _: quality.image_keys(con),
                    "Image ids are unique, every source and emotion id exists, every image has its pixels.",
                    blocking=True),
    warehouse_check("images_have_labels", images, lambda con, _: quality.image_labels(con),
                    "No image without an emotion label or a source.", blocking=True),
    warehouse_check("images_train_duplicates", images, lambda con, _: quality.train_duplicates(con),
                    "WARN: byte-identical files inside a training split (FER-2013 has many; the sample drops them)."),
    warehouse_check("images_class_balance", images,
                    lambda con, limits: quality.class_balance(con, limits.max_imbalance_ratio),
                    "WARN: per source, the largest emotion class is at most max_imbalance_ratio times the smallest."),
    warehouse_check("sample_covers_every_emotion", balanced_sample, lambda con, _: quality.sample_coverage(con),
                    "Every sampled source has all seven basic emotions in the sample.", blocking=True),
    warehouse_check("sample_has_no_duplicates", balanced_sample, lambda con, _: quality.sample_duplicates(con),
                    "No two sampled images share their bytes (no leak between what trains and what tests).",
                    blocking=True),
]


@dg.asset_check(asset=image_catalog)
def catalog_quarantine_share(image_catalog: StagedTable, quality_thresholds: QualityThresholds) -> dg.AssetCheckResult:
    """WARN: at most max_quarantine_share of the files are quarantined."""
    con = duckdb_lib.connect()
    con.register("c", image_catalog.read(["status"]))
    return _result(quality.quarantine_share(con, "c", quality_thresholds.max_quarantine_share), WARN)


class AccuracyFloorConfig(dg.Config):
    floor: float = Field(default=0.55, ge=0, le=1, description="Lowest validation accuracy (0-1) of the declared femo model "
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
