"""Asset checks: blocking where bad data must stop the run, WARN where an expectation is soft."""

import dagster as dg
import duckdb as duckdb_lib
import pyarrow.parquet as pq
from dagster_duckdb import DuckDBResource

from femo_pipeline import quality
from femo_pipeline.assets.catalog import image_catalog
from femo_pipeline.assets.faces import balanced_sample
from femo_pipeline.assets.ingest import staging_path
from femo_pipeline.assets.warehouse import images
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
def catalog_quarantine_share(storage: FemoStorage, quality_thresholds: QualityThresholds) -> dg.AssetCheckResult:
    """WARN: at most max_quarantine_share of the files are quarantined."""
    con = duckdb_lib.connect()
    con.register("c", pq.read_table(staging_path(storage, "image_catalog"), columns=["status"]))
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
