"""The femo code location: every asset, check, resource, job, schedule and sensor (workspace.yaml and `dg`)."""

import dagster as dg

from femo_pipeline import web_sources
from femo_pipeline.assets import (
    catalog,
    checks,
    contenders,
    eda,
    faces,
    facs,
    factors,
    humans,
    ingest,
    model_evaluation,
    model_training,
    report,
    serving,
    warehouse,
    web,
)
from femo_pipeline.automation import (
    femo_all_job,
    folder_ingest_job,
    raw_folder_sensor,
    web_refresh_job,
    web_refresh_schedule,
)
from femo_pipeline.io_managers import STAGED, StagedParquetIOManager
from femo_pipeline.resources import (
    FacsPageResource,
    FemoStorage,
    QualityThresholds,
    WarehouseResource,
    WebSearchResource,
    storage_from_env,
)

# Every setting is read from the FEMO_* environment when a run uses it, not here (see FemoStorage).
storage = storage_from_env()


def core_resources(femo_storage: FemoStorage) -> dict:
    """The resources every femo run needs for one data folder: storage, the warehouse and the staged IO manager.
    A storage whose data_dir is empty resolves the folder (and so the warehouse) at run time."""
    database = str(femo_storage.warehouse_path) if femo_storage.data_dir else ""
    return {"storage": femo_storage, "duckdb": WarehouseResource(database=database),
            STAGED: StagedParquetIOManager(storage=femo_storage)}


def web_resources(pixabay_url: str = web_sources.PIXABAY_URL, ddg_url: str = web_sources.DDG_URL, **politeness) -> dict:
    """The two search clients; the real endpoints unless a test passes local ones."""
    return {
        # Pixabay allows 100 requests per 60 s: 0.7 s apart stays under it
        "pixabay": WebSearchResource(base_url=pixabay_url, api_key_env="PIXABAY_API_KEY",
                                     **{"min_interval": 0.7, **politeness}),
        "duckduckgo": WebSearchResource(base_url=ddg_url, api_key_env="RAPIDAPI_KEY", **politeness),
    }


all_assets = dg.load_assets_from_modules([ingest, web, facs, catalog, faces, warehouse, eda, humans, model_training,
                                         model_evaluation, contenders, report, factors, serving])
all_checks = dg.load_asset_checks_from_modules([checks])

# Inside one run, DuckDB users go one at a time whatever the instance's pool settings are.
executor = dg.multiprocess_executor.configured(
    {"tag_concurrency_limits": [{"key": "femo/writer", "value": "duckdb", "limit": 1}]}
)


defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[femo_all_job, web_refresh_job, folder_ingest_job],
    schedules=[web_refresh_schedule],
    sensors=[raw_folder_sensor],
    resources={
        **core_resources(storage),
        "facs_source": FacsPageResource(),  # FEMO_FACS_URL is read at run time
        "quality_thresholds": QualityThresholds(),
        **web_resources(),
    },
    executor=executor,
)
