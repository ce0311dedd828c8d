"""The image catalog: every image file of every source, described and checked."""


import dagster as dg
import duckdb

from femo_pipeline import catalog
from femo_pipeline.defs._meta import column_schema, md_table
from femo_pipeline.io_managers import ALLOW_MISSING, STAGED, StagedTable, incoming_path
from femo_pipeline.resources import FemoStorage
from femo_pipeline.sources import SOURCES, Source


@dg.asset(group_name="ingest", kinds={"python", "duckdb", "parquet"}, io_manager_key=STAGED,
          ins={s.asset: dg.AssetIn(metadata={ALLOW_MISSING: True}) for s in SOURCES.values()})
def image_catalog(context: dg.AssetExecutionContext, storage: FemoStorage, **staged_sources) -> dg.Output:
    """One row per image file: source, emotion, split, size, format, colour space, hash, duplicates, status
    (no bytes: those stay in the source assets' staged tables, whose files the catalog records; a source
    materialized again writes a new file, so the catalog's rows keep their bytes).
    A source asset never materialized in this instance is left out when its source has no files (web sources
    without a key, an unset folder), with a warning and in the metadata; otherwise the catalog fails."""
    staged = {s.key: (staged_sources[s.asset][s.table] if s.table and staged_sources[s.asset] is not None
                      else staged_sources[s.asset]) for s in SOURCES.values()}
    per_source, missing = {}, []
    unread = [s.asset for s in SOURCES.values() if staged[s.key] is None and _has_input(storage, s)]
    if unread:  # leaving them out would drop their images (and what hangs on them) from the warehouse
        raise dg.Failure(description=f"{', '.join(unread)} never materialized in this Dagster instance, but their "
                                     "source has files: materialize them first (job femo_all does)")
    for source in SOURCES.values():
        if staged[source.key] is None:
            missing.append(source.asset)
            context.log.warning(f"{source.asset} was never materialized and its source has no files: left out")
            continue
        synthetic = source.kind == "folder" and storage.source_plan(source.key).synthetic
        per_source[source.key] = (staged[source.key].path, synthetic)
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


def _has_input(storage: FemoStorage, source: Source) -> bool:
    """Whether the source has files to read: its folder (folder sources) or its download folder (web)."""
    folder = storage.source_plan(source.key).path if source.kind == "folder" else storage.root / "raw" / source.key
    return bool(folder) and folder.is_dir() and any(folder.iterdir())
