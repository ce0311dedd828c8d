"""Build the image catalog from per-source inspection tables: ids, aspect ratios and duplicate flags.

Pure module (no Dagster).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from femo_pipeline import imaging
from femo_pipeline.files import atomic_path
from femo_pipeline.vocab import EMOTIONS, SOURCES
from femo_pipeline.warehouse import image_id

CATALOG_COLUMNS = (
    "image_id", "source_key", "source_id", "rel_path", "split", "usage", "label_raw", "emotion_id", "emotion",
    "height", "width", "aspect_ratio", "image_format", "color_space", "channels", "file_size_bytes",
    "content_hash", "status", "reason", "duplicate_count", "duplicate_cross_split", "duplicate_label_conflict",
    "synthetic", "content",
)


class CatalogError(ValueError):
    """The catalog would be inconsistent (for example two files mapped to one id)."""


def _with_source_columns(table: pa.Table, source_key: str, synthetic: bool, slice_rows: int = 65536) -> pa.Table:
    n = table.num_rows
    source = SOURCES[source_key]
    ids, aspect, emotions = [], [], []
    for start in range(0, n, slice_rows):  # Python objects for one slice at a time (a million paths: ~100 MB)
        part = table.slice(start, slice_rows)
        ids.append(pa.array([image_id(source_key, p) for p in part.column("rel_path").to_pylist()], pa.int64()))
        aspect.append(pa.array([imaging.aspect_ratio(w, h) for w, h in zip(
            part.column("width").to_pylist(), part.column("height").to_pylist())], pa.float64()))
        emotions.append(pa.array([EMOTIONS.get(e) if e is not None else None
                                  for e in part.column("emotion_id").to_pylist()], pa.string()))
    return (
        table.append_column("image_id", pa.chunked_array(ids, pa.int64()))
        .append_column("source_key", pa.array([source_key] * n, pa.string()))
        .append_column("source_id", pa.array([source.id] * n, pa.int32()))
        .append_column("aspect_ratio", pa.chunked_array(aspect, pa.float64()))
        .append_column("emotion", pa.chunked_array(emotions, pa.string()))
        .append_column("synthetic", pa.array([synthetic] * n, pa.bool_()))
    )


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


def write_catalog(per_source: dict[str, tuple[str | Path, bool]], out: str | Path, memory_limit: str = "512MB",
                  batch_rows: int = 2048) -> pa.Table:
    """The catalog of staged Parquet files ({source_key: (path, synthetic)}) written to `out` without holding the
    file bytes in memory: only the metadata columns are read into Python. The bytes are copied in batches of
    `batch_rows`: a staged file whose rows are already in the catalog's order (the folder ingest writes them
    sorted by path) is paired with the catalog row by row; any other (a web download table) is put in order by
    DuckDB, spilling to disk past `memory_limit`. Returns the catalog without its content column.
    Same rows and columns as build_catalog on the same tables."""
    out = Path(out)
    parts = []
    for key, (path, synth) in sorted(per_source.items()):
        names = [n for n in pq.read_schema(path).names if n != "content"]
        parts.append(_with_source_columns(pq.read_table(path, columns=names), key, synth))
    # the catalog is ordered by source id, then path: each source's rows are one block, in source-id order
    blocks = sorted(((key, part.num_rows) for key, part in zip(sorted(per_source), parts)),
                    key=lambda block: SOURCES[block[0]].id)
    meta = _flag_duplicates(parts)
    columns = [c for c in CATALOG_COLUMNS if c != "content"]
    meta = meta.select(columns)
    schema = pa.schema([meta.schema.field(c) if c != "content" else pa.field("content", pa.binary())
                        for c in CATALOG_COLUMNS])
    spill = out.parent / f".{out.name}.spill"
    try:
        with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, compression="none") as writer:
            offset = 0
            for key, count in blocks:
                block = meta.slice(offset, count)
                for start, content in _contents_in_order(per_source[key][0], block, batch_rows, memory_limit, spill):
                    rows = block.slice(start, len(content))
                    writer.write_table(pa.Table.from_arrays(
                        [rows.column(c) if c != "content" else content for c in CATALOG_COLUMNS], schema=schema),
                        row_group_size=batch_rows)
                offset += count
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return meta


def _contents_in_order(path: str | Path, block: pa.Table, batch_rows: int, memory_limit: str, spill: Path):
    """(first row, content array) batches of one staged file's bytes, in the order of the catalog block (which
    has the same rows, ordered by rel_path)."""
    want = block.column("rel_path")
    source = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering reads the whole file (every byte) into memory
    if source.metadata.num_rows == block.num_rows:
        # the folder ingest's order: check the paths row group by row group, then stream the bytes
        done, in_order = 0, True
        for i in range(source.num_row_groups):
            got = source.read_row_group(i, columns=["rel_path"]).column("rel_path")
            if not got.equals(want.slice(done, len(got))):
                in_order = False
                break
            done += len(got)
        if in_order:
            done = 0
            for batch in source.iter_batches(batch_size=batch_rows, columns=["content"]):
                yield done, batch.column("content")
                done += batch.num_rows
            return
    con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(spill),
                                 "preserve_insertion_order": False})
    try:
        con.register("want", block.select(["rel_path"]).append_column(
            "pos", pa.array(range(block.num_rows), pa.int64())))
        reader = con.sql(
            f"SELECT s.content FROM want LEFT JOIN read_parquet('{_quote(path)}') s USING (rel_path) "
            "ORDER BY want.pos").to_arrow_reader(batch_rows)
        done = 0
        for batch in reader:
            yield done, batch.column("content").cast(pa.binary())
            done += batch.num_rows
    finally:
        con.close()


def _quote(path: str | Path) -> str:
    return Path(path).as_posix().replace("'", "''")  # COPY and views take no bound parameters


def _flag_duplicates(parts: list[pa.Table]) -> pa.Table:
    """Union the per-source tables, refuse id collisions, and add the duplicate columns (content optional)."""
    if not parts:
        raise CatalogError("no source produced any file: nothing to catalogue")
    unioned = pa.concat_tables(parts, promote_options="default")
    con = duckdb.connect()
    con.register("u", unioned)
    clash = con.execute(
        "SELECT image_id, list(source_key || '/' || rel_path) FROM u GROUP BY 1 HAVING count(*) > 1 LIMIT 3"
    ).fetchall()
    if clash:
        raise CatalogError(f"image id collision between files: {clash}")
    present = set(unioned.schema.names)
    cols = ", ".join(f"u.{c}" for c in CATALOG_COLUMNS if not c.startswith("duplicate_") and c in present)
    return con.sql(
        f"""
        WITH groups AS ({_hash_groups("u")})
        SELECT {cols},
               CASE WHEN u.status = 'ok' THEN g.n ELSE 0 END::INTEGER AS duplicate_count,
               coalesce(u.status = 'ok' AND g.cross_split, FALSE) AS duplicate_cross_split,
               coalesce(u.status = 'ok' AND g.label_conflict, FALSE) AS duplicate_label_conflict
        FROM u LEFT JOIN groups g USING (content_hash)
        ORDER BY u.source_id, u.rel_path
        """
    ).to_arrow_table()


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
