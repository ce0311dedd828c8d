"""Jobs, the daily web refresh schedule, and the sensor for files dropped into the raw image folders."""

import hashlib

import dagster as dg
import pyarrow as pa

from femo_pipeline import folders
from femo_pipeline.defs.facs.facs import facs_page
from femo_pipeline.defs.ingest.ingest import folder_assets
from femo_pipeline.defs.web.web import duckduckgo_hits, pixabay_hits
from femo_pipeline.io_managers import latest_staged
from femo_pipeline.numerals import whole_number
from femo_pipeline.resources import FemoStorage, loading_setting
from femo_pipeline.sources import folder_sources

# Every job rewrites the warehouse: the tag lets dagster.yaml's run queue keep them from overlapping.
WAREHOUSE_WRITER = {"femo/warehouse": "write"}

# Training: femo's CNN (emotion_model, and trained_model_run, which records it in the warehouse) and the
# data-factor grid (data_factors, partitioned by cell, with its own job). No default run, schedule or sensor trains:
# model_evaluation scores the shipped models (and the last trained one, while it fits the warehouse's images)
# without them, so the answer is rebuilt in minutes. training_images, the arrays only training reads, is a short
# read: femo_answer keeps it current for a later training run; refreshes leave it out.
TRAINERS = dg.AssetSelection.assets("emotion_model", "trained_model_run", "data_factors", "data_factors_table")
FACTORS = dg.AssetSelection.assets("data_factors", "data_factors_table")
TRAINING_INPUTS = dg.AssetSelection.assets("training_images")

femo_answer_job = dg.define_asset_job(
    "femo_answer", selection=dg.AssetSelection.all() - TRAINERS, tags=WAREHOUSE_WRITER,
    description="Every asset but training: ingest, warehouse, faces, EDA, predictions of the shipped models (and "
                "of the last trained model while it fits the images), contenders, FER+ votes, the benchmark report "
                "and the serving snapshot. `femo run` and `femo demo` run this job.",
)
femo_all_job = dg.define_asset_job(
    "femo_all", selection=dg.AssetSelection.all() - FACTORS, tags=WAREHOUSE_WRITER,
    description="femo_answer plus training femo's CNN (emotion_model): `femo train` / `femo run --train`. The "
                "data-factor grid has its own job (data_factor_grid).",
)


def refresh(*sources) -> dg.AssetSelection:
    """These sources and everything downstream of them, training left out: a refresh that rewrites `images`
    also rebuilds the predictions, votes, report and snapshot that depend on it, so no table is left emptied."""
    return dg.AssetSelection.assets(*sources).downstream() - TRAINERS - TRAINING_INPUTS


web_refresh_job = dg.define_asset_job(
    "web_refresh", selection=refresh(pixabay_hits, duckduckgo_hits, facs_page), tags=WAREHOUSE_WRITER,
    description="Search and download the web sources and re-scrape the FACS page, then everything downstream "
                "(predictions, report and snapshot included) except training.",
)
folder_ingest_job = dg.define_asset_job(
    "folder_ingest", selection=refresh(*folder_assets), tags=WAREHOUSE_WRITER,
    description="Re-read the image folders (FER-2013, Kaggle: every folder source), then everything downstream "
                "(predictions, report and snapshot included) except training.",
)

# Each tick pulls that day's partition of the web hits, then refreshes everything downstream.
web_refresh_schedule = dg.build_schedule_from_partitioned_job(
    web_refresh_job,
    name="web_refresh_daily",
    hour_of_day=loading_setting("FEMO_REFRESH_HOUR"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily refresh of the web sources (at FEMO_REFRESH_HOUR, UTC; default 3).",
)


def folder_changes(storage: FemoStorage, instance: dg.DagsterInstance) -> dict[str, dict[str, int]]:
    """Per watched source, files in its folder that the staged table of its asset's latest materialization
    lacks (added) or has no more (removed). An asset never materialized (or whose staged file is gone) counts as
    an empty table: every file is new."""
    changes = {}
    for source in folder_sources():
        plan = storage.source_plan(source.key)
        if plan.path is None or not plan.path.is_dir():
            continue
        try:
            on_disk = {e.rel_path for e in folders.scan_folder(plan.path, source.splits, source.sets)}
        except folders.FolderLayoutError:
            continue  # the ingest asset reports a wrong layout; the sensor only looks for changes
        try:  # a staged table that is gone, replaced or unreadable counts as empty: every file is new, and the
            # re-ingest this asks for writes a good one
            table = latest_staged(instance, source.asset)
            staged = set(table.read(["rel_path"]).column(0).to_pylist()) if table is not None else set()
        except (dg.Failure, OSError, pa.ArrowException):
            staged = set()
        added, removed = on_disk - staged, staged - on_disk
        if added or removed:
            digest = hashlib.sha256("\n".join(sorted(added) + ["--"] + sorted(removed)).encode()).hexdigest()[:16]
            changes[source.key] = {"added": len(added), "removed": len(removed), "digest": digest}
    return changes


@dg.sensor(job=folder_ingest_job, minimum_interval_seconds=loading_setting("FEMO_SENSOR_INTERVAL"),
           default_status=dg.DefaultSensorStatus.RUNNING)
def raw_folder_sensor(context: dg.SensorEvaluationContext, storage: FemoStorage) -> dg.SensorResult:
    """Starts folder_ingest when image files appear in (or vanish from) a folder source's folder (FER-2013, Kaggle)."""
    changes = folder_changes(storage, context.instance)
    if not changes:
        return dg.SensorResult(skip_reason="no new or removed files in the watched folders")
    key, number = sensor_run_key(changes, context.cursor)
    summary = ", ".join(f"{k}: +{v['added']} -{v['removed']}" for k, v in sorted(changes.items()))
    context.log.info(f"raw folders changed ({summary})")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=key, tags={"femo/changes": summary})],
                           cursor=f"{number}:{key.split('/', 1)[1]}")


def sensor_run_key(changes: dict, cursor: str | None) -> tuple[str, int]:
    """(run key, its sequence number). The same pending change keeps its key (one run however many ticks see it);
    any other change set gets the next number, so a change that comes back (add X, remove X, add X again) is
    never mistaken for the first one, which Dagster would skip as an already used key."""
    digest = "-".join(f"{k}:{v['digest']}" for k, v in sorted(changes.items()))
    number, last = 0, ""
    if cursor and ":" in cursor:
        head, _, last = cursor.partition(":")
        number = whole_number(head) or 0
    if digest != last:
        number += 1
    return f"{number}/{digest}", number
