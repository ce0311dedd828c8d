"""The bytes behind a catalog file: the staged source tables it read (recorded in the file), the check that
they are all still there, and the stream of (image_id, content) batches in catalog order. Pure module
(no Dagster)."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from femo_pipeline import imaging
from femo_pipeline.sources import SOURCES

SOURCES_KEY = b"femo.staged_sources"  # catalog file metadata: {source_key: {"file", "rows"}} of the tables read


class CatalogError(ValueError):
    """The catalog would be inconsistent (for example two files mapped to one id)."""


def byte_tables(catalog_path: str | Path) -> dict[str, str]:
    """{source_key: file} of the staged source tables a catalog file read (the bytes of its rows)."""
    return {key: value["file"] for key, value in recorded_sources(catalog_path).items() if "file" in value}


def recorded_sources(catalog_path: str | Path) -> dict[str, dict]:
    """{source_key: {"file", "rows"}} of the staged tables a catalog file was built from ({} if not recorded)."""
    raw = (pq.read_schema(catalog_path).metadata or {}).get(SOURCES_KEY)
    return json.loads(raw) if raw else {}


def check_sources(catalog_path: str | Path, staged: dict[str, str | Path] | None = None,
                  sources: list[str] | None = None, keys: pa.ChunkedArray | None = None) -> list[str]:
    """The catalog's sources (only `sources` if given) in catalog order, once each staged table it was built
    from (or `staged`, {source_key: path}) is found with the rows it had; a CatalogError naming the fix
    otherwise, also for a catalog that does not record its tables (an older femo's)."""
    recorded = recorded_sources(catalog_path)
    staged = byte_tables(catalog_path) if staged is None else staged
    if keys is None:
        keys = pq.read_table(catalog_path, columns=["source_key"]).column("source_key")
    unrecorded = set(pc.unique(keys).to_pylist()) - set(recorded) - {None}
    if unrecorded and (sources is None or unrecorded & set(sources)):
        raise CatalogError(f"the catalog does not record the staged tables it read for {sorted(unrecorded)} (made by "
                           "an older femo?): materialize image_catalog again")
    wanted = [key for key in sorted(recorded, key=lambda k: SOURCES[k].id) if sources is None or key in sources]
    for key in wanted:
        path = staged.get(key)
        if path is None or not Path(path).exists():
            raise CatalogError(f"the staged table of source {key} that the catalog was built from is gone (an old "
                               "version, removed): materialize image_catalog again")
        if pq.read_metadata(path).num_rows != recorded[key]["rows"]:
            raise CatalogError(f"the staged table of source {key} given for the catalog is not the one it was "
                               "built from (other rows): materialize image_catalog again")
    return wanted


def pixel_batches(catalog_path: str | Path, staged: dict[str, str | Path] | None = None,
                  sources: list[str] | None = None, batch_rows: int = 8192,
                  memory_limit: str = "512MB") -> pa.RecordBatchReader:
    """The bytes of the catalog's usable images as a stream of (image_id, content) batches, in catalog order,
    read from the staged source tables it was built from (see byte_tables; or `staged`, {source_key: path});
    only `sources` if given.

    A table in the catalog's order (the folder ingest's) is paired row group by row group; any other is put in
    order by DuckDB, spilling to disk past `memory_limit`. Nothing holds every image's bytes at once."""
    if staged is None:
        staged = byte_tables(catalog_path)
    meta = pq.read_table(catalog_path, columns=["image_id", "source_key", "source_id", "rel_path", "status"])
    keys = meta.column("source_key")
    wanted = check_sources(catalog_path, staged, sources, keys)
    schema = pa.schema([("image_id", pa.int64()), ("content", pa.binary())])

    def batches():
        for key in wanted:
            block = meta.filter(pc.equal(keys, key))
            spill = Path(staged[key]).parent / f".{Path(staged[key]).name}.{uuid.uuid4().hex}.spill"
            try:
                for start, content in _contents_in_order(staged[key], block, batch_rows, memory_limit, spill):
                    rows = block.slice(start, len(content))
                    ok = pc.equal(rows.column("status"), imaging.OK).combine_chunks()
                    if not pc.any(ok).as_py():
                        continue
                    usable = content.filter(ok)
                    if usable.null_count:
                        raise CatalogError(f"the staged table of source {key} lacks the bytes of {usable.null_count} "
                                           "usable images of the catalog: materialize image_catalog again")
                    yield pa.RecordBatch.from_arrays([rows.column("image_id").combine_chunks().filter(ok), usable],
                                                     schema=schema)
            finally:
                shutil.rmtree(spill, ignore_errors=True)

    return pa.RecordBatchReader.from_batches(schema, batches())


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
