"""The femo code location (workspace.yaml and `dg`): every asset, check, job, schedule and sensor is autoloaded
from femo_pipeline/defs/<stage>/ (ingest, web, facs, faces, warehouse, eda, model, serving, automation); this
module adds the resources and the executor."""

from pathlib import Path

import dagster as dg

from femo_pipeline import web_sources
from femo_pipeline.io_managers import STAGED, StagedParquetIOManager
from femo_pipeline.resources import (
    FacsPageResource,
    FemoStorage,
    QualityThresholds,
    WarehouseResource,
    WebSearchResource,
    storage_from_env,
)

# Every setting is read from the FEMO_* environment when a run uses it, not here (see FemoStorage); the two
# exceptions are FEMO_REFRESH_HOUR and FEMO_SENSOR_INTERVAL, which the schedule and sensor need at load time.
storage = storage_from_env()


def core_resources(femo_storage: FemoStorage) -> dict:
    """The resources every femo run needs for one data folder: storage, the warehouse and the staged IO manager.
    A storage whose data_dir is empty resolves the folder (and so the warehouse) at run time."""
    return {"storage": femo_storage, "duckdb": WarehouseResource(storage=femo_storage),
            STAGED: StagedParquetIOManager(storage=femo_storage)}


def web_resources(pixabay_url: str = web_sources.PIXABAY_URL, ddg_url: str = web_sources.DDG_URL, **politeness) -> dict:
    """The two search clients; the real endpoints unless a test passes local ones."""
    return {
        # Pixabay allows 100 requests per 60 s: 0.7 s apart stays under it
        "pixabay": WebSearchResource(base_url=pixabay_url, api_key_env="PIXABAY_API_KEY",
                                     **{"min_interval": 0.7, **politeness}),
        "duckduckgo": WebSearchResource(base_url=ddg_url, api_key_env="RAPIDAPI_KEY", **politeness),
    }


# Inside one run, DuckDB users go one at a time whatever the instance's pool settings are.
executor = dg.multiprocess_executor.configured(
    {"tag_concurrency_limits": [{"key": "femo/writer", "value": "duckdb", "limit": 1}]}
)


def _code_location() -> tuple[list, list, dg.Definitions]:
    """dg's defs-folder autoloading (every module under femo_pipeline/defs: its assets, checks, jobs, schedules,
    sensors) merged with the resources and the executor; also the asset and check lists, one entry per object
    (a module that imports another stage's asset lists it again). Built in a function: Dagster wants one
    Definitions object at module scope."""
    folder = dg.load_from_defs_folder(project_root=Path(__file__).resolve().parents[1])
    assets = list({id(a): a for a in folder.assets or []}.values())
    checks = list({id(c): c for c in folder.asset_checks or []}.values())
    return assets, checks, dg.Definitions.merge(folder, dg.Definitions(
        resources={
            **core_resources(storage),
            "facs_source": FacsPageResource(),  # FEMO_FACS_URL is read at run time
            "quality_thresholds": QualityThresholds(),
            **web_resources(),
        },
        executor=executor,
    ))


all_assets, all_checks, defs = _code_location()
