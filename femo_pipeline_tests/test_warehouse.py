"""Warehouse logic on a tmp DuckDB: keys, idempotent loads, the study's SQL and the ERD."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from femo_pipeline import catalog, erd, folders, warehouse
from femo_pipeline.sources import SOURCES
from femo_pipeline.warehouse import schema


@pytest.fixture(scope="module")
def demo_catalog(demo_inputs):
    per_source = {}
    for key, sub, splits in (("fer2013", "fer2013", True), ("kaggle", "kaggle", False)):
        root = demo_inputs / sub
        per_source[key] = (folders.inspect_folder(root, folders.scan_folder(root, splits), workers=1), True)
    return catalog.build_catalog(per_source)


@pytest.fixture
def con(tmp_path, demo_catalog):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    warehouse.ensure_schema(connection)
    warehouse.upsert_data_sources(connection, {"fer2013", "kaggle"})
    warehouse.upsert_emotions(connection)
    warehouse.replace_images(connection, demo_catalog)
    yield connection
    connection.close()


def test_catalog_flags_demo_duplicates(demo_catalog):
    rows = demo_catalog.drop(["content"]).to_pandas()
    copies = rows[rows["content_hash"] == rows.loc[rows["rel_path"] == "train/happy/Training_0300000.jpg", "content_hash"].iloc[0]]
    assert sorted(copies["rel_path"]) == ["test/happy/PublicTest_9900001.jpg", "train/happy/Training_0300000.jpg",
                                          "train/neutral/Training_9900002.jpg"]
    assert copies["duplicate_count"].eq(3).all()
    assert copies["duplicate_cross_split"].all() and copies["duplicate_label_conflict"].all()
    others = rows[(rows["status"] == "ok") & ~rows.index.isin(copies.index)]
    assert others["duplicate_count"].eq(1).all() and not others["duplicate_cross_split"].any()
    assert rows["image_id"].is_unique


def test_image_ids_are_stable():
    assert warehouse.image_id("fer2013", "train/sad/a.jpg") == warehouse.image_id("fer2013", "train/sad/a.jpg")
    assert warehouse.image_id("fer2013", "train/sad/a.jpg") != warehouse.image_id("kaggle", "train/sad/a.jpg")
    assert 0 <= warehouse.image_id("kaggle", "x") < 2**63


def test_image_ids_use_the_whole_non_negative_bigint_range():
    """A 48-bit id collided for two chosen file names in a few minutes of one core; 63 bits put that out of reach
    (and ids stay non-negative: URLs and clients that expect digits keep working)."""
    ids = [warehouse.image_id("fer2013", f"train/sad/{i}.jpg") for i in range(2000)]
    assert len(set(ids)) == len(ids) and min(ids) >= 0
    assert max(ids) > 2**62 and sum(i >= 2**48 for i in ids) > 1990


def test_load_mirrors_catalog_and_is_idempotent(con, demo_catalog):
    frame = demo_catalog.drop(["content"]).to_pandas()
    ok = frame[frame["status"] == "ok"]
    before = con.execute("SELECT id, emotion_id, content_hash FROM images ORDER BY id").fetchall()
    assert len(before) == len(ok)
    assert con.execute("SELECT count(*) FROM quarantined_files").fetchone()[0] == (frame["status"] != "ok").sum()
    warehouse.ensure_schema(con)
    warehouse.upsert_data_sources(con, {"fer2013", "kaggle"})
    warehouse.upsert_emotions(con)
    warehouse.replace_images(con, demo_catalog)
    assert con.execute("SELECT id, emotion_id, content_hash FROM images ORDER BY id").fetchall() == before
    assert con.execute("SELECT count(*) FROM data_sources").fetchone()[0] == len(SOURCES)
    assert con.execute("SELECT count(*) FROM emotions").fetchone()[0] == 8


def test_pixels_are_the_file_bytes(con, demo_inputs):
    rel = "train/angry/Training_0000000.jpg"
    stored = con.execute(
        "SELECT pixels FROM images_fer2013 WHERE rel_path = ?", [rel]
    ).fetchone()[0]
    assert stored == (demo_inputs / "fer2013" / rel).read_bytes()


def test_keys_are_enforced(con):
    row = con.execute("SELECT * FROM images LIMIT 1").fetchone()
    with pytest.raises(duckdb.ConstraintException):  # duplicate primary key
        con.execute(f"INSERT INTO images VALUES ({', '.join('?' * len(row))})", list(row))
    bad = list(row)
    bad[0], bad[7] = 1, "elsewhere.png"  # a new id and path (rel_path is the eighth column)
    bad[2] = 99  # no such emotion
    with pytest.raises(duckdb.ConstraintException):
        con.execute(f"INSERT INTO images VALUES ({', '.join('?' * len(row))})", bad)


def test_study_queries_run_and_agree_with_the_catalog(con, demo_catalog):
    frame = demo_catalog.drop(["content"]).to_pandas()
    ok = frame[frame["status"] == "ok"]
    queries = warehouse.study_queries()
    assert {"count_images_of_emotion", "images_per_height_width", "images_per_emotion",
            "emotion_with_most_action_units", "aspect_ratio_classification"} <= set(queries)

    assert con.execute(queries["count_images_of_emotion"]).fetchone()[0] == (ok["emotion"] == "Anger").sum()
    per_emotion = dict(con.execute(queries["images_per_emotion"]).fetchall())
    assert per_emotion == ok["emotion"].value_counts().to_dict()
    sizes = {(h, w): n for h, w, n in con.execute(queries["images_per_height_width"]).fetchall()}
    assert sizes == {(48, 48): (ok["source_key"] == "fer2013").sum(), (224, 224): (ok["source_key"] == "kaggle").sum()}
    assert dict(con.execute(queries["aspect_ratio_classification"]).fetchall()) == {"should_be_fine": len(ok)}
    assert len(con.execute(queries["images_of_source"]).fetchall()) == (ok["source_key"] == "fer2013").sum()

    # FACS tables are filled by their own asset; with rows in them the study's FACS queries answer.
    assert con.execute(queries["emotion_with_most_action_units"]).fetchall() == []
    con.execute("INSERT INTO facs_single_units (action_unit, description, facial_muscle, example) VALUES (1, 'Inner Brow Raiser', 'Frontalis', NULL), "
                "(4, 'Brow Lowerer', NULL, NULL), (15, 'Lip Corner Depressor', NULL, NULL)")
    con.execute("INSERT INTO facs_emotions_units (emotion, action_units) VALUES (4, 1), (4, 4), (4, 15), (0, 4)")
    assert con.execute(queries["emotion_with_most_action_units"]).fetchall() == [("Sadness", 3)]
    assert [r[2] for r in con.execute(queries["action_units_of_emotion"]).fetchall()] == [4]


def test_per_source_views_partition_all_images(con):
    total = con.execute("SELECT count(*) FROM all_images").fetchone()[0]
    parts = sum(con.execute(f"SELECT count(*) FROM {v}").fetchone()[0]
                for v in ("images_pixabay", "images_ddg", "images_kaggle", "images_fer2013"))
    assert parts == total > 0
    assert con.execute("SELECT count(*) FROM emotions_ids").fetchone()[0] == 8


def test_schema_version_change_rebuilds(con, monkeypatch):
    assert con.execute("SELECT count(*) FROM images").fetchone()[0] > 0
    monkeypatch.setattr(warehouse.schema, "SCHEMA_VERSION", "test-next")
    warehouse.ensure_schema(con)
    assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 0
    assert con.execute("SELECT value FROM warehouse_info WHERE key = 'schema_version'").fetchone()[0] == "test-next"


def test_a_rebuild_that_fails_part_way_leaves_the_old_warehouse(con, monkeypatch):
    rows = con.execute("SELECT count(*) FROM images").fetchone()[0]
    assert rows > 0
    monkeypatch.setattr(warehouse.schema, "SCHEMA_VERSION", "test-next")

    def broken(*args, **kwargs):
        raise RuntimeError("the disk filled up")

    monkeypatch.setattr(warehouse.schema, "apply_schema", broken)
    with pytest.raises(RuntimeError, match="disk filled up"):
        warehouse.ensure_schema(con)
    assert con.execute("SELECT count(*) FROM images").fetchone()[0] == rows


def test_erd_reflects_live_schema(con, tmp_path):
    tables, views = erd.read_schema(con)
    assert {"images", "data_sources", "emotions", "image_pixels", "facs_emotions_units"} <= set(tables)
    assert "all_images" in views and "images_fer2013" in views
    fks = {(name, ref) for name, t in tables.items() for _, ref, _ in t.foreign_keys}
    assert {("images", "data_sources"), ("images", "emotions"), ("image_pixels", "images"),
            ("facs_emotions_units", "emotions"), ("facs_emotions_units", "facs_single_units")} <= fks
    text = erd.to_mermaid(tables)
    assert text.startswith("erDiagram")
    assert 'data_sources ||--o{ images : "source_id"' in text
    assert "BIGINT id PK" in text
    con.execute("CREATE TABLE extra_table (k INTEGER PRIMARY KEY, img BIGINT REFERENCES images (id))")
    tables, _ = erd.read_schema(con)
    assert 'images ||--o{ extra_table : "img"' in erd.to_mermaid(tables)
    png = erd.render_png(tables, tmp_path / "erd.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_pixels_are_stored_uncompressed_for_fast_single_reads(con):
    con.execute("CHECKPOINT")
    kinds = {c for (c,) in con.execute(
        "SELECT DISTINCT compression FROM pragma_storage_info('image_pixels') WHERE column_name = 'pixels' "
        "AND segment_type = 'BLOB'").fetchall()}
    assert kinds == {"Uncompressed"}


def test_every_warehouse_table_view_and_column_is_described():
    docs = warehouse.column_docs()
    assert set(docs) == set(schema._TABLES_CHILD_FIRST) | set(schema._VIEWS)
    assert [t for t, d in docs.items() if not d["description"]] == []
    assert [(t, c["name"]) for t, d in docs.items() for c in d["columns"] if not c["description"]] == []


def test_each_table_is_shown_with_its_columns_on_the_asset_that_writes_it():
    """The UI's column schema (with descriptions and keys) comes from the definitions, before any run."""
    import dagster as dg

    from femo_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    shown = {}
    for key in graph.get_all_asset_keys():
        meta = graph.get(key).metadata
        if "dagster/table_name" in meta:
            shown[meta["dagster/table_name"].split(".")[-1]] = meta["dagster/column_schema"]
        shown.update({k.removeprefix("columns of "): v for k, v in meta.items() if k.startswith("columns of ")})
    # benchmark_report shows the tables besides its main one after the answer, in its materialization's metadata
    # (tested with the report), so the UI's page of the answer starts with the answer
    from femo_pipeline.defs.model.report import OTHER_TABLES

    assert set(schema._TABLES_CHILD_FIRST) - set(OTHER_TABLES) <= set(shown)
    images = {c.name: c for c in shown["images"].columns}
    assert images["id"].constraints.unique and not images["id"].constraints.nullable
    assert "sha256" in images["content_hash"].description
    assert all(isinstance(s, dg.TableSchema) and all(c.description for c in s.columns) for s in shown.values())


def _comments(con) -> set[tuple[str, str, str]]:
    return set(con.execute("SELECT table_name, column_name, comment FROM duckdb_columns() WHERE schema_name = 'main'")
               .fetchall())


def test_schema_is_applied_once_and_again_when_something_is_missing(con, demo_catalog, monkeypatch):
    """A warehouse with this code's schema is left alone (the descriptions cost 0.2 s a call); a missing table,
    or a changed schema text, applies it again; images re-created by replace_images keep their descriptions, and
    so do the columns of the views over them."""
    described = _comments(con)
    assert ("images", "content_hash", None) not in described
    calls = []
    real = warehouse.apply_schema
    monkeypatch.setattr(warehouse.schema, "apply_schema", lambda c, **kw: (calls.append(1), real(c, **kw)))
    warehouse.ensure_schema(con)
    assert calls == []
    con.execute("DROP TABLE survey_rejected_rows")
    warehouse.ensure_schema(con)
    assert calls == [1] and _comments(con) == described
    warehouse.ensure_schema(con)
    assert calls == [1]
    warehouse.replace_images(con, demo_catalog)
    assert len(calls) == 2 and _comments(con) == described
    monkeypatch.setattr(warehouse.schema, "schema_fingerprint", lambda: "other schema text")
    warehouse.ensure_schema(con)
    assert len(calls) == 3



def test_first_load_keeps_the_new_empty_tables_and_a_reload_keeps_the_rows_of_unchanged_images(tmp_path, demo_catalog,
                                                                                                monkeypatch):
    connection = duckdb.connect(str(tmp_path / "fresh.duckdb"))
    try:
        warehouse.ensure_schema(connection)
        warehouse.upsert_data_sources(connection, {"fer2013", "kaggle"})
        warehouse.upsert_emotions(connection)
        described = _comments(connection)
        calls = []
        real = warehouse.apply_schema
        monkeypatch.setattr(warehouse.schema, "apply_schema", lambda c, **kw: (calls.append(kw), real(c, **kw)))
        counts = warehouse.replace_images(connection, demo_catalog)
        assert calls == [] and _comments(connection) == described  # nothing to clear: no drop, no re-describe
        assert counts["images"] > 0 and counts["images"] == counts["image_pixels"]
        image = connection.execute("SELECT min(id) FROM images").fetchone()[0]
        connection.execute("INSERT INTO balanced_sample (image_id, source_id, emotion_id, original_emotion_id, relabelled, "
                           "seed) SELECT id, source_id, emotion_id, emotion_id, FALSE, 1 FROM images WHERE id = ?",
                           [image])
        assert warehouse.replace_images(connection, demo_catalog) == {**counts, "kept_balanced_sample": 1}
        assert len(calls) == 1 and _comments(connection) == described  # rows to clear: re-created, re-described
        assert connection.execute("SELECT image_id FROM balanced_sample").fetchall() == [(image,)]
    finally:
        connection.close()


def test_a_reload_keeps_predictions_votes_and_crops_of_unchanged_images_only(con, demo_catalog):
    """Other assets' rows survive a reload of images for every image still there with the same bytes and label;
    those of an image whose bytes changed, whose label changed or that is gone are dropped."""
    import pyarrow.compute as pc

    con.execute("INSERT INTO model_runs (id, reader, origin, created, synthetic) VALUES ('m', 'm', 'shipped', now(), TRUE)")
    con.execute("INSERT INTO predictions SELECT 'm', id, emotion_id % 7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4 FROM images")
    con.execute("INSERT INTO human_votes SELECT id, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, NULL, TRUE FROM images")
    con.execute("INSERT INTO face_crops (image_id, status, n_faces) SELECT id, 'ok', 1 FROM images")
    tables = ("predictions", "human_votes", "face_crops")
    before = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}

    ids = demo_catalog.column("image_id").to_pylist()
    ok = [i for i, status in zip(ids, demo_catalog.column("status").to_pylist()) if status == "ok"]
    changed, relabelled, gone = ok[0], ok[1], ok[2]
    hashes = [("0" * 64 if i == changed else h) for i, h in zip(ids, demo_catalog.column("content_hash").to_pylist())]
    emotions = [((e + 1) % 7 if i == relabelled else e) for i, e in zip(ids, demo_catalog.column("emotion_id").to_pylist())]
    edited = demo_catalog.set_column(demo_catalog.schema.get_field_index("content_hash"), "content_hash", [hashes])
    edited = edited.set_column(edited.schema.get_field_index("emotion_id"), "emotion_id",
                               [pa.array(emotions, demo_catalog.schema.field("emotion_id").type)])
    edited = edited.filter(pc.not_equal(edited.column("image_id"), gone))
    counts = warehouse.replace_images(con, edited)
    for t in tables:
        expected = [row for row in before[t] if row[0 if t != "predictions" else 1] not in (changed, relabelled, gone)]
        assert con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() == expected, t
        assert counts[f"kept_{t}"] == len(before[t]) - 3
    assert "kept_balanced_sample" not in counts  # it had no rows


def test_files_that_share_an_id_quarantine_all_but_the_first_and_the_catalogue_goes_on(demo_inputs, monkeypatch):
    root = demo_inputs / "kaggle"
    table = folders.inspect_folder(root, folders.scan_folder(root, False), workers=1)
    ok = sorted(p for p, s in zip(table.column("rel_path").to_pylist(), table.column("status").to_pylist()) if s == "ok")
    real_id = catalog.image_id
    clash = {ok[3]: 7, ok[10]: 7, ok[20]: 7}  # three usable files hashed to one id

    def image_id(source_key, rel_path):
        return clash.get(rel_path) or real_id(source_key, rel_path)

    monkeypatch.setattr(catalog, "image_id", image_id)
    built = catalog.build_catalog({"kaggle": (table, True)}).drop(["content"]).to_pandas().set_index("rel_path")
    assert built.loc[ok[3], "status"] == "ok" and built.loc[ok[3], "image_id"] == 7
    for later in (ok[10], ok[20]):
        assert built.loc[later, "status"] == "quarantined"
        assert built.loc[later, "reason"] == f"image id collision with kaggle/{ok[3]}: this file is not stored under the same id"
    assert built.loc[built["status"] == "ok", "image_id"].is_unique
    assert (built["status"] == "ok").sum() == len(ok) - 2


def test_catalog_is_in_path_order_and_flags_the_same_whatever_order_the_sources_come_in(demo_inputs, demo_catalog):
    import pyarrow as pa

    per_source = {}
    for key, sub, splits in (("fer2013", "fer2013", True), ("kaggle", "kaggle", False)):
        root = demo_inputs / sub
        table = folders.inspect_folder(root, folders.scan_folder(root, splits), workers=1)
        per_source[key] = (table.take(pa.array(range(table.num_rows - 1, -1, -1))), True)  # reversed rows
    shuffled = catalog.build_catalog(per_source)
    assert shuffled.equals(demo_catalog)
    keys = list(zip(shuffled.column("source_id").to_pylist(), shuffled.column("rel_path").to_pylist()))
    assert keys == sorted(keys, key=lambda k: (k[0], k[1].encode()))
