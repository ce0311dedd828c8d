"""The image catalog: every image file of every source, described and checked."""


import dagster as dg
import duckdb

from femo_pipeline import catalog
from femo_pipeline.defs._meta import column_schema, md_table
from femo_pipeline.io_managers import ALLOW_MISSING, STAGED, StagedTable, incoming_path
from femo_pipeline.resources import FemoStorage

# upstream asset (its staged table of files, folders.SCHEMA) -> source key
STAGED_SOURCES = {"fer2013_images": "fer2013", "kaggle_face_images": "kaggle", "pixabay_images": "pixabay",
                  "duckduckgo_images": "ddg"}


@dg.asset(group_name="faces", kinds={"python", "duckdb", "parquet"}, io_manager_key=STAGED,
          ins={name: dg.AssetIn(metadata={ALLOW_MISSING: True}) for name in STAGED_SOURCES})
def image_catalog(context: dg.AssetExecutionContext, storage: FemoStorage, fer2013_images, kaggle_face_images,
                  pixabay_images, duckduckgo_images) -> dg.Output:
    """One row per image file: source, emotion, split, size, format, colour space, hash, duplicates, status
    (no bytes: those stay in the source assets' staged tables, whose files the catalog records; a source
    materialized again writes a new file, so the catalog's rows keep their bytes).
    A source asset never materialized in this instance is left out when its source has no files (web sources
    without a key, an unset folder), with a warning and in the metadata; otherwise the catalog fails."""
    staged = {"fer2013_images": fer2013_images, "kaggle_face_images": kaggle_face_images,
              "pixabay_images": pixabay_images["files"] if pixabay_images else None,
              "duckduckgo_images": duckduckgo_images["files"] if duckduckgo_images else None}
    per_source, missing = {}, []
    unread = [name for name, key in STAGED_SOURCES.items() if staged[name] is None and _has_input(storage, key)]
    if unread:  # leaving them out would drop their images (and what hangs on them) from the warehouse
        raise dg.Failure(description=f"{', '.join(unread)} never materialized in this Dagster instance, but their "
                                     "source has files: materialize them first (job femo_all does)")
    for asset_name, key in STAGED_SOURCES.items():
        if staged[asset_name] is None:
            missing.append(asset_name)
            context.log.warning(f"{asset_name} was never materialized and its source has no files: left out")
            continue
        synthetic = key in ("fer2013", "kaggle") and storage.source_plan(key).synthetic
        per_source[key] = (staged[asset_name].path, synthetic)
    out = incoming_path(storage)
    try:  # the file bytes stay in the staged source tables: catalog.byte_tables
        table = catalog.write_catalog(per_source, out)
    except catalog.CatalogError as exc:
        raise dg.Failure(description=str(exc)) from exc

    con = duckdb.connect()
    con.register("catalog", table)
    dupes = catalog.duplicate_summary(con, "catalog")
    by_source = con.execute(
        "SELECT source_key, status, count(*) AS files FROM catalog GROUP BY ALL ORDER BY ALL"
    ).df()
    by_emotion = con.execute(
        "PIVOT (SELECT source_key, coalesce(emotion, '(none)') AS emotion FROM catalog WHERE status = 'ok') "
        "ON source_key USING count(*) ORDER BY emotion"
    ).df()
    reasons = con.execute(
        "SELECT source_key, reason, count(*) AS files FROM catalog WHERE status <> 'ok' GROUP BY ALL ORDER BY ALL"
    ).df()
    context.log.info(f"catalog: {table.num_rows} files; duplicates: {dupes}")
    return dg.Output(StagedTable(out, table.num_rows), metadata={
        "dagster/column_schema": column_schema(table.schema),
        "files_by_source_and_status": md_table(by_source),
        "images_by_emotion": md_table(by_emotion),
        "quarantine_reasons": md_table(reasons),
        "duplicates": dg.MetadataValue.json(dupes),
        "synthetic_sources": [k for k, (_, synth) in per_source.items() if synth],
        "sources_never_materialized": missing,
    })


def _has_input(storage: FemoStorage, key: str) -> bool:
    """Whether the source has files to read: its folder (FER-2013, Kaggle) or its download folder (web)."""
    if key in ("fer2013", "kaggle"):
        folder = storage.source_plan(key).path
    else:
        folder = storage.root / "raw" / key
    return bool(folder) and folder.is_dir() and any(folder.iterdir())
