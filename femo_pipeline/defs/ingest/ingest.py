"""Ingest assets: demo inputs, labelled image folders and the everyday-emotions survey."""


import os
import time

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from femo_pipeline import demo_data, folders, imaging, survey
from femo_pipeline.defs._meta import column_schema, md_table
from femo_pipeline.files import atomic_path
from femo_pipeline.io_managers import STAGED, StagedTable, carried_forward, incoming_path
from femo_pipeline.resources import SURVEY, FemoStorage
from femo_pipeline.sources import Source, folder_sources

GROUP = "ingest"
PROGRESS_EVERY_S = 5.0  # seconds between two progress lines of a folder ingest


class DemoConfig(dg.Config):
    seed: int = Field(default=2013, ge=0, description="Seed of every generated face and survey answer.")
    fer_train_per_class: int = Field(default=60, ge=1, description="Synthetic FER-style training images per emotion.")
    fer_test_per_class: int = Field(default=20, ge=1, description="Synthetic FER-style test images per emotion.")
    kaggle_per_class: int = Field(default=30, ge=2, description="Synthetic Kaggle-style images per emotion (8 classes; "
                                  "at least 2: the second anger face is the base of the demo's corrupt file).")
    survey_rows: int = Field(default=3000, ge=1, description="Rows of the synthetic survey CSV.")
    extra_per_class: int = Field(default=6, ge=1, description="Synthetic images per emotion of each of the two extra "
                                 "labelled sets (posed-lab: 2 frames per subject; web-crops).")


@dg.asset(group_name=GROUP, kinds={"python", "file"})
def demo_source_files(context: dg.AssetExecutionContext, config: DemoConfig, storage: FemoStorage) -> dg.MaterializeResult:
    """Synthetic face folders and survey CSV for the demo profile (skipped under the real profile)."""
    if not storage.is_demo:
        context.log.info("real profile: no demo files are generated")
        return dg.MaterializeResult(metadata={"skipped": "real profile: sources come from FEMO_* paths"})
    spec = demo_data.DemoSpec(config.seed, config.fer_train_per_class, config.fer_test_per_class,
                              config.kaggle_per_class, config.survey_rows, config.extra_per_class)
    result = demo_data.generate(storage.demo_dir, spec)
    context.log.info(f"wrote demo inputs under {storage.demo_dir}: {result}")
    return dg.MaterializeResult(metadata={
        "synthetic": True,
        "note": demo_data.SYNTHETIC_NOTE,
        "folder": dg.MetadataValue.path(str(storage.demo_dir)),
        **{k: v for k, v in result.items() if isinstance(v, int)},
    })


class FolderIngestConfig(dg.Config):
    workers: int = Field(default=0, ge=0, description="Processes that read and inspect files (0: one per CPU core).")
    max_pixels: int = Field(default=imaging.DEFAULT_MAX_PIXELS, ge=1, description="Larger images are quarantined as decompression bombs.")
    max_bytes: int = Field(default=imaging.DEFAULT_MAX_BYTES, ge=1, description="Larger files are quarantined.")
    min_side: int = Field(default=imaging.DEFAULT_MIN_SIDE, ge=1,
                          description="Images whose shorter side is under this many pixels are quarantined.")
    max_decoded_bytes: int = Field(default=imaging.DEFAULT_MAX_DECODED_BYTES, ge=1,
                                   description="Images that would take more memory decoded (width x height x "
                                   "channels x bytes per sample, read from the header) are quarantined undecoded.")
    name_pattern: str = Field(default="", description="Regex searched in each file name; its group `subject` (and "
                              "`sequence`, if it has one) is stored with the image, e.g. ^(?P<subject>S\\d{3})_"
                              "(?P<sequence>\\d{3})_ for S005_001_00000011.png. Empty: FEMO_<KEY>_NAME_PATTERN, else "
                              "the source's own (extra sets: CK+- and JAFFE-style names); '-': none.")


def name_pattern(config: FolderIngestConfig, source: Source) -> str | None:
    """The file-name pattern of a source for this run (config, else its environment variable, else its own),
    checked: a bad one fails the asset with the reason."""
    pattern = config.name_pattern or os.environ.get(source.pattern_env) or source.name_pattern
    if not pattern or pattern == "-":
        return None
    try:
        folders.name_pattern(pattern)
    except folders.NamePatternError as exc:
        raise dg.Failure(description=f"{source.asset}: {exc} (config name_pattern or {source.pattern_env})") from exc
    return pattern


def ingest_folder(context: dg.AssetExecutionContext, storage: FemoStorage, config: FolderIngestConfig,
                  source: Source) -> dg.Output:
    """Scan, inspect and stage one labelled folder source; shared by the folder ingest assets. The table (one row
    per file, with its bytes) is streamed to a staging file that the staged IO manager moves into place."""
    asset_name = context.asset_key.path[-1]
    plan = storage.source_plan(source.key)
    if plan.path is None:
        kept = carried_forward(context, storage, synthetic=False)
        reason = plan.skip_reason + (f"; the {kept.rows:,} files it staged before are kept (to drop the source, "
                                     "point the setting at a folder of its layout without images)" if kept else "")
        context.log.warning(f"{asset_name} skipped: {reason}")
        return dg.Output(kept or folders.SCHEMA.empty_table(),
                         metadata={"skipped": reason, "synthetic": False, "carried_forward": kept is not None})
    pattern = name_pattern(config, source)
    try:
        entries = folders.scan_folder(plan.path, with_splits=source.splits, sets=source.sets)
    except folders.FolderLayoutError as exc:
        raise dg.Failure(description=f"{asset_name}: {exc}") from exc
    context.log.info(f"{asset_name}: {len(entries)} files found under {plan.path}")

    last_logged = 0.0

    def progress(done: int, total: int, seconds: float) -> None:
        # every PROGRESS_EVERY_S and at the end, not per part: a log line is a stored Dagster event, and a
        # million files would write 500 of them
        nonlocal last_logged
        if done < total and seconds - last_logged < PROGRESS_EVERY_S:
            return
        last_logged = seconds
        context.log.info(f"{asset_name}: inspected {done:,}/{total:,} files ({done / max(seconds, 1e-9):,.0f}/s)")

    start = time.perf_counter()
    # parts go to the Parquet file as they come, so the run never holds every file's bytes at once
    compression = {f.name: ("none" if pa.types.is_binary(f.type) else "zstd") for f in folders.SCHEMA}
    # no dictionary for the columns with a value per file, no min/max statistics for the bytes: both only cost
    plain = ("content", "content_hash", "rel_path")
    options = dict(compression=compression, use_dictionary=[f.name for f in folders.SCHEMA if f.name not in plain],
                   write_statistics=[f.name for f in folders.SCHEMA if f.name != "content"])
    out = incoming_path(storage)
    try:  # the workers hand the bytes over beside the staged file (the data folder is sized for them)
        with atomic_path(out) as tmp, pq.ParquetWriter(tmp, folders.SCHEMA, **options) as writer:
            table = folders.inspect_folder(
                plan.path, entries, workers=config.workers or None, max_pixels=config.max_pixels,
                max_bytes=config.max_bytes, min_side=config.min_side, progress=progress, sink=writer.write_table,
                spool_dir=out.parent, max_decoded_bytes=config.max_decoded_bytes, name_pattern=pattern,
            )
    except OSError as exc:  # the staging folder full or not writable: the files themselves are never the cause
        raise dg.Failure(description=f"{asset_name}: cannot stage the files under {out.parent}: "
                                     f"{exc.strerror or exc}") from exc
    seconds = time.perf_counter() - start
    # summaries with Arrow (a million rows never become a pandas frame; only the small results do)
    is_ok = pc.equal(table["status"], imaging.OK)
    ok = table.filter(is_ok).select(["label_raw", "split", "color_space", "subject"])
    per_group = ok.group_by(["label_raw", "split"], use_threads=False).aggregate([([], "count_all")])
    counts = (
        per_group.to_pandas().assign(split=lambda f: f["split"].fillna("-"))
        .pivot_table(index="label_raw", columns="split", values="count_all", aggfunc="sum", fill_value=0)
        .reset_index()
    ) if ok.num_rows else pd.DataFrame({"label_raw": []})
    quarantined = table.filter(pc.invert(is_ok)).select(["rel_path", "reason"]).to_pandas()
    colours = ok["color_space"].value_counts().to_pylist()
    return dg.Output(StagedTable(out, table.num_rows), metadata={
        "dagster/column_schema": column_schema(folders.SCHEMA),
        "source_folder": dg.MetadataValue.path(str(plan.path)),
        "synthetic": plan.synthetic,
        "files": table.num_rows,
        "usable_images": ok.num_rows,
        "name_pattern": pattern or "none",
        "images_with_subject": ok.num_rows - ok["subject"].null_count,
        "quarantined": len(quarantined),
        "images_per_emotion_and_split": md_table(counts),
        "quarantined_files": md_table(quarantined),
        "color_spaces": dg.MetadataValue.json({c["values"]: c["counts"] for c in colours if c["values"] is not None}),
        "inspect_seconds": round(seconds, 2),
        "files_per_second": round(table.num_rows / max(seconds, 1e-9)),
    })


def folder_asset(source: Source) -> dg.AssetsDefinition:
    """The ingest asset of a folder source (sources.SOURCES): its files read, inspected and staged."""

    @dg.asset(name=source.asset, description=source.description, group_name=GROUP, kinds={"python", "parquet"},
              deps=[demo_source_files], io_manager_key=STAGED)
    def _ingest(context: dg.AssetExecutionContext, config: FolderIngestConfig, storage: FemoStorage) -> dg.Output:
        return ingest_folder(context, storage, config, source)

    return _ingest


# one asset per folder source (fer2013_images, kaggle_face_images, ...), found by dg's autoloading in this list
folder_assets: list[dg.AssetsDefinition] = [folder_asset(s) for s in folder_sources()]


@dg.asset(group_name=GROUP, kinds={"python", "parquet"}, deps=[demo_source_files], io_manager_key=STAGED)
def everyday_emotions_survey(context: dg.AssetExecutionContext, storage: FemoStorage) -> dg.Output:
    """'Emotions in everyday life' survey answers (Trampe et al. 2015), coerced to numbers with bad rows set aside
    (two staged tables: responses, rejected)."""
    plan = storage.source_plan(SURVEY)
    kept = carried_forward(context, storage, synthetic=False) if plan.path is None else None
    if kept is not None:  # the answers staged before stay: a run without the setting never empties the table
        reason = f"{plan.skip_reason}; the {kept['responses'].rows:,} answers staged before are kept"
        context.log.warning(f"everyday_emotions_survey skipped: {reason}")
        return dg.Output(kept, metadata={"skipped": reason, "synthetic": False, "carried_forward": True,
                                         "responses": kept["responses"].rows})
    if plan.path is None:
        cleaned = survey.CleanSurvey(
            pd.DataFrame({c: pd.Series(dtype="int64") for c in survey.COLUMNS}),
            pd.DataFrame({"row_number": pd.Series(dtype="int64"), "id": pd.Series(dtype=str), "reason": pd.Series(dtype=str)}),
            {"skipped": plan.skip_reason},
        )
        context.log.warning(f"everyday_emotions_survey skipped: {plan.skip_reason}")
    else:
        try:
            cleaned = survey.clean_survey(survey.read_survey_csv(plan.path))
        except survey.SurveyFormatError as exc:
            raise dg.Failure(description=str(exc)) from exc
        context.log.info(f"survey: {cleaned.stats}")
    responses = pa.Table.from_pandas(cleaned.responses, preserve_index=False)
    rejected = pa.Table.from_pandas(cleaned.rejected, preserve_index=False)
    return dg.Output({"responses": responses, "rejected": rejected}, metadata={
        "responses": len(cleaned.responses),
        "dagster/column_schema": column_schema(responses.schema),
        "synthetic": plan.synthetic,
        "source_csv": dg.MetadataValue.path(str(plan.path)) if plan.path else "none",
        "cleaning": dg.MetadataValue.json(cleaned.stats),
        "preview": md_table(cleaned.responses, 10),
        "rejected_rows_preview": md_table(cleaned.rejected, 20),
    })
