"""Warehouse assets: DuckDB tables with keys, the study's views and queries, and the ERD."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from femo_pipeline import catalog, warehouse
from femo_pipeline import erd as erd_lib
from femo_pipeline.defs._meta import md_table, png_md, warehouse_tables
from femo_pipeline.files import write_text_atomic
from femo_pipeline.io_managers import StagedTable
from femo_pipeline.resources import SURVEY, FemoStorage
from femo_pipeline.sources import SOURCES, folder_sources

GROUP = "warehouse"
# Every user of the DuckDB file (a read-write open locks it): one at a time across runs (pool) and inside a run (tag limit on the executor).
WRITER = dict(group_name=GROUP, pool="duckdb", op_tags={"femo/writer": "duckdb"})


@dg.asset(kinds={"duckdb"}, metadata=warehouse_tables("data_sources", "warehouse_info"), **WRITER)
def data_sources(context: dg.AssetExecutionContext, duckdb: DuckDBResource, storage: FemoStorage) -> dg.MaterializeResult:
    """The image sources (sources.SOURCES, the study's ids 1-4 first), marked synthetic when the demo profile
    generated them."""
    synthetic = {s.key for s in folder_sources() if storage.source_plan(s.key).synthetic}
    with duckdb.get_connection() as con:
        warehouse.ensure_schema(con)
        frame = warehouse.upsert_data_sources(con, synthetic)
        warehouse.set_info(con, {"profile": storage.resolved_profile(), "synthetic": str(storage.is_demo).lower()})
    return dg.MaterializeResult(metadata={"dagster/row_count": len(frame), "preview": md_table(frame)})


@dg.asset(kinds={"duckdb"}, metadata=warehouse_tables("emotions"), **WRITER)
def emotions(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """The emotion vocabulary with the study's ids (0 Anger ... 7 Contempt); view emotions_ids keeps its name."""
    with duckdb.get_connection() as con:
        warehouse.ensure_schema(con)
        frame = warehouse.upsert_emotions(con)
    return dg.MaterializeResult(metadata={"dagster/row_count": len(frame), "preview": md_table(frame)})


@dg.asset(kinds={"duckdb"}, deps=[data_sources, emotions],
          metadata=warehouse_tables("images", "image_pixels", "quarantined_files", "all_images"), **WRITER)
def images(context: dg.AssetExecutionContext, duckdb: DuckDBResource, image_catalog: StagedTable) -> dg.MaterializeResult:
    """Usable images (metadata + file bytes in image_pixels) and quarantined files, with per-source study views.
    The rows come from the catalog, the bytes from the staged source tables it was built from."""
    staged = catalog.byte_tables(image_catalog.path)
    try:  # checked before the warehouse is opened: the catalog's source tables must all be there
        catalog.check_sources(image_catalog.path, staged)
    except catalog.CatalogError as exc:
        raise dg.Failure(description=str(exc)) from exc
    with duckdb.get_connection() as con:  # closed on failure too (WarehouseResource.get_connection)
        warehouse.ensure_schema(con)
        try:
            counts = warehouse.replace_images(con, image_catalog.path, staged)
        except warehouse.PixelPairingError as exc:
            raise dg.Failure(description=str(exc)) from exc
        per_view = {s.view: con.execute(f"SELECT count(*) FROM {s.view}").fetchone()[0] for s in SOURCES.values()}
        per_emotion = con.execute(warehouse.study_queries()["images_per_emotion"]).df()
    context.log.info(f"warehouse images: {counts}; views: {per_view}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": counts["images"],
        **{f"rows_{k}": v for k, v in counts.items()},
        "rows_per_view": dg.MetadataValue.json(per_view),
        "images_per_emotion (study query)": md_table(per_emotion),
    })


@dg.asset(kinds={"duckdb"}, metadata=warehouse_tables("survey_responses", "survey_rejected_rows"), **WRITER)
def survey_responses(context: dg.AssetExecutionContext, duckdb: DuckDBResource, storage: FemoStorage,
                     everyday_emotions_survey: dict) -> dg.MaterializeResult:
    """Clean survey answers, one row per questionnaire, plus the rejected rows with their reason."""
    responses = everyday_emotions_survey["responses"].to_pandas()
    rejected = everyday_emotions_survey["rejected"].to_pandas()
    with duckdb.get_connection() as con:
        warehouse.ensure_schema(con)
        rows = warehouse.replace_survey(con, responses, rejected)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": rows,
        "rejected_rows": len(rejected),
        "synthetic": storage.source_plan(SURVEY).synthetic,
    })


# by key: the FACS assets import from this module
FACS_LINKS = dg.AssetKey("facs_emotion_action_units")


@dg.asset(kinds={"duckdb", "sql"}, deps=[images, survey_responses, FACS_LINKS], **WRITER)
def study_query_results(context: dg.AssetExecutionContext, duckdb: DuckDBResource, storage: FemoStorage) -> dg.MaterializeResult:
    """The original study's SQL (femo_pipeline/sql/study) run against the warehouse, results shown as tables."""
    metadata = {}
    with duckdb.get_connection() as con:
        for name, sql in warehouse.study_queries().items():
            frame = con.execute(sql).df().drop(columns=["pixels"], errors="ignore")
            metadata[name] = md_table(frame, 15)
            metadata[f"{name}_rows"] = len(frame)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(kinds={"duckdb", "mermaid"}, deps=[images, survey_responses, data_sources, emotions, FACS_LINKS], **WRITER)
def erd(context: dg.AssetExecutionContext, duckdb: DuckDBResource, storage: FemoStorage) -> dg.MaterializeResult:
    """Entity-relationship diagram read from the live warehouse schema (Mermaid text and PNG)."""
    with duckdb.get_connection() as con:
        tables, views = erd_lib.read_schema(con)
    mermaid = erd_lib.to_mermaid(tables)
    mmd = write_text_atomic(mermaid, storage.path("warehouse", "erd.mmd"))
    png = erd_lib.render_png(tables, storage.path("warehouse", "erd.png"))
    fks = sum(len(t.foreign_keys) for t in tables.values())
    return dg.MaterializeResult(metadata={
        "tables": len(tables),
        "foreign_keys": fks,
        "views": dg.MetadataValue.json(views),
        "diagram": png_md(png, "femo warehouse ERD"),
        "mermaid": dg.MetadataValue.md(f"```mermaid\n{mermaid}```"),
        "mermaid_file": dg.MetadataValue.path(str(mmd)),
        "png_file": dg.MetadataValue.path(str(png)),
    })
