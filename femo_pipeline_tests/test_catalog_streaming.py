"""The image catalog holds no bytes: they stay in the staged source tables and are paired with the catalog's rows
in batches (catalog.pixel_batches), only with the source versions the catalog was built from."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from femo_pipeline import catalog, catalog_bytes, warehouse
from femo_pipeline_tests.conftest import DEMO_RUN_CONFIG, materialize

INGEST = ["demo_source_files", "fer2013_images", "kaggle_face_images"]
DEMO = {"ops": {"demo_source_files": DEMO_RUN_CONFIG["ops"]["demo_source_files"]}}


def _staged_demo(tmp_path):
    """The demo folders ingested and staged: ({source: (staged file, synthetic)}, the in-memory catalog)."""
    data_dir = tmp_path / "data"
    assert materialize(data_dir, selection=INGEST, run_config=DEMO, facs_url="http://127.0.0.1:9/").success
    paths = {"fer2013": (data_dir / "staging" / "fer2013_images.parquet", True),
             "kaggle": (data_dir / "staging" / "kaggle_face_images.parquet", False)}
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


def test_bytes_of_a_source_table_replaced_after_the_catalog_are_refused(tmp_path):
    paths, _ = _staged_demo(tmp_path)
    out = tmp_path / "catalog.parquet"
    catalog.write_catalog(paths, out)
    staged = {k: p for k, (p, _) in paths.items()}
    table = pq.read_table(staged["kaggle"])
    pq.write_table(table, staged["kaggle"])  # same rows, a new file: the catalog was not built from it
    with pytest.raises(catalog.CatalogError, match="kaggle changed after the catalog"):
        list(catalog.pixel_batches(out, staged))
    staged["fer2013"].unlink()
    with pytest.raises(catalog.CatalogError, match="fer2013 .* is missing"):
        catalog.pixel_batches(out, staged, sources=["fer2013"])


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
    staged = [(s, c) for s, c in read_columns if Path(s).parent.name == "staging"]
    assert staged and all(c is not None and "content" not in c for _, c in staged)
    assert "content" not in pq.read_schema(data_dir / "staging" / "image_catalog.parquet").names


def test_images_keeps_the_bytes_of_the_catalogs_version_when_a_source_is_materialized_again(tmp_path):
    """fer2013_images materialized again after image_catalog (another run, the sensor): images, run without the
    catalog, still loads the bytes of the version the catalog read (its hard-linked snapshot), not the new
    file; with that snapshot gone it fails with the reason instead of loading rows without bytes."""
    data_dir = tmp_path / "data"
    selection = [*INGEST, "image_catalog", "data_sources", "emotions", "images"]
    assert materialize(data_dir, selection=selection, run_config=DEMO, facs_url="http://127.0.0.1:9/").success
    staging = data_dir / "staging"
    snapshots = {k: Path(v) for k, v in catalog.byte_tables(staging / "image_catalog.parquet").items()}
    assert set(snapshots) == {"fer2013", "kaggle"}
    assert all(p.parent.name == catalog.SNAPSHOTS and p.stat().st_ino == (staging / f"{name}.parquet").stat().st_ino
               for p, name in zip((snapshots["fer2013"], snapshots["kaggle"]), ("fer2013_images", "kaggle_face_images")))
    assert materialize(data_dir, selection=["fer2013_images"], facs_url="http://127.0.0.1:9/").success
    assert (staging / "fer2013_images.parquet").stat().st_ino != snapshots["fer2013"].stat().st_ino
    assert materialize(data_dir, selection=["images"], facs_url="http://127.0.0.1:9/").success
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        n_pixels, n_mismatched = con.execute(
            "SELECT count(*), count(*) FILTER (sha256(p.pixels) <> i.content_hash) FROM image_pixels p "
            "JOIN images i ON i.id = p.image_id").fetchone()
    n_ok = pq.read_table(staging / "image_catalog.parquet", columns=["status"]).column("status").to_pylist().count("ok")
    assert n_pixels == n_ok and n_mismatched == 0  # every image has the bytes its catalog row describes
    snapshots["fer2013"].unlink()
    result = materialize(data_dir, selection=["images"], raise_on_error=False, facs_url="http://127.0.0.1:9/")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "fer2013 that the catalog was built from is missing" in str(failure.event_specific_data.error)


def test_snapshots_are_links_and_only_a_sources_own_old_versions_are_removed(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    staging.mkdir()
    source, other = staging / "fer2013_images.parquet", staging / "kaggle_face_images.parquet"
    for p in (source, other):
        pq.write_table(pa.table({"x": [1]}), p)
    old_other = catalog._snapshot(other, "v0")
    first = catalog._snapshot(source, "v1")
    assert first.stat().st_ino == source.stat().st_ino  # a link: no bytes copied
    pq.write_table(pa.table({"x": [2]}), source)
    assert catalog._snapshot(source, "v2").exists() and first.exists()  # a fresh old version is kept
    later = catalog_bytes.time.time() + 2 * catalog.STALE_SNAPSHOT_S
    monkeypatch.setattr(catalog_bytes.time, "time", lambda: later)  # two days on
    second = catalog._snapshot(source, "v2")
    assert second.exists() and not first.exists()  # this source's old version went
    assert old_other.exists()  # another source's snapshot is not this source's to remove


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


def test_a_source_table_replaced_while_its_bytes_are_read_is_refused(tmp_path):
    """The stamps are checked again once the bytes are read: a table replaced after the first check (another
    run re-materialized it while this one waited for the warehouse) rolls the load back, and stops the
    face-detection stream, instead of pairing new bytes with old rows."""
    paths, expected = _staged_demo(tmp_path)
    staged = {k: p for k, (p, _) in paths.items()}
    out = tmp_path / "catalog.parquet"
    catalog.write_catalog(paths, out)
    con = _warehouse(tmp_path, "race")
    warehouse.replace_images(con, expected)
    before = con.execute("SELECT count(*) FROM image_pixels").fetchone()[0]

    def replaced_meanwhile():
        pq.write_table(pq.read_table(staged["kaggle"]), staged["kaggle"])  # same rows, a new file
        catalog.check_sources(out, staged)

    with pytest.raises(catalog.CatalogError, match="changed after the catalog"):
        warehouse.replace_images(con, out, staged, verify=replaced_meanwhile)
    assert con.execute("SELECT count(*) FROM image_pixels").fetchone()[0] == before  # rolled back
    catalog.write_catalog(paths, out)
    reader = catalog.pixel_batches(out, staged, sources=["kaggle"], batch_rows=5)
    next(reader)
    pq.write_table(pq.read_table(staged["kaggle"]), staged["kaggle"])
    with pytest.raises(catalog.CatalogError, match="changed while its bytes were read"):
        list(reader)


def test_a_planted_snapshot_name_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """A symbolic link to a file outside the data folder, planted where the catalog's snapshot of a source goes,
    is refused (its stamp is not the source's) before anything is read through it."""
    paths, _ = _staged_demo(tmp_path)
    source = Path(paths["kaggle"][0])
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"secret": ["x"]}), outside)
    folder = source.parent / catalog.SNAPSHOTS
    folder.mkdir(exist_ok=True)
    (folder / f"{source.stem}.{catalog.stamp(source)}.parquet").symlink_to(outside)
    read = []
    for name in ("read_schema", "read_table"):
        real = getattr(catalog.pq, name)
        monkeypatch.setattr(catalog.pq, name, lambda p, *a, _real=real, **k: (read.append(str(p)), _real(p, *a, **k))[1])
    with pytest.raises(catalog.CatalogError, match="kaggle was replaced"):
        catalog.write_catalog(paths, tmp_path / "catalog.parquet")
    assert not any(catalog.SNAPSHOTS in p and "kaggle" in p for p in read)
