"""The femo code location: every asset, resource and job (loaded by workspace.yaml and `dg`)."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from femo_pipeline.assets import catalog, ingest, serving, warehouse
from femo_pipeline.resources import storage_from_env

storage = storage_from_env()

all_assets = dg.load_assets_from_modules([ingest, catalog, warehouse, serving])

# Inside one run, DuckDB users go one at a time whatever the instance's pool settings are.
executor = dg.multiprocess_executor.configured(
    {"tag_concurrency_limits": [{"key": "femo/writer", "value": "duckdb", "limit": 1}]}
)

femo_all_job = dg.define_asset_job(
    "femo_all", selection=dg.AssetSelection.all(), description="Materialize every femo asset."
)

defs = dg.Definitions(
    assets=all_assets,
    jobs=[femo_all_job],
    resources={
        "storage": storage,
        "duckdb": DuckDBResource(database=str(storage.warehouse_path)),
    },
    executor=executor,
)
