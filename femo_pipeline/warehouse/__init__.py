"""DuckDB warehouse: schema, idempotent loads and the study's queries.

Pure package (duckdb, pyarrow, pandas; no Dagster). Every writer is delete-then-insert or upsert inside one
transaction, so re-running a load gives the same rows.

The package re-exports its public names (`warehouse.ensure_schema`, `warehouse.replace_images`, ...); the code
lives in schema (SQL files, version, fingerprint, descriptions, study queries, image ids, transactions) and
loads (the writers). A test that patches apply_schema or SCHEMA_VERSION patches femo_pipeline.warehouse.schema,
where the writers look them up.
"""

from femo_pipeline.warehouse.loads import (
    MODEL_RUN_COLUMNS,
    PROBABILITY_COLUMNS,
    PixelPairingError,
    record_model_run,
    replace_facs_links,
    replace_facs_units,
    replace_images,
    replace_predictions,
    replace_rows,
    replace_survey,
    replace_tables,
    table_counts,
    upsert_data_sources,
    upsert_emotions,
)
from femo_pipeline.warehouse.schema import (
    SCHEMA_VERSION,
    apply_schema,
    column_docs,
    ensure_schema,
    image_id,
    schema_fingerprint,
    set_info,
    sql_text,
    study_queries,
    transaction,
)

__all__ = [
    "MODEL_RUN_COLUMNS", "PROBABILITY_COLUMNS", "SCHEMA_VERSION", "PixelPairingError",
    "apply_schema", "column_docs", "ensure_schema", "image_id", "record_model_run", "replace_facs_links",
    "replace_facs_units", "replace_images", "replace_predictions", "replace_rows", "replace_survey",
    "replace_tables",
    "schema_fingerprint", "set_info", "sql_text", "study_queries", "table_counts", "transaction",
    "upsert_data_sources", "upsert_emotions",
]
