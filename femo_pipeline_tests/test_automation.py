"""Schedule, sensor and jobs with Dagster's test helpers (the running-daemon test is in test_end_to_end.py)."""

from __future__ import annotations

import datetime as dt
import shutil

import dagster as dg
import pytest

from femo_pipeline.definitions import all_assets, all_checks, defs
from femo_pipeline.defs.automation.automation import raw_folder_sensor, sensor_run_key, web_refresh_schedule
from femo_pipeline_tests.conftest import DEMO_RUN_CONFIG, FOLDER_ASSETS, instance_for, materialize, resources_for


def _evaluate(data_dir, cursor=None, **storage_fields):
    """The sensor, in the Dagster instance the test's materializations of this data folder use."""
    with dg.build_sensor_context(resources=resources_for(data_dir, **storage_fields), cursor=cursor,
                                 instance=instance_for(data_dir)) as context:
        return raw_folder_sensor(context)


def test_sensor_requests_a_run_for_new_or_removed_files_only(tmp_path):
    data_dir = tmp_path / "data"
    first = _evaluate(data_dir)  # nothing generated yet: no folder to watch
    assert not first.run_requests and "no new" in first.skip_reason.skip_message

    ingest = dg.AssetSelection.assets("demo_source_files", *FOLDER_ASSETS)
    config = {"ops": {"demo_source_files": DEMO_RUN_CONFIG["ops"]["demo_source_files"]}}
    assert materialize(data_dir, selection=ingest, run_config=config).success  # what the sensor compares
    idle = _evaluate(data_dir)
    assert not idle.run_requests  # everything on disk is staged

    anger = data_dir / "demo" / "kaggle" / "anger"
    shutil.copyfile(anger / "anger_0001.png", anger / "dropped_0001.png")
    [request] = _evaluate(data_dir).run_requests
    assert request.run_key.startswith("1/kaggle:") and request.tags["femo/changes"] == "kaggle: +1 -0"
    assert _evaluate(data_dir).run_requests[0].run_key == request.run_key  # same change, same key: no second run

    (data_dir / "demo" / "fer2013" / "test" / "sad" / "PrivateTest_0500001.jpg").unlink()
    keys = _evaluate(data_dir).run_requests[0].run_key
    assert "fer2013:" in keys and "kaggle:" in keys

    # once the job has run, the folders and the staged tables agree again
    assert materialize(data_dir, selection=dg.AssetSelection.assets(*FOLDER_ASSETS)).success
    assert not _evaluate(data_dir).run_requests

    # a staged table spoiled by hand (garbage, then a FIFO) counts as empty: a re-ingest is asked, never a crash
    # or a tick that hangs
    import os
    import time

    from femo_pipeline.io_managers import latest_staged
    from femo_pipeline.sources import SOURCES

    staged = latest_staged(instance_for(data_dir), SOURCES["kaggle"].asset).path
    staged.write_bytes(b"not parquet at all")
    [request] = _evaluate(data_dir).run_requests
    assert request.tags["femo/changes"].startswith("kaggle: +")
    staged.unlink()
    os.mkfifo(staged)
    start = time.monotonic()
    [request] = _evaluate(data_dir).run_requests
    assert request.tags["femo/changes"].startswith("kaggle: +") and time.monotonic() - start < 10


def test_sensor_skips_unconfigured_real_profile(tmp_path):
    assert not _evaluate(tmp_path, profile="real").run_requests


def test_schedule_pulls_each_day_partition_of_the_web_refresh_job():
    schedule = defs.resolve_schedule_def(web_refresh_schedule.name)
    assert schedule.cron_schedule == "0 3 * * *" and schedule.job_name == "web_refresh"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.timezone.utc))
    [request] = list(schedule.evaluate_tick(context).run_requests)
    assert request.partition_key == "2026-11-25"  # the day of the pull (partitions end one day ahead)


TRAINS = {"emotion_model", "trained_model_run", "data_factors", "data_factors_table"}


def _job_assets(job_name: str) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_job_def(job_name).asset_layer.executable_asset_keys}


def test_jobs_select_the_right_assets():
    graph = defs.resolve_asset_graph()
    everything = {k.to_user_string() for k in graph.get_all_asset_keys()}

    web = _job_assets("web_refresh")
    assert {"pixabay_hits", "duckduckgo_images", "facs_page", "image_catalog", "serving_snapshot"} <= web
    assert "fer2013_images" not in web and "demo_source_files" not in web
    folder = _job_assets("folder_ingest")
    assert {"fer2013_images", "kaggle_face_images", "images", "balanced_sample", "serving_snapshot"} <= folder
    assert "pixabay_hits" not in folder and "demo_source_files" not in folder
    answer = _job_assets("femo_answer")
    assert answer == everything - TRAINS  # training_images, the arrays training reads, stays current
    assert _job_assets("femo_all") == answer | {"emotion_model", "trained_model_run"}  # the grid has its own job


def test_every_job_that_rewrites_images_rebuilds_what_depends_on_it_and_none_trains():
    """A job that reloads `images` must also run every asset below it that is not training, or the tables those
    assets own (predictions, votes, the benchmark tables, the snapshot) would lag behind or vanish."""
    graph = defs.resolve_asset_graph()
    below_images = {k.to_user_string() for k in
                    dg.AssetSelection.assets("images").downstream(include_self=False).resolve(graph)}
    rebuilt = below_images - TRAINS - {"training_images"}  # what only training reads
    assert {"evaluation_images", "model_evaluation", "contender_predictions", "predictions", "human_votes",
            "benchmark_report", "serving_snapshot"} <= rebuilt
    for name in ("web_refresh", "folder_ingest", "femo_answer", "femo_all"):
        selected = _job_assets(name)
        if "images" in selected:
            assert rebuilt <= selected, (name, rebuilt - selected)
    for name in ("web_refresh", "folder_ingest", "femo_answer"):
        assert not _job_assets(name) & TRAINS, name
    assert not _job_assets("femo_all") & {"data_factors", "data_factors_table"}


def test_groups_are_drawn_in_pipeline_order_without_a_loop():
    """The UI's group view draws an edge for every dependency between groups: they must form a chain
    ingest -> warehouse -> faces -> eda / model -> serving, never a cycle (ingest was drawn below warehouse)."""
    graph = defs.resolve_asset_graph()
    order = ["ingest", "warehouse", "faces", "eda", "model", "serving"]
    edges = set()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        edges |= {(graph.get(p).group_name, node.group_name) for p in node.parent_keys
                  if graph.get(p).group_name != node.group_name}
    assert {g for e in edges for g in e} <= set(order)
    backwards = [e for e in edges if order.index(e[0]) > order.index(e[1])]
    assert not backwards, backwards


def test_a_file_added_removed_and_added_again_gets_a_new_run_key_each_time(tmp_path):
    """Dagster skips a run key it has seen: the key of a change that comes back must differ from the first."""
    data_dir = tmp_path / "data"
    ingest = dg.AssetSelection.assets("demo_source_files", *FOLDER_ASSETS)
    config = {"ops": {"demo_source_files": DEMO_RUN_CONFIG["ops"]["demo_source_files"]}}
    assert materialize(data_dir, selection=ingest, run_config=config).success  # only what the sensor compares
    anger = data_dir / "demo" / "kaggle" / "anger"
    selection = dg.AssetSelection.assets("kaggle_face_images")
    keys, cursor = [], None
    for step in ("add", "remove", "add"):
        if step == "add":
            shutil.copyfile(anger / "anger_0001.png", anger / "dropped_0001.png")
        else:
            (anger / "dropped_0001.png").unlink()
        result = _evaluate(data_dir, cursor)
        [request] = result.run_requests
        again = _evaluate(data_dir, result.cursor)  # a later tick before the run: same key, no second run
        assert again.run_requests[0].run_key == request.run_key
        keys.append(request.run_key)
        cursor = result.cursor
        assert materialize(data_dir, selection=selection).success
        assert not _evaluate(data_dir, cursor).run_requests
    assert len(set(keys)) == 3 and keys[0].split("/", 1)[1] == keys[2].split("/", 1)[1]


def test_run_key_numbering_from_the_cursor():
    a = {"kaggle": {"added": 1, "removed": 0, "digest": "aaaa"}}
    b = {"kaggle": {"added": 0, "removed": 1, "digest": "bbbb"}}
    assert sensor_run_key(a, None) == ("1/kaggle:aaaa", 1)
    assert sensor_run_key(a, "1:kaggle:aaaa") == ("1/kaggle:aaaa", 1)  # still pending: same key
    assert sensor_run_key(b, "1:kaggle:aaaa") == ("2/kaggle:bbbb", 2)
    assert sensor_run_key(a, "2:kaggle:bbbb") == ("3/kaggle:aaaa", 3)
    assert sensor_run_key(a, "garbage") == ("1/kaggle:aaaa", 1)


def test_every_job_queues_as_a_warehouse_writer():
    for name in ("femo_answer", "femo_all", "web_refresh", "folder_ingest"):
        assert defs.resolve_job_def(name).tags.get("femo/warehouse") == "write", name


def test_the_committed_dagster_yaml_limits_pools_and_overlapping_runs(tmp_path, monkeypatch, capsys):
    """The repository's dagster.yaml is what every entry point uses: dagster dev in the project folder reads it,
    and the CLI refreshes femo's own instance folder from it (even over an older copy). A DAGSTER_HOME of the
    user's keeps its own file (it may hold PostgreSQL storage), with a warning when its limits differ."""
    from dagster._core.instance.ref import InstanceRef

    from femo_pipeline import cli
    from femo_pipeline.resources import PROJECT_ROOT

    committed = (PROJECT_ROOT / "dagster.yaml").read_text()
    old = "telemetry:\n  enabled: false\n"  # an old copy without limits
    monkeypatch.setenv("FEMO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    own = tmp_path / "data" / "dagster_home"
    own.mkdir(parents=True)
    (own / "dagster.yaml").write_text(old)
    assert cli.prepare_environment("demo") == own.resolve()
    assert (own / "dagster.yaml").read_text() == committed
    assert "warning" not in capsys.readouterr().err

    users = tmp_path / "home"
    users.mkdir()
    (users / "dagster.yaml").write_text(old)
    monkeypatch.setenv("DAGSTER_HOME", str(users))
    assert cli.prepare_environment("demo") == users.resolve()
    assert (users / "dagster.yaml").read_text() == old  # the user's file is kept ...
    assert "other concurrency settings" in capsys.readouterr().err  # ... and the missing limits are named
    (users / "dagster.yaml").write_text(committed + "storage:\n  sqlite:\n    base_dir: " + str(users) + "\n")
    cli.prepare_environment("demo")
    assert "warning" not in capsys.readouterr().err  # same limits, other storage: nothing to say
    empty = tmp_path / "empty_home"
    monkeypatch.setenv("DAGSTER_HOME", str(empty))
    cli.prepare_environment("demo")
    assert (empty / "dagster.yaml").read_text() == committed  # none there: the committed file

    for config_dir in (own, PROJECT_ROOT):
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "storage"), config_dir=str(config_dir))) as instance:
            concurrency = instance.get_concurrency_config()
            assert concurrency.pool_config.default_pool_limit == 1
            assert {"key": "femo/warehouse", "value": "write", "limit": 1} in list(
                concurrency.run_queue_config.tag_concurrency_limits)


def test_the_cli_creates_every_pool_before_a_run_claims_a_slot(tmp_path):
    """Dagster creates a pool on its first claim, and two runs starting together on a fresh instance can both
    create it (both got a slot: two warehouse steps at once). The CLI creates the pools first, with the limit of
    dagster.yaml; POOLS names every pool the definitions use."""
    from dagster._core.instance.ref import InstanceRef

    from femo_pipeline import cli
    from femo_pipeline.resources import PROJECT_ROOT

    used = {d.node_def.pool for d in (*all_assets, *all_checks) if getattr(d.node_def, "pool", None)}
    assert used == set(cli.POOLS)
    ref = InstanceRef.from_dir(str(tmp_path / "storage"), config_dir=str(PROJECT_ROOT))
    with dg.DagsterInstance.from_ref(ref) as instance:
        assert instance.event_log_storage.get_concurrency_keys() == set()
        assert cli.prepare_pools(instance) == ["duckdb"]
        assert cli.prepare_pools(instance) == []  # already there
        info = instance.event_log_storage.get_concurrency_info("duckdb")
        assert info.slot_count == 1 and info.active_slot_count == 0

def test_the_code_location_loads_as_the_ui_loads_it():
    """dagster dev builds the repository with every job; a job named like an asset's op (a job `data_factors`
    beside the asset data_factors) fails there while each job alone resolves."""
    jobs = {job.name for job in defs.get_repository_def().get_all_jobs()}
    assert {"femo_answer", "femo_all", "web_refresh", "folder_ingest", "data_factor_grid"} <= jobs


@pytest.mark.parametrize("value", ["abc", "25", "-1", "\u0663", "9" * 5000])
def test_a_bad_load_time_setting_is_a_sentence_naming_it(monkeypatch, value):
    from femo_pipeline.resources import loading_setting

    monkeypatch.delenv("FEMO_REFRESH_HOUR", raising=False)
    assert loading_setting("FEMO_REFRESH_HOUR") == 3
    monkeypatch.setenv("FEMO_REFRESH_HOUR", " 7 ")
    assert loading_setting("FEMO_REFRESH_HOUR") == 7
    monkeypatch.setenv("FEMO_REFRESH_HOUR", value)
    with pytest.raises(ValueError, match="FEMO_REFRESH_HOUR is .*: it must be a whole number from 0 to 23"):
        loading_setting("FEMO_REFRESH_HOUR")
