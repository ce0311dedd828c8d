"""Helpers shared by the model-group assets: warehouse reads, the writer tags, lineage lookups."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from femo_pipeline.defs.warehouse.warehouse import WRITER
from femo_pipeline.sources import SOURCES

GROUP = "model"
# Assets that touch DuckDB: the duckdb pool across runs, the writer tag inside a run (never while training).
MODEL_WRITER = {**WRITER, "group_name": GROUP}
FER2013, KAGGLE, EXTRA = SOURCES["fer2013"].id, SOURCES["kaggle"].id, SOURCES["extra"].id  # from the registry

IMAGES_SQL = """
SELECT i.id, i.rel_path, i.split, i.usage, i.subject, i.sequence, i.emotion_id, i.content_hash, i.duplicate_count,
       i.duplicate_cross_split, i.duplicate_label_conflict{pixels}
FROM images i {join}
WHERE i.source_id = ? {classes} {where} ORDER BY i.id
"""


def read_images(con, source_id: int, where: str = "", pixels: bool = True, seven: bool = True) -> pd.DataFrame:
    """Images of one source with the seven FER-2013 emotions (seven=False: every emotion; where: a constant SQL
    fragment)."""
    sql = IMAGES_SQL.format(pixels=", p.pixels" if pixels else "", classes="AND i.emotion_id < 7" if seven else "",
                            join="JOIN image_pixels p ON p.image_id = i.id" if pixels else "", where=where)
    return con.execute(sql, [source_id]).df()


def scored_images(evaluation_images: dict) -> tuple[np.ndarray, np.ndarray]:
    """(ids, 48 x 48 arrays) of every image the readers predict: the FER-2013 test images, then Kaggle's, then
    the extra labelled sets' (none in an evaluation_images materialized before they were read)."""
    parts = [evaluation_images, evaluation_images["kaggle"], *([evaluation_images["extra"]]
                                                               if "extra" in evaluation_images else [])]
    return (np.concatenate([p["frame"]["id"].to_numpy(np.int64) for p in parts]),
            np.concatenate([p["x"] for p in parts]))


def training_fingerprint(con) -> str:
    """Fingerprint of the FER-2013 Training images the warehouse holds now (ids, content hashes, labels)."""
    from femo_pipeline import benchmark

    frame = read_images(con, FER2013, "AND i.split = 'train'", pixels=False)
    return benchmark.data_fingerprint(frame["id"], frame["content_hash"], frame["emotion_id"])


def skipped(context, asset: str, reason: str, **metadata) -> dg.MaterializeResult:
    context.log.warning(f"{asset} skipped: {reason}")
    return dg.MaterializeResult(metadata={"skipped": reason, **metadata})


def checked_precision(value: str) -> str:
    """The precision a config names, resolved ("auto" -> what this CPU runs), or a Failure naming the choices."""
    from femo_pipeline import model as femo_model

    try:
        return femo_model.resolve_precision(value)
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from exc
