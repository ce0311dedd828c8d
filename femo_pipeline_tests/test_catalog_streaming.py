"""The image catalog is written without holding the file bytes in memory, and equals the in-memory build."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from femo_pipeline import catalog
from femo_pipeline_tests.conftest import materialize
from femo_pipeline_tests.test_assets import DEMO_RUN_CONFIG

INGEST = ["demo_source_files", "fer2013_images", "kaggle_face_images"]


def _staged_demo(tmp_path):
    """The demo folders ingested and staged: ({source: (staged file, synthetic)}, the in-memory catalog)."""
    data_dir = tmp_path / "data"
    config = {"ops": {"demo_source_files": DEMO_RUN_CONFIG["ops"]["demo_source_files"]}}
    assert materialize(data_dir, selection=INGEST, run_config=config, facs_url="http://127.0.0.1:9/").success
    paths = {"fer2013": (data_dir / "staging" / "fer2013_images.parquet", True),
             "kaggle": (data_dir / "staging" / "kaggle_face_images.parquet", False)}
    return paths, catalog.build_catalog({k: (pq.read_table(p), s) for k, (p, s) in paths.items()})


def test_streamed_catalog_equals_the_in_memory_build(tmp_path):
    paths, expected = _staged_demo(tmp_path)
    out = tmp_path / "catalog.parquet"
    meta = catalog.write_catalog(paths, out, memory_limit="64MB")
    written = pq.read_table(out)
    assert written.schema.names == list(catalog.CATALOG_COLUMNS)
    assert written.to_pylist() == expected.to_pylist()  # same rows, order and bytes
    assert "content" not in meta.schema.names and meta.num_rows == expected.num_rows
    assert sum(r["status"] != "ok" for r in meta.to_pylist()) > 0  # quarantined files are catalogued too
    assert not list(tmp_path.glob(".catalog.parquet*"))  # no temporary or spill files left behind


def test_a_staged_file_out_of_path_order_gives_the_same_catalog(tmp_path):
    """The folder ingest stages rows sorted by path and the bytes are paired row by row; a table in any other
    order (web downloads) is put in order by DuckDB, with the same result, in batches of any size."""
    paths, expected = _staged_demo(tmp_path)
    table = pq.read_table(paths["kaggle"][0])
    shuffled = tmp_path / "kaggle_shuffled.parquet"
    order = np.random.default_rng(0).permutation(table.num_rows)
    pq.write_table(table.take(order), shuffled, row_group_size=17)
    assert table.take(order).column("rel_path") != table.column("rel_path")
    for batch_rows in (7, 2048):
        out = tmp_path / f"catalog_{batch_rows}.parquet"
        catalog.write_catalog({**paths, "kaggle": (shuffled, False)}, out, batch_rows=batch_rows)
        assert pq.read_table(out).to_pylist() == expected.to_pylist()
        assert pq.ParquetFile(out).metadata.row_group(0).num_rows <= batch_rows


def test_image_catalog_asset_never_loads_the_staged_bytes(tmp_path, monkeypatch):
    """The asset reads staged tables whole only without their content column; the bytes move in batches."""
    read_columns = []
    real = pq.read_table

    def spy(source, *args, columns=None, **kwargs):
        read_columns.append((str(source), columns))
        return real(source, *args, columns=columns, **kwargs)

    monkeypatch.setattr(catalog.pq, "read_table", spy)
    data_dir = tmp_path / "data"
    config = {"ops": {"demo_source_files": DEMO_RUN_CONFIG["ops"]["demo_source_files"]}}
    assert materialize(data_dir, selection=[*INGEST, "image_catalog"], run_config=config,
                       facs_url="http://127.0.0.1:9/").success
    staged = [(s, c) for s, c in read_columns if "staging" in s]
    assert staged and all(c is not None and "content" not in c for _, c in staged)
    with_bytes = pq.read_table(data_dir / "staging" / "image_catalog.parquet")
    assert with_bytes.column("content").null_count < with_bytes.num_rows  # the catalog file still has the bytes
