"""femo's code location plus one job on Celery (docs/scaling.md, "Tried: a Celery executor").

The same assets, resources and IO managers as femo_pipeline.definitions; job `femo_ingest_celery` (folders ->
catalog -> warehouse -> face crops) runs each step as a Celery task, picked up by `dagster-celery` workers.
Broker and result backend come from FEMO_CELERY_BROKER / FEMO_CELERY_BACKEND at run time (Redis on 127.0.0.1
by default). Needs `dagster-celery` (not a femo dependency): see celery_executor.sh.
"""

import dagster as dg
from dagster_celery import celery_executor

from femo_pipeline.definitions import defs as femo_defs

CELERY_STEPS = ["demo_source_files", "fer2013_images", "kaggle_face_images", "image_catalog", "data_sources",
                "emotions", "images", "face_detections", "face_crops"]

femo_ingest_celery = dg.define_asset_job(
    "femo_ingest_celery",
    selection=CELERY_STEPS,
    executor_def=celery_executor.configured({
        "broker": {"env": "FEMO_CELERY_BROKER"},
        "backend": {"env": "FEMO_CELERY_BACKEND"},
    }),
)

defs = dg.Definitions.merge(femo_defs, dg.Definitions(jobs=[femo_ingest_celery]))
