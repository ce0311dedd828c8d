"""Assets materialized in process into a tmp data folder and DuckDB, asserting on rows."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb

from femo_pipeline_tests.conftest import DEMO_RUN_CONFIG, materialize


def _query(data_dir, sql, params=None):
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _metadata(result, asset):
    [mat] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mat.metadata.items()}


# demo_run: the session-wide whole-graph demo run (conftest.py)


def test_demo_graph_fills_every_table(demo_run):
    data_dir, result = demo_run
    assert result.success
    fer_files = 7 * (8 + 4) + 2
    kaggle_ok = 8 * 5
    extra_ok = 2 * 7 * 4  # two sets, seven classes, extra_per_class 4
    assert _query(data_dir, "SELECT source_id, count(*) FROM images GROUP BY 1 ORDER BY 1") == [
        (3, kaggle_ok), (4, fer_files), (5, extra_ok)]
    assert _query(data_dir, "SELECT count(*) FROM image_pixels")[0][0] == kaggle_ok + fer_files + extra_ok
    reasons = dict(_query(data_dir, "SELECT rel_path, reason FROM quarantined_files"))
    assert set(reasons) == {"anger/corrupt_0001.png", "fear/empty_0001.png", "sadness/notes_0001.png",
                            "happiness/truncated_0001.png", "unsorted_0001.png", "others/other_0001.png",
                            "web-crops/happy/truncated_0001.jpg", "web-crops/unsorted_0001.jpg"}
    assert reasons["fear/empty_0001.png"] == "empty file (0 bytes)"
    assert _query(data_dir, "SELECT count(*) FROM survey_responses")[0][0] + \
        _query(data_dir, "SELECT count(*) FROM survey_rejected_rows")[0][0] == 300
    # every column keeps its description, also after the image tables were dropped and made again
    assert _query(data_dir, "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'main' AND NOT internal "
                            "AND coalesce(comment, '') = ''") == [(0,)]
    # every demo output says it is synthetic
    assert _query(data_dir, "SELECT DISTINCT synthetic FROM images") == [(True,)]
    assert _query(data_dir, "SELECT source_key FROM data_sources WHERE synthetic ORDER BY 1") == [
        ("extra",), ("fer2013",), ("kaggle",)]
    assert _query(data_dir, "SELECT value FROM warehouse_info WHERE key = 'synthetic'") == [("true",)]
    assert _metadata(result, "fer2013_images")["synthetic"] is True
    assert _metadata(result, "everyday_emotions_survey")["synthetic"] is True


def test_demo_metadata_is_useful(demo_run):
    data_dir, result = demo_run
    catalog_meta = _metadata(result, "image_catalog")
    assert catalog_meta["dagster/row_count"] == 7 * 12 + 2 + 40 + 6 + 2 * 7 * 4 + 2
    assert catalog_meta["duplicates"]["groups_across_train_test"] == 1
    assert [c.name for c in catalog_meta["dagster/column_schema"].columns][:3] == ["image_id", "source_key", "source_id"]
    assert "corrupt PNG" in catalog_meta["quarantine_reasons"]
    erd_meta = _metadata(result, "erd")
    assert erd_meta["foreign_keys"] >= 5 and "data:image/png;base64," in erd_meta["diagram"]
    assert (data_dir / "warehouse" / "erd.mmd").read_text().startswith("erDiagram")
    study = _metadata(result, "study_query_results")
    assert study["images_per_emotion_rows"] == 8


def test_rematerializing_is_idempotent(demo_run, tmp_path):
    """Everything up to the warehouse materialized again over a copy of the demo run's data folder (its warehouse,
    model tables included, and its inputs) gives the same rows. The model group is left out: it reads these
    tables and adds nothing to them; its own re-runs are tested in test_benchmark_assets."""
    data_dir = tmp_path / "data"
    shutil.copytree(demo_run[0], data_dir)
    snapshot = lambda: (  # noqa: E731
        _query(data_dir, "SELECT id, source_id, emotion_id, content_hash FROM images ORDER BY id"),
        _query(data_dir, "SELECT * FROM quarantined_files ORDER BY ALL"),
        _query(data_dir, "SELECT * FROM survey_responses ORDER BY id"),
        _query(data_dir, "SELECT * FROM data_sources ORDER BY id"),
    )
    before = snapshot()
    assert before[0] and before[1] and before[2]
    again = materialize(data_dir, selection=NOT_MODEL, run_config=NOT_MODEL_CONFIG)
    assert again.success
    assert snapshot() == before


# the graph without the model group: what the tests below assert on (ingest, faces, warehouse, eda, serving)
NOT_MODEL = dg.AssetSelection.all() - dg.AssetSelection.groups("model")
NOT_MODEL_CONFIG = {"ops": {"demo_source_files": DEMO_RUN_CONFIG["ops"]["demo_source_files"]}}


def test_real_profile_without_paths_skips_sources_with_reason(tmp_path):
    result = materialize(tmp_path, selection=NOT_MODEL, profile="real")
    assert result.success
    meta = _metadata(result, "fer2013_images")
    assert meta["skipped"] == "real profile and FEMO_FER2013_DIR is not set"
    assert _metadata(result, "everyday_emotions_survey")["cleaning"] == {
        "skipped": "real profile and FEMO_SURVEY_CSV is not set"}
    assert _query(tmp_path, "SELECT count(*) FROM images")[0][0] == 0
    assert _query(tmp_path, "SELECT count(*) FROM data_sources WHERE synthetic")[0][0] == 0
    assert not (tmp_path / "demo").exists()


def test_real_profile_reads_configured_folders(tmp_path, demo_inputs):
    kaggle = tmp_path / "kaggle_copy"
    shutil.copytree(demo_inputs / "kaggle", kaggle)
    result = materialize(tmp_path / "data", selection=dg.AssetSelection.assets("images", "survey_responses").upstream(),
                         profile="real", kaggle_dir=str(kaggle), survey_csv=str(demo_inputs / "survey.csv"))
    assert result.success
    assert _query(tmp_path / "data", "SELECT count(*), bool_or(synthetic) FROM images") == [(240, False)]


def test_wrong_folder_fails_with_clear_message(tmp_path):
    (tmp_path / "notfer" / "images").mkdir(parents=True)
    result = materialize(tmp_path / "data", selection=["fer2013_images"], raise_on_error=False,
                         profile="real", fer2013_dir=str(tmp_path / "notfer"))
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "no 'train' or 'test' folder" in str(failure.event_specific_data.error)


def test_malformed_survey_fails_with_clear_message(tmp_path):
    bad = tmp_path / "survey.csv"
    bad.write_text("id,Hours,Day\n1,2,3\n")
    result = materialize(tmp_path / "data", selection=["everyday_emotions_survey"], raise_on_error=False,
                         profile="real", survey_csv=str(bad))
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "survey CSV lacks columns" in str(failure.event_specific_data.error)


def test_bad_profile_name_is_rejected(tmp_path):
    result = materialize(tmp_path, selection=["fer2013_images"], raise_on_error=False, profile="prod")
    assert not result.success


def test_every_asset_has_group_kinds_and_docstring():
    from femo_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name and node.group_name != "default", key
        assert node.kinds, key
        assert node.description, key
    # femo_all runs every asset on the project's executor (the one with the DuckDB writers' tag limit)
    from femo_pipeline.definitions import executor

    job = defs.resolve_job_def("femo_all")
    grid = {dg.AssetKey("data_factors"), dg.AssetKey("data_factors_table")}  # partitioned by cell: their own job
    assert set(job.asset_layer.executable_asset_keys) == set(graph.get_all_asset_keys()) - grid
    assert job.executor_def is executor
