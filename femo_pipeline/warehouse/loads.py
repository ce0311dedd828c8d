"""The warehouse's loads: every writer is delete-then-insert or upsert inside one transaction, so re-running a
load gives the same rows. Pure module (no Dagster)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from femo_pipeline import survey
from femo_pipeline.sources import SOURCES
from femo_pipeline.vocab import EMOTIONS
from femo_pipeline.warehouse import schema
from femo_pipeline.warehouse.schema import transaction


def _values(rows: list[tuple]) -> tuple[str, list]:
    """A VALUES list of placeholders for these rows and the flat parameters: one statement for all of them
    (executemany runs one statement per row, 1.5 ms each in DuckDB)."""
    row = "(" + ", ".join("?" * len(rows[0])) + ")"
    return ", ".join([row] * len(rows)), [value for r in rows for value in r]


def upsert_data_sources(con: duckdb.DuckDBPyConnection, synthetic_keys: set[str]) -> pd.DataFrame:
    # DuckDB rewrites an update of an indexed column as delete + insert, which a referenced row cannot take:
    # insert missing rows, then update only the columns without an index.
    rows = [(s.id, s.key, s.name, s.url, s.comments, s.key in synthetic_keys) for s in SOURCES.values()]
    values, params = _values(rows)
    con.execute(f"INSERT INTO data_sources SELECT * FROM (VALUES {values}) ON CONFLICT DO NOTHING", params)
    con.execute(
        f"UPDATE data_sources SET source = v.source, url_link = v.url_link, comments = v.comments, "
        f"synthetic = v.synthetic FROM (VALUES {values}) v(id, key, source, url_link, comments, synthetic) "
        "WHERE data_sources.id = v.id", params)
    return con.execute("SELECT * FROM data_sources ORDER BY id").df()


def upsert_emotions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    values, params = _values(list(EMOTIONS.items()))
    con.execute(f"INSERT INTO emotions SELECT * FROM (VALUES {values}) ON CONFLICT DO NOTHING", params)
    return con.execute("SELECT * FROM emotions ORDER BY id").df()


# images and the tables that reference it, children first (replace_images drops and re-creates them)
_IMAGE_CHILDREN = ("predictions", "human_votes", "face_crops", "balanced_sample", "image_pixels", "images")
# the children other assets own: their rows of images whose bytes and label did not change are put back after a
# reload, so a refresh never empties the answer (the assets, downstream of images, then bring them up to date)
_KEPT_CHILDREN = ("predictions", "human_votes", "face_crops", "balanced_sample")
_IMAGE_COLUMNS = (
    "id", "source_id", "emotion_id", "split", "usage", "subject", "sequence", "rel_path", "label_raw", "height", "width", "aspect_ratio",
    "image_format", "color_space", "channels", "file_size_bytes", "content_hash", "duplicate_count",
    "duplicate_cross_split", "duplicate_label_conflict", "synthetic",
)


class PixelPairingError(ValueError):
    """The bytes of a staged source table do not pair with the catalog's usable images."""


def replace_images(con: duckdb.DuckDBPyConnection, catalog: pa.Table | str | Path,
                   staged: dict[str, str | Path] | None = None) -> dict[str, int]:
    """Make images, image_pixels and quarantined_files mirror the catalog, in one transaction.

    `catalog` is the image_catalog table (see catalog.py) or the path of its Parquet file. The bytes come from
    its content column, or, for a catalog file without one (the pipeline's: the bytes stay in the staged source
    tables), from `staged` ({source_key: staged table path}, the tables the catalog was built from; the caller
    checks that with catalog.check_sources). The two image tables are dropped and created again rather
    than emptied: DuckDB cannot delete parent and child rows of a foreign key in one transaction, and
    re-creating is several times faster than deleting indexed rows. The tables that reference images and belong
    to other assets (predictions, human_votes, face_crops, balanced_sample) are re-created with them and get back
    their rows of every image that is still there with the same bytes and label (same id, content hash and
    emotion); rows of images gone or changed are dropped, and their assets, downstream of images, fill them in.
    The returned counts include `kept_<table>` for each table whose rows were put back.
    """
    if isinstance(catalog, (str, Path)):
        con.execute(f"CREATE OR REPLACE TEMP VIEW _catalog AS SELECT * FROM read_parquet('{_quoted(catalog)}')")
    else:
        con.register("_catalog_arrow", catalog)
        con.execute("CREATE OR REPLACE TEMP VIEW _catalog AS SELECT * FROM _catalog_arrow")
    names = [c for (c,) in con.execute("SELECT name FROM pragma_table_info('_catalog')").fetchall()]
    if "content" not in names and staged is None:
        raise ValueError("the catalog holds no bytes: pass the staged source tables it was built from")
    cols = ", ".join(_IMAGE_COLUMNS)
    select_cols = cols.replace("id, ", "image_id AS id, ", 1)
    try:
        with transaction(con):
            # every table that references images goes too (their assets run again after images); tables that
            # are all empty already (a new warehouse) are kept as they are, descriptions included
            kept = []
            if not _all_empty(con, _IMAGE_CHILDREN):
                kept = _set_aside(con)
                for child in _IMAGE_CHILDREN:
                    con.execute(f"DROP TABLE IF EXISTS {child}")
                schema.apply_schema(con, only=_IMAGE_CHILDREN)
            con.execute("DELETE FROM quarantined_files")
            con.execute(f"INSERT INTO images ({cols}) SELECT {select_cols} FROM _catalog WHERE status = 'ok'")
            if "content" in names:
                con.execute("INSERT INTO image_pixels SELECT image_id, content FROM _catalog WHERE status = 'ok'")
            else:
                _insert_staged_pixels(con, staged)
            con.execute(
                "INSERT INTO quarantined_files SELECT source_id, rel_path, reason, file_size_bytes, content_hash "
                "FROM _catalog WHERE status <> 'ok' ORDER BY source_id, rel_path"
            )
            restored = _put_back(con, kept)
    finally:
        con.execute("DROP VIEW IF EXISTS _catalog")
        for child in _KEPT_CHILDREN:
            con.execute(f"DROP TABLE IF EXISTS _kept_{child}")
        if not isinstance(catalog, (str, Path)):
            con.unregister("_catalog_arrow")
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("images", "image_pixels", "quarantined_files")}
    return {**counts, **{f"kept_{t}": n for t, n in restored.items()}}


def _set_aside(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Copy the rows of the kept child tables, with their image's content hash and emotion, into temporary tables
    (inside the reload's transaction). Returns the tables that had rows."""
    present = {name for (name,) in con.execute(schema._MAIN_TABLES).fetchall()}
    kept = []
    for child in _KEPT_CHILDREN:
        if child not in present or not con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {child} LIMIT 1)").fetchone()[0]:
            continue
        con.execute(f"CREATE OR REPLACE TEMP TABLE _kept_{child} AS SELECT c.*, i.content_hash AS _kept_hash, "
                    f"i.emotion_id AS _kept_emotion FROM {child} c JOIN images i ON i.id = c.image_id")
        kept.append(child)
    return kept


def _put_back(con: duckdb.DuckDBPyConnection, kept: list[str]) -> dict[str, int]:
    """Insert the set-aside rows of images still present with the same content hash and emotion."""
    restored = {}
    for child in kept:
        con.execute(f"INSERT INTO {child} BY NAME SELECT k.* EXCLUDE (_kept_hash, _kept_emotion) FROM _kept_{child} k "
                    "JOIN images i ON i.id = k.image_id AND i.content_hash = k._kept_hash "
                    "AND i.emotion_id = k._kept_emotion")
        restored[child] = con.execute(f"SELECT count(*) FROM {child}").fetchone()[0]
    return restored


def _all_empty(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> bool:
    """Whether every one of these tables exists and holds no row."""
    present = {name for (name,) in con.execute(schema._MAIN_TABLES).fetchall()}
    if not present >= set(tables):
        return False
    query = " UNION ALL ".join(f"SELECT count(*) FROM (SELECT 1 FROM {t} LIMIT 1)" for t in tables)
    return not any(n for (n,) in con.execute(query).fetchall())


def _quoted(path: str | Path) -> str:
    return Path(path).as_posix().replace("'", "''")  # read_parquet in a view takes no bound parameter


def _insert_staged_pixels(con: duckdb.DuckDBPyConnection, staged: dict[str, str | Path]) -> None:
    """image_pixels from the staged source tables, source by source. A table in the catalog's order (the folder
    ingest stages rows sorted by path, as the catalog is) is paired by position, a scan of each side; any other
    (web downloads) by a join on the path. Either way every usable image must get its bytes, or nothing is kept."""
    for (key,) in con.execute("SELECT DISTINCT source_key FROM _catalog WHERE status = 'ok' ORDER BY ALL").fetchall():
        if key not in SOURCES or key not in staged:
            raise PixelPairingError(f"no staged table given for source {key}")
        table = f"read_parquet('{_quoted(staged[key])}')"
        block = f"(SELECT image_id, rel_path, status FROM _catalog WHERE source_key = '{key}')"  # a known key
        before = con.execute("SELECT count(*) FROM image_pixels").fetchone()[0]
        in_order = con.execute(
            f"SELECT count(*) FILTER (c.rel_path IS DISTINCT FROM s.rel_path) = 0 FROM {block} c "
            f"POSITIONAL JOIN (SELECT rel_path FROM {table}) s").fetchone()[0]
        if in_order:
            con.execute(f"INSERT INTO image_pixels SELECT c.image_id, s.content FROM {block} c POSITIONAL JOIN "
                        f"(SELECT rel_path, content FROM {table}) s "
                        "WHERE c.status = 'ok' AND c.rel_path = s.rel_path AND s.content IS NOT NULL")
        else:
            con.execute(f"INSERT INTO image_pixels SELECT c.image_id, s.content FROM {block} c JOIN {table} s "
                        "ON s.rel_path = c.rel_path WHERE c.status = 'ok' AND s.content IS NOT NULL")
        paired = con.execute("SELECT count(*) FROM image_pixels").fetchone()[0] - before
        wanted = con.execute(f"SELECT count(*) FROM {block} WHERE status = 'ok'").fetchone()[0]
        if paired != wanted:
            raise PixelPairingError(f"the staged table of source {key} holds the bytes of {paired} of the catalog's "
                                    f"{wanted} usable images: materialize image_catalog again")


def replace_facs_units(con: duckdb.DuckDBPyConnection, units: pd.DataFrame) -> int:
    """Upsert the action units. Referenced rows cannot be deleted in DuckDB while links point at them, so
    units that vanished from the page are removed by replace_facs_links once no link needs them."""
    con.register("_units", units[["action_unit", "description", "facial_muscle", "example", "action_unit_raw_label"]])
    try:
        con.execute(
            "INSERT INTO facs_single_units SELECT * FROM _units ON CONFLICT (action_unit) DO UPDATE SET "
            "description = excluded.description, facial_muscle = excluded.facial_muscle, "
            "example = excluded.example, action_unit_raw_label = excluded.action_unit_raw_label"
        )
    finally:
        con.unregister("_units")
    return con.execute("SELECT count(*) FROM facs_single_units").fetchone()[0]


def replace_facs_links(con: duckdb.DuckDBPyConnection, links: pd.DataFrame, keep_units: list[int]) -> int:
    """Replace the emotion -> action-unit links, then drop action units that are neither kept nor linked."""
    con.register("_links", links[["emotion", "action_units", "note"]])
    try:
        with transaction(con):
            con.execute("DELETE FROM facs_emotions_units")
            con.execute("INSERT INTO facs_emotions_units SELECT emotion, action_units, note FROM _links")
    finally:
        con.unregister("_links")
    con.execute(
        "DELETE FROM facs_single_units WHERE NOT list_contains(?, action_unit) "
        "AND action_unit NOT IN (SELECT action_units FROM facs_emotions_units)", [keep_units]
    )
    return con.execute("SELECT count(*) FROM facs_emotions_units").fetchone()[0]


def replace_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Delete every row of a leaf table (nothing references it) and insert the frame's, in one transaction."""
    return replace_tables(con, {table: frame})[table]


def replace_tables(con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    """replace_rows for several leaf tables in one transaction: readers see all the old rows or all the new, and a
    failure part-way leaves every table as it was. Returns the rows per table."""
    names = [f"_rows_{i}" for i in range(len(frames))]
    for name, frame in zip(names, frames.values()):
        con.register(name, frame)
    try:
        with transaction(con):
            for name, table in zip(names, frames):
                con.execute(f"DELETE FROM {table}")
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {name}")
    finally:
        for name in names:
            con.unregister(name)
    return {table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] for table in frames}


def replace_survey(con: duckdb.DuckDBPyConnection, responses: pd.DataFrame, rejected: pd.DataFrame) -> int:
    columns = ", ".join(f'"{c}"' for c in survey.COLUMNS)
    con.register("_responses", responses[list(survey.COLUMNS)])
    con.register("_rejected", rejected[["row_number", "id", "reason"]])
    try:
        with transaction(con):
            con.execute("DELETE FROM survey_responses")
            con.execute("DELETE FROM survey_rejected_rows")
            con.execute(f"INSERT INTO survey_responses ({columns}) SELECT {columns} FROM _responses")
            con.execute("INSERT INTO survey_rejected_rows SELECT row_number, id, reason FROM _rejected")
    finally:
        con.unregister("_responses")
        con.unregister("_rejected")
    return con.execute("SELECT count(*) FROM survey_responses").fetchone()[0]


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY table_name").fetchall()]
    return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


# ---------------------------------------------------------------- the benchmark's tables

MODEL_RUN_COLUMNS = (
    "id", "reader", "origin", "label_source", "created", "config", "backend", "device", "train_seconds",
    "parameters", "model_sha256", "validation_accuracy", "data_fingerprint", "synthetic", "dagster_run_id", "caveat",
)
PROBABILITY_COLUMNS = ("p_anger", "p_disgust", "p_fear", "p_happiness", "p_sadness", "p_surprise", "p_neutral")


def record_model_run(con: duckdb.DuckDBPyConnection, run: dict) -> str:
    """Insert a model run unless its id is there already (ids derive from content: same id, same model)."""
    values = [run.get(c) for c in MODEL_RUN_COLUMNS]
    placeholders = ", ".join("?" for _ in MODEL_RUN_COLUMNS)
    con.execute(f"INSERT INTO model_runs ({', '.join(MODEL_RUN_COLUMNS)}) VALUES ({placeholders}) "
                "ON CONFLICT DO NOTHING", values)
    return run["id"]


def replace_predictions(con: duckdb.DuckDBPyConnection, model_run_id: str, image_ids, probabilities) -> int:
    """Replace one reader's predictions: image ids and their N x 7 probabilities (the argmax is the emotion)."""
    import numpy as np

    probs = np.asarray(probabilities, dtype=float).reshape(len(image_ids), 7)
    if not np.isfinite(probs).all():
        bad = int((~np.isfinite(probs)).any(axis=1).sum())
        raise ValueError(f"reader {model_run_id} gave {bad} images probabilities that are not numbers (NaN or "
                         "infinite); its predictions were not stored")
    frame = pd.DataFrame(probs, columns=list(PROBABILITY_COLUMNS))
    frame.insert(0, "emotion_id", probs.argmax(axis=1).astype("int32") if len(probs) else [])
    frame.insert(0, "image_id", pd.Series(image_ids, dtype="int64"))
    frame.insert(0, "model_run_id", model_run_id)
    con.register("_preds", frame)
    try:
        with transaction(con):
            con.execute("DELETE FROM predictions WHERE model_run_id = ?", [model_run_id])
            con.execute("INSERT INTO predictions BY NAME SELECT * FROM _preds")
    finally:
        con.unregister("_preds")
    return len(frame)
