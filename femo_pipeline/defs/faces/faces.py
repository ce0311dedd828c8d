"""Face crops, curation and the balanced sample."""

import os
import time
from concurrent.futures import ProcessPoolExecutor

import dagster as dg
import duckdb as duckdb_lib
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from femo_pipeline import catalog, faces, folders, imaging, sampling, warehouse
from femo_pipeline.defs._meta import md_table, warehouse_tables
from femo_pipeline.defs.warehouse.warehouse import WRITER, images
from femo_pipeline.files import write_bytes_atomic
from femo_pipeline.io_managers import StagedTable
from femo_pipeline.resources import PROJECT_ROOT, FemoStorage
from femo_pipeline.sources import SOURCES
from femo_pipeline.vocab import EMOTIONS

GROUP = "faces"
FACE_WRITER = {**WRITER, "group_name": GROUP}


class FaceCropConfig(dg.Config):
    sources: list[str] = Field(default=[s.key for s in SOURCES.values() if s.crop_faces],
                               description="Sources whose images need a face found and cropped (FER-2013 is cropped already).")
    scale_factor: float = Field(default=1.1, gt=1, description="Haar cascade scale step.")
    min_neighbors: int = Field(default=5, ge=0, description="Haar cascade neighbours needed to keep a detection.")
    min_face: int = Field(default=30, ge=1, description="Smallest face side in pixels of the original image.")
    detect_max_side: int = Field(default=640, ge=0, description="Detect on a copy shrunk to this longer side (0: full size).")
    margin: float = Field(default=0.2, ge=0, description="Margin around the face box, as a share of its size.")
    workers: int = Field(default=0, ge=0, description="Processes (0: one per CPU core).")


def _crop_one(args):
    data, params = args
    return faces.face_crop(data, params)


@dg.asset(kinds={"opencv"}, group_name=GROUP)
def face_detections(context: dg.AssetExecutionContext, config: FaceCropConfig, storage: FemoStorage,
                    image_catalog: StagedTable) -> dg.Output[pd.DataFrame]:
    """Largest face of each web/Kaggle image (Haar cascade), cropped to data/faces/; no-face images kept with the reason.

    Detection takes minutes on large sets and touches no database, so it runs without the duckdb pool; the
    outcomes reach face_crops through Dagster's IO manager."""
    unknown = [s for s in config.sources if s not in SOURCES]
    if unknown:
        raise dg.Failure(description=f"unknown sources {unknown}; use {list(SOURCES)}")
    params = faces.FaceParams(config.scale_factor, config.min_neighbors, config.min_face, 0.05,
                              config.detect_max_side, config.margin)
    with duckdb_lib.connect() as con:
        rows = con.execute(
            "SELECT image_id, source_key, emotion_id FROM read_parquet(?) "
            "WHERE status = 'ok' AND list_contains(?, source_key) ORDER BY image_id",
            [str(image_catalog.path), config.sources],
        ).fetchall()
    content = {}
    try:  # the bytes of these sources' images, from the versions of the staged tables the catalog read
        for batch in catalog.pixel_batches(image_catalog.path, sources=config.sources):
            content.update(zip(batch.column("image_id").to_pylist(), batch.column("content").to_pylist()))
    except catalog.CatalogError as exc:
        raise dg.Failure(description=str(exc)) from exc
    rows = [(*row, content[row[0]]) for row in rows]
    context.log.info(f"face_crops: {len(rows)} images from {config.sources}")
    start = time.perf_counter()
    work = [(content, params) for *_, content in rows]
    if len(work) > 200 and (config.workers or os.cpu_count() or 1) > 1 and folders.can_start_processes():
        with ProcessPoolExecutor(max_workers=config.workers or None) as pool:
            outcomes = list(pool.map(_crop_one, work, chunksize=64))
    else:
        outcomes = [_crop_one(w) for w in work]
    records = []
    for (image_id, source_key, emotion, _), outcome in zip(rows, outcomes):
        crop_png = outcome.pop("crop_png")
        record = {"image_id": image_id, **outcome, "crop_path": None, "crop_height": None, "crop_width": None}
        if crop_png is not None:
            rel = f"faces/{source_key}/{EMOTIONS[emotion].lower()}/{image_id}.png"
            write_bytes_atomic(crop_png, storage.root / rel)
            pixels = imaging.decode(crop_png)
            record.update(crop_path=rel, crop_height=pixels.shape[0], crop_width=pixels.shape[1])
        records.append(record)
    seconds = time.perf_counter() - start
    frame = pd.DataFrame(records, columns=["image_id", "status", "reason", "n_faces", "box_x", "box_y", "box_w",
                                           "box_h", "crop_path", "crop_height", "crop_width"])
    context.log.info(f"face_detections: {len(frame)} images in {seconds:.1f} s")
    return dg.Output(frame, metadata={
        "dagster/row_count": len(frame),
        "faces_found": int(frame["status"].isin(["ok", "multiple_faces"]).sum()),
        "no_face": int((frame["status"] == "no_face").sum()),
        "seconds": round(seconds, 2),
        "images_per_second": round(len(frame) / seconds, 1) if seconds else None,
        "crops_folder": dg.MetadataValue.path(str(storage.root / "faces")),
    })


@dg.asset(kinds={"duckdb"}, deps=[images], metadata=warehouse_tables("face_crops"), **FACE_WRITER)
def face_crops(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
               face_detections: pd.DataFrame) -> dg.MaterializeResult:
    """The face detections as the warehouse table face_crops (the duckdb pool is held only for this write)."""
    with duckdb.get_connection() as con:
        warehouse.ensure_schema(con)
        count = warehouse.replace_rows(con, "face_crops", face_detections)
        outcome_table = con.execute(
            "SELECT ds.source_key, f.status, count(*) AS images FROM face_crops f JOIN images i ON i.id = f.image_id "
            "JOIN data_sources ds ON ds.id = i.source_id GROUP BY ALL ORDER BY ALL").df()
    context.log.info(f"face_crops: {count} rows written")
    return dg.MaterializeResult(metadata={"dagster/row_count": count, "outcomes": md_table(outcome_table)})


class SampleConfig(dg.Config):
    per_class: int = Field(default=40, ge=1, description="Images per emotion per source (fewer where a class has fewer).")
    seed: int = Field(default=2013, ge=0, description="Seed of the draw.")
    sources: list[str] = Field(default=[s.key for s in SOURCES.values() if not s.held_out],
                               description="Sources to sample (held-out sets, which are only scored, are left out).")
    require_face: bool = Field(default=False, description="Only images whose face_crops outcome found a face "
                                                          "(for sources that face_crops covers).")
    relabel_csv: str = Field(default=str(PROJECT_ROOT / "data" / "curation" / "relabel.csv"), description="Relabel list.")
    exclude_csv: str = Field(default=str(PROJECT_ROOT / "data" / "curation" / "exclude.csv"), description="Exclude list.")


@dg.asset(kinds={"python", "duckdb"}, deps=[images, face_crops], metadata=warehouse_tables("balanced_sample"),
          **FACE_WRITER)
def balanced_sample(context: dg.AssetExecutionContext, config: SampleConfig, duckdb: DuckDBResource,
                    storage: FemoStorage) -> dg.MaterializeResult:
    """A seeded sample of N images per emotion per source, after the committed relabel/exclude lists."""
    try:
        curation = sampling.load_curation(config.relabel_csv, config.exclude_csv)
    except sampling.CurationError as exc:
        raise dg.Failure(description=str(exc)) from exc
    unknown = [s for s in config.sources if s not in SOURCES]
    if unknown or not config.sources:  # never an empty sample in place of the last one
        raise dg.Failure(description=f"unknown sources {unknown}; use {list(SOURCES)}" if unknown
                         else "no sources to sample: name at least one of " + str(list(SOURCES)))
    source_ids = [SOURCES[s].id for s in config.sources]
    face_filter = ("AND (f.image_id IS NULL OR f.status IN ('ok', 'multiple_faces'))" if config.require_face else "")
    with duckdb.get_connection() as con:
        candidates = con.execute(
            f"SELECT i.id AS image_id, i.source_id, i.emotion_id, i.content_hash FROM images i "
            f"LEFT JOIN face_crops f ON f.image_id = i.id WHERE list_contains(?, i.source_id) {face_filter}",
            [source_ids],
        ).df()
        kept, excluded, stats = sampling.apply_curation(candidates, curation)
        kept, duplicates = sampling.drop_duplicates(kept)
        stats["left_out_as_duplicates"] = duplicates["reason"].value_counts().to_dict()
        sample = sampling.balanced_sample(kept, config.per_class, config.seed)
        sample = sample.assign(seed=config.seed)[
            ["image_id", "source_id", "emotion_id", "original_emotion_id", "relabelled", "seed"]]
        count = warehouse.replace_rows(con, "balanced_sample", sample)
    counts = sample.groupby(["source_id", "emotion_id"]).size().unstack(fill_value=0)
    short = [f"{s}/{EMOTIONS[e]}: {n}" for (s, e), n in sample.groupby(["source_id", "emotion_id"]).size().items()
             if n < config.per_class]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": count,
        "per_source_and_emotion": md_table(counts.rename(columns=EMOTIONS).reset_index()),
        "classes_short_of_per_class": short,
        "curation": dg.MetadataValue.json(stats),
        "excluded": md_table(excluded[["image_id", "content_hash", "reason"]]),
        "seed": config.seed,
    })
