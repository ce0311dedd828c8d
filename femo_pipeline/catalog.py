"""Build the image catalog from per-source inspection tables: ids, aspect ratios and duplicate flags.

Pure module (no Dagster). The bytes behind a catalog file (the staged tables it read, their check, the pixel
stream) live in catalog_bytes; the names callers use are re-exported here.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from femo_pipeline import imaging
from femo_pipeline.catalog_bytes import (  # re-exported: catalog.pixel_batches, catalog.check_sources, ...
    SOURCES_KEY,
    CatalogError,
    byte_tables,
    check_sources,
    pixel_batches,
    recorded_sources,
)
from femo_pipeline.files import atomic_path
from femo_pipeline.sources import SOURCES
from femo_pipeline.vocab import EMOTIONS
from femo_pipeline.warehouse import image_id

CATALOG_COLUMNS = (
    "image_id", "source_key", "source_id", "rel_path", "split", "usage", "subject", "sequence", "label_raw",
    "emotion_id", "emotion",
    "height", "width", "aspect_ratio", "image_format", "color_space", "channels", "file_size_bytes",
    "content_hash", "status", "reason", "duplicate_count", "duplicate_cross_split", "duplicate_label_conflict",
    "synthetic", "content",
)
META_COLUMNS = tuple(c for c in CATALOG_COLUMNS if c != "content")  # the catalog file's columns (bytes stay staged)


def _with_source_columns(table: pa.Table, source_key: str, synthetic: bool, slice_rows: int = 65536) -> pa.Table:
    n = table.num_rows
    for name in ("subject", "sequence"):  # staged before file names were read for them: none known
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(n, pa.string()))
    source = SOURCES[source_key]
    ids = []
    for start in range(0, n, slice_rows):  # Python objects for one slice at a time (a million paths: ~100 MB)
        paths = table.column("rel_path").slice(start, slice_rows).to_pylist()
        ids.append(pa.array([image_id(source_key, p) for p in paths], pa.int64()))
    return (
        table.append_column("image_id", pa.chunked_array(ids, pa.int64()))
        .append_column("source_key", pa.array([source_key] * n, pa.string()))
        .append_column("source_id", pa.array([source.id] * n, pa.int32()))
        .append_column("aspect_ratio", _aspect_ratios(table.column("width"), table.column("height")))
        .append_column("emotion", _emotion_names(table.column("emotion_id")))
        .append_column("synthetic", pa.array([synthetic] * n, pa.bool_()))
    )


def _aspect_ratios(width: pa.ChunkedArray, height: pa.ChunkedArray) -> pa.Array:
    """imaging.aspect_ratio of every row, computed once per distinct (width, height) pair: a folder of faces
    has a handful of sizes, and the same Python rounding as one file at a time."""
    key = pc.add(pc.multiply(width.cast(pa.int64()), 1 << 32), height.cast(pa.int64()))
    pairs = pc.unique(key).to_pylist()
    values = pa.array([None if k is None else imaging.aspect_ratio(k >> 32, k & 0xFFFFFFFF) for k in pairs],
                      pa.float64())
    return values.take(pc.index_in(key, value_set=pa.array(pairs, pa.int64())))


def _emotion_names(emotion_id: pa.ChunkedArray) -> pa.Array:
    ids = sorted(EMOTIONS)
    names = pa.array([EMOTIONS[i] for i in ids], pa.string())
    return names.take(pc.index_in(emotion_id, value_set=pa.array(ids, emotion_id.type)))


def _hash_groups(relation: str) -> str:
    """SQL: per content hash of the usable images of `relation`, the number of files (n), whether train and test
    share it (cross_split), and whether its files carry different emotions (label_conflict)."""
    return f"""
        SELECT content_hash, count(*) AS n,
               bool_or(split = 'train') AND bool_or(split = 'test') AS cross_split,
               count(DISTINCT emotion_id) > 1 AS label_conflict
        FROM {relation} WHERE status = 'ok' GROUP BY content_hash"""


def build_catalog(per_source: dict[str, tuple[pa.Table, bool]]) -> pa.Table:
    """Union the per-source tables ({source_key: (inspection table, synthetic)}) and flag duplicates.

    Duplicates are found by content hash over usable images of every source: duplicate_count counts the files
    with those bytes, duplicate_cross_split marks bytes present in both train and test, duplicate_label_conflict
    bytes that carry more than one emotion.
    """
    parts = [_with_source_columns(t, key, synth) for key, (t, synth) in sorted(per_source.items())]
    return _flag_duplicates(parts).select(list(CATALOG_COLUMNS))


def write_catalog(per_source: dict[str, tuple[str | Path, bool]], out: str | Path) -> pa.Table:
    """The catalog of staged Parquet files ({source_key: (path, synthetic)}) written to `out`, without the file
    bytes: those stay in the staged source tables, and `pixel_batches` pairs them with the catalog's rows for
    whoever needs them (the warehouse load, face detection). Only the metadata columns of the sources are read.
    The file records the path and row count of each source table it was built from (staged files are written
    once, never replaced), so its rows are paired with those very bytes. Same rows and columns as build_catalog
    without content."""
    parts = []
    sources = {}
    for key, (path, synth) in sorted(per_source.items()):
        names = [n for n in pq.read_schema(path).names if n != "content"]
        part = pq.read_table(path, columns=names)
        sources[key] = {"file": str(path), "rows": part.num_rows}
        parts.append(_with_source_columns(part, key, synth))
    meta = _flag_duplicates(parts).select(list(META_COLUMNS))
    meta = meta.replace_schema_metadata({SOURCES_KEY: json.dumps(sources, sort_keys=True).encode()})
    with atomic_path(out) as tmp:
        pq.write_table(meta, tmp, compression="zstd")
    return meta


def _flag_duplicates(parts: list[pa.Table]) -> pa.Table:
    """Union the per-source tables, quarantine all but the first of files that share an image id, and add the
    duplicate columns (content optional), in (source_id, rel_path) order.

    DuckDB finds the id collisions and the groups of usable images that share their bytes (HAVING n > 1: a
    handful, where a join of every row back to its group sorted a million paths); Arrow looks each row's hash up
    in those groups (a hash in none is a single file), and sorts only when the rows are not in order already
    (the folder ingest's are): faster than the join of every row, with half its extra memory at a million
    files (figures in docs/benchmarks.md, 'ingest')."""
    if not parts:
        raise CatalogError("no source produced any file: nothing to catalogue")
    unioned = pa.concat_tables(parts, promote_options="default")
    con = duckdb.connect()
    try:
        rows = pa.array(range(unioned.num_rows), pa.int64())
        con.register("ids", unioned.select(["image_id", "source_id", "source_key", "rel_path"]).append_column("row", rows))
        clashes = con.execute(_ID_CLASHES).fetchall()
        if clashes:
            unioned = _quarantine_clashes(unioned, clashes)
        con.register("u", unioned.select(["content_hash", "split", "emotion_id", "status"]))
        groups = con.sql(f"SELECT * FROM ({_hash_groups('u')}) WHERE n > 1").to_arrow_table()
    finally:
        con.close()
    ok = pc.fill_null(pc.equal(unioned.column("status"), imaging.OK), False)
    row = pc.index_in(unioned.column("content_hash"), value_set=groups.column("content_hash"), skip_nulls=True)
    n = pc.fill_null(pc.take(groups.column("n"), row), 1)
    present = set(unioned.schema.names)
    out = unioned.select([c for c in CATALOG_COLUMNS if not c.startswith("duplicate_") and c in present])
    out = (out.append_column("duplicate_count", pc.if_else(ok, n, 0).cast(pa.int32()))
           .append_column("duplicate_cross_split", pc.fill_null(pc.and_(ok, pc.take(groups.column("cross_split"), row)), False))
           .append_column("duplicate_label_conflict",
                          pc.fill_null(pc.and_(ok, pc.take(groups.column("label_conflict"), row)), False)))
    return out if _in_order(out) else out.sort_by([("source_id", "ascending"), ("rel_path", "ascending")])


# rows whose image id another file has too, after the first of them (by source and path), with that first file
_ID_CLASHES = """
    SELECT row, first FROM (
        SELECT row, first_value(source_key || '/' || rel_path) OVER w AS first, row_number() OVER w AS rank
        FROM ids WINDOW w AS (PARTITION BY image_id ORDER BY source_id, rel_path)
        QUALIFY count(*) OVER (PARTITION BY image_id) > 1)
    WHERE rank > 1"""


def _quarantine_clashes(table: pa.Table, clashes: list[tuple[int, str]]) -> pa.Table:
    """The rows `clashes` names ((row, first file)) quarantined with the reason: their id is another file's."""
    status, reason = table.column("status").to_pylist(), table.column("reason").to_pylist()
    for row, first in clashes:
        status[row] = imaging.QUARANTINED
        reason[row] = f"image id collision with {first}: this file is not stored under the same id"
    table = table.set_column(table.schema.get_field_index("status"), "status", pa.array(status, pa.string()))
    return table.set_column(table.schema.get_field_index("reason"), "reason", pa.array(reason, pa.string()))


def _in_order(table: pa.Table) -> bool:
    """Whether the rows are sorted by (source_id, rel_path) already, paths compared as bytes (as sort_by does)."""
    if table.num_rows < 2:
        return True
    n = table.num_rows - 1  # each row against the next
    source, path = table.column("source_id"), table.column("rel_path").cast(pa.binary())
    source_now, source_next, path_now, path_next = source.slice(0, n), source.slice(1), path.slice(0, n), path.slice(1)
    step = pc.or_(pc.less(source_now, source_next),
                  pc.and_(pc.equal(source_now, source_next), pc.less_equal(path_now, path_next)))
    return bool(pc.all(pc.fill_null(step, False)).as_py())


def duplicate_summary(con: duckdb.DuckDBPyConnection, relation: str = "catalog") -> dict[str, int]:
    """Duplicate statistics of a catalog relation registered on `con` (usable images only)."""
    row = con.execute(
        f"""
        WITH ok AS (SELECT * FROM {relation} WHERE status = 'ok'),
        g AS (SELECT * FROM ({_hash_groups(relation)}) WHERE n > 1)
        SELECT
            (SELECT count(*) FROM g),
            (SELECT coalesce(sum(n), 0) FROM g),
            (SELECT count(*) FROM g WHERE cross_split),
            (SELECT count(*) FROM g WHERE label_conflict),
            (SELECT count(*) FROM ok WHERE split = 'test' AND content_hash IN
                (SELECT content_hash FROM ok WHERE split = 'train'))
        """
    ).fetchone()
    keys = ("duplicate_groups", "files_in_duplicate_groups", "groups_across_train_test",
            "groups_with_conflicting_labels", "test_files_also_in_train")
    return dict(zip(keys, (int(v) for v in row)))


__all__ = [
    "CATALOG_COLUMNS", "META_COLUMNS", "SOURCES_KEY", "CatalogError", "build_catalog", "byte_tables", "check_sources",
    "duplicate_summary", "pixel_batches", "recorded_sources", "write_catalog",
]
