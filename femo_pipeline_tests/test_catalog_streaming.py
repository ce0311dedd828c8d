"""The image catalog holds no bytes: they stay in the staged source tables and are paired with the catalog's rows
in batches (catalog.pixel_batches), only with the source versions the catalog was built from."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from femo_pipeline import catalog, warehouse
from femo_pipeline_tests.conftest import DEMO_RUN_CONFIG, FOLDER_ASSETS, materialize, staged_file

INGEST = ["demo_source_files", *FOLDER_ASSETS]
DEMO = {"ops": {"demo_source_files": DEMO_RUN_CONFIG["ops"]["demo_source_files"]}}


def _staged_demo(tmp_path):
    """The demo folders ingested and staged: ({source: (staged file, synthetic)}, the in-memory catalog)."""
    data_dir = tmp_path / "data"
    assert materialize(data_dir, selection=INGEST, run_config=DEMO, facs_url="http://127.0.0.1:9/").success
    paths = {"fer2013": (staged_file(data_dir, "fer2013_images"), True),
             "kaggle": (staged_file(data_dir, "kaggle_face_images"), False)}
    return paths, catalog.build_catalog({k: (pq.read_table(p), s) for k, (p, s) in paths.items()})


def _pixels(reader: pa.RecordBatchReader) -> list[tuple[int, bytes]]:
    return [(i, c) for batch in reader for i, c in zip(batch.column("image_id").to_pylist(),
                                                        batch.column("content").to_pylist())]


def _expected_pixels(expected: pa.Table) -> list[tuple[int, bytes]]:
    return [(r["image_id"], r["content"]) for r in expected.to_pylist() if r["status"] == "ok"]


def test_the_catalog_file_equals_the_in_memory_build_and_its_bytes_pair_with_it(tmp_path):
    paths, expected = _staged_demo(tmp_path)
    out = tmp_path / "catalog.parquet"
    meta = catalog.write_catalog(paths, out)
    written = pq.read_table(out)
    assert written.schema.names == list(catalog.META_COLUMNS)  # no bytes in the catalog file
    assert written.to_pylist() == expected.drop(["content"]).to_pylist()  # same rows and order
    assert meta.num_rows == expected.num_rows
    assert sum(r["status"] != "ok" for r in meta.to_pylist()) > 0  # quarantined files are catalogued too
    assert set(catalog.recorded_sources(out)) == {"fer2013", "kaggle"}
    staged = {k: p for k, (p, _) in paths.items()}
    got = _pixels(catalog.pixel_batches(out, staged))
    assert got == _expected_pixels(expected)  # every usable image's bytes, in catalog order, nothing else
    assert _pixels(catalog.pixel_batches(out, staged, sources=["kaggle"])) == [
        p for p, r in zip(_expected_pixels(expected), [r for r in expected.to_pylist() if r["status"] == "ok"])
        if r["source_key"] == "kaggle"]
    assert not list(tmp_path.glob(".catalog.parquet*")) and not list(tmp_path.glob("data/staging/.*spill"))


def test_a_staged_file_out_of_path_order_gives_the_same_catalog_and_bytes(tmp_path):
    """The folder ingest stages rows sorted by path and the bytes are paired row group by row group; a table in
    any other order (web downloads) is put in order by DuckDB, with the same result, in batches of any size."""
    paths, expected = _staged_demo(tmp_path)
    table = pq.read_table(paths["kaggle"][0])
    shuffled = tmp_path / "kaggle_shuffled.parquet"
    order = np.random.default_rng(0).permutation(table.num_rows)
    pq.write_table(table.take(order), shuffled, row_group_size=17)
    assert table.take(order).column("rel_path") != table.column("rel_path")
    out = tmp_path / "catalog.parquet"
    catalog.write_catalog({**paths, "kaggle": (shuffled, False)}, out)
    assert pq.read_table(out).to_pylist() == expected.drop(["content"]).to_pylist()
    staged = {"fer2013": paths["fer2013"][0], "kaggle": shuffled}
    for batch_rows in (7, 2048):
        reader = catalog.pixel_batches(out, staged, batch_rows=batch_rows, memory_limit="64MB")
        batches = list(reader)
        assert max(b.num_rows for b in batches) <= batch_rows
        assert _pixels(pa.RecordBatchReader.from_batches(reader.schema, batches)) == _expected_pixels(expected)


def test_a_source_table_gone_or_not_the_catalogs_is_refused(tmp_path):
    paths, _ = _staged_demo(tmp_path)
    out = tmp_path / "catalog.parquet"
    catalog.write_catalog(paths, out)
    staged = {k: p for k, (p, _) in paths.items()}
    other = tmp_path / "kaggle_other.parquet"
    pq.write_table(pq.read_table(staged["kaggle"]).slice(1), other)  # another version: other rows
    with pytest.raises(catalog.CatalogError, match="kaggle given for the catalog is not the one it was built from"):
        list(catalog.pixel_batches(out, {**staged, "kaggle": other}))
    staged["fer2013"].unlink()
    with pytest.raises(catalog.CatalogError, match="fer2013 that the catalog was built from is gone"):
        catalog.pixel_batches(out, staged, sources=["fer2013"])
    assert catalog.check_sources(out, staged, sources=["kaggle"]) == ["kaggle"]  # only the sources asked for


def test_a_catalog_without_its_source_record_or_a_source_without_bytes_is_refused(tmp_path):
    """Never a silent gap in image_pixels: a catalog that does not say which tables it read (an older femo's),
    or a source table that lacks the bytes of a usable image, is an error naming the fix."""
    paths, _ = _staged_demo(tmp_path)
    staged = {k: p for k, (p, _) in paths.items()}
    out = tmp_path / "catalog.parquet"
    catalog.write_catalog(paths, out)
    bare = tmp_path / "bare.parquet"
    pq.write_table(pq.read_table(out).replace_schema_metadata(None), bare)
    with pytest.raises(catalog.CatalogError, match="does not record"):
        catalog.pixel_batches(bare, staged)
    table = pq.read_table(staged["kaggle"])
    ok = [i for i, s in enumerate(table.column("status").to_pylist()) if s == "ok"]
    content = table.column("content").to_pylist()
    content[ok[0]] = None
    holed = tmp_path / "kaggle_holed.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("content"), "content",
                                    pa.array(content, pa.binary())), holed)
    catalog.write_catalog({**paths, "kaggle": (holed, False)}, out)
    with pytest.raises(catalog.CatalogError, match="lacks the bytes of 1 usable image"):
        list(catalog.pixel_batches(out, {**staged, "kaggle": holed}))


def test_image_catalog_asset_never_loads_the_staged_bytes(tmp_path, monkeypatch):
    """The asset reads staged tables only without their content column; the catalog file has none."""
    read_columns = []
    real = pq.read_table

    def spy(source, *args, columns=None, **kwargs):
        read_columns.append((str(source), columns))
        return real(source, *args, columns=columns, **kwargs)

    monkeypatch.setattr(catalog.pq, "read_table", spy)
    data_dir = tmp_path / "data"
    assert materialize(data_dir, selection=[*INGEST, "image_catalog"], run_config=DEMO,
                       facs_url="http://127.0.0.1:9/").success
    staged = [(s, c) for s, c in read_columns if "staging" in Path(s).parts]
    assert staged and all(c is not None and "content" not in c for _, c in staged)
    assert "content" not in pq.read_schema(staged_file(data_dir, "image_catalog")).names


def test_images_keeps_the_bytes_of_the_catalogs_version_when_a_source_is_materialized_again(tmp_path):
    """fer2013_images materialized again after image_catalog (another run, the sensor) writes a new file:
    images, run without the catalog, still loads the bytes of the file the catalog read, not the new one; with
    that file gone it fails with the reason instead of loading rows without bytes."""
    data_dir = tmp_path / "data"
    selection = [*INGEST, "image_catalog", "data_sources", "emotions", "images"]
    assert materialize(data_dir, selection=selection, run_config=DEMO, facs_url="http://127.0.0.1:9/").success
    read = {k: Path(v) for k, v in catalog.byte_tables(staged_file(data_dir, "image_catalog")).items()}
    assert read == {"fer2013": staged_file(data_dir, "fer2013_images"),
                    "kaggle": staged_file(data_dir, "kaggle_face_images"),
                    "extra": staged_file(data_dir, "extra_face_images")}
    assert materialize(data_dir, selection=["fer2013_images"], facs_url="http://127.0.0.1:9/").success
    assert staged_file(data_dir, "fer2013_images") != read["fer2013"] and read["fer2013"].exists()
    assert materialize(data_dir, selection=["images"], facs_url="http://127.0.0.1:9/").success
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        n_pixels, n_mismatched = con.execute(
            "SELECT count(*), count(*) FILTER (sha256(p.pixels) <> i.content_hash) FROM image_pixels p "
            "JOIN images i ON i.id = p.image_id").fetchone()
    statuses = pq.read_table(staged_file(data_dir, "image_catalog"), columns=["status"]).column("status").to_pylist()
    assert n_pixels == statuses.count("ok") and n_mismatched == 0  # every image has the bytes its row describes
    read["fer2013"].unlink()
    result = materialize(data_dir, selection=["images"], raise_on_error=False, facs_url="http://127.0.0.1:9/")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "fer2013 that the catalog was built from is gone" in str(failure.event_specific_data.error)


def test_aspect_ratios_and_emotion_names_match_the_per_file_functions():
    rng = np.random.default_rng(1)
    width = [int(w) for w in rng.integers(1, 5000, 500)] + [None, 48, 48, 7, None]
    height = [int(h) for h in rng.integers(1, 5000, 500)] + [48, None, 48, 3, None]
    got = catalog._aspect_ratios(pa.chunked_array([width], pa.int32()), pa.chunked_array([height], pa.int32()))
    assert got.to_pylist() == [catalog.imaging.aspect_ratio(w, h) for w, h in zip(width, height)]
    ids = [0, 7, None, 3, 3, 6]
    names = catalog._emotion_names(pa.chunked_array([ids], pa.int32())).to_pylist()
    assert names == [catalog.EMOTIONS.get(i) if i is not None else None for i in ids]


def _warehouse(tmp_path, name):
    con = duckdb.connect(str(tmp_path / f"{name}.duckdb"))
    warehouse.ensure_schema(con)
    warehouse.upsert_data_sources(con, {"fer2013"})
    warehouse.upsert_emotions(con)
    return con


def test_the_warehouse_pairs_staged_bytes_in_order_or_by_path_and_never_loads_a_partial_set(tmp_path):
    """replace_images with the staged tables: the folder tables (in catalog order) by position, a shuffled one
    by path, the same image_pixels as a catalog holding the bytes; a table missing one usable image's bytes
    fails and leaves the warehouse as it was."""
    paths, expected = _staged_demo(tmp_path)
    staged = {k: p for k, (p, _) in paths.items()}
    reference = _warehouse(tmp_path, "reference")
    warehouse.replace_images(reference, expected)
    want = reference.execute("SELECT image_id, pixels FROM image_pixels ORDER BY image_id").fetchall()
    table = pq.read_table(staged["kaggle"])
    shuffled = tmp_path / "kaggle_shuffled.parquet"
    pq.write_table(table.take(np.random.default_rng(1).permutation(table.num_rows)), shuffled)
    for name, tables in (("in_order", staged), ("shuffled", {**staged, "kaggle": shuffled})):
        out = tmp_path / f"catalog_{name}.parquet"
        catalog.write_catalog({k: (p, paths[k][1]) for k, p in tables.items()}, out)
        con = _warehouse(tmp_path, name)
        counts = warehouse.replace_images(con, out, tables)
        assert con.execute("SELECT image_id, pixels FROM image_pixels ORDER BY image_id").fetchall() == want, name
        assert counts["image_pixels"] == counts["images"] == len(want)
    content = table.column("content").to_pylist()
    content[[i for i, s in enumerate(table.column("status").to_pylist()) if s == "ok"][0]] = None
    holed = tmp_path / "kaggle_holed.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("content"), "content",
                                    pa.array(content, pa.binary())), holed)
    out = tmp_path / "catalog_holed.parquet"
    catalog.write_catalog({**paths, "kaggle": (holed, False)}, out)
    with pytest.raises(warehouse.PixelPairingError, match="kaggle holds the bytes of"):
        warehouse.replace_images(con, out, {**staged, "kaggle": holed})
    assert con.execute("SELECT count(*) FROM image_pixels").fetchone()[0] == len(want)  # rolled back


def _inspect_in_a_daemon(root, queue):
    from femo_pipeline import folders
    entries = folders.scan_folder(root, with_splits=True)
    queue.put(folders.inspect_folder(root, entries, workers=2, chunk_size=50).num_rows)


def test_a_daemonic_process_inspects_in_process_instead_of_failing(demo_inputs):
    """A Celery prefork worker is daemonic and may not start processes: the folder inspection then runs in it
    (it failed with 'daemonic processes are not allowed to have children')."""
    import multiprocessing

    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(
        target=_inspect_in_a_daemon, args=(str(demo_inputs / "fer2013"), queue), daemon=True)
    child.start()
    rows = queue.get(timeout=120)
    child.join(30)
    assert child.exitcode == 0 and rows == sum(1 for p in (demo_inputs / "fer2013").rglob("*") if p.is_file())
