"""Schedule, sensor and jobs with Dagster's test helpers (the running-daemon test is in test_end_to_end.py)."""

from __future__ import annotations

import datetime as dt
import shutil

import dagster as dg

from femo_pipeline.definitions import all_assets, all_checks, defs
from femo_pipeline.defs.automation.automation import raw_folder_sensor, sensor_run_key, web_refresh_schedule
from femo_pipeline_tests.conftest import DEMO_RUN_CONFIG, instance_for, materialize, resources_for


def _evaluate(data_dir, cursor=None, **storage_fields):
    """The sensor, in the Dagster instance the test's materializations of this data folder use."""
    with dg.build_sensor_context(resources=resources_for(data_dir, **storage_fields), cursor=cursor,
                                 instance=instance_for(data_dir)) as context:
        return raw_folder_sensor(context)


def test_sensor_requests_a_run_for_new_or_removed_files_only(tmp_path):
    data_dir = tmp_path / "data"
    first = _evaluate(data_dir)  # nothing generated yet: no folder to watch
    assert not first.run_requests and "no new" in first.skip_reason.skip_message

    ingest = dg.AssetSelection.assets("demo_source_files", "fer2013_images", "kaggle_face_images")
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
    assert materialize(data_dir, selection=dg.AssetSelection.assets("fer2013_images", "kaggle_face_images")).success
    assert not _evaluate(data_dir).run_requests


def test_sensor_skips_unconfigured_real_profile(tmp_path):
    assert not _evaluate(tmp_path, profile="real").run_requests


def test_schedule_pulls_each_day_partition_of_the_web_refresh_job():
    schedule = defs.resolve_schedule_def(web_refresh_schedule.name)
    assert schedule.cron_schedule == "0 3 * * *" and schedule.job_name == "web_refresh"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.timezone.utc))
    [request] = list(schedule.evaluate_tick(context).run_requests)
    assert request.partition_key == "2026-11-25"  # the day of the pull (partitions end one day ahead)


def test_jobs_select_the_right_assets():
    graph = defs.resolve_asset_graph()

    def keys(job_name):
        job = defs.resolve_job_def(job_name)
        return {k.to_user_string() for k in job.asset_layer.executable_asset_keys}

    web = keys("web_refresh")
    assert {"pixabay_hits", "duckduckgo_images", "facs_page", "image_catalog", "serving_snapshot"} <= web
    assert "fer2013_images" not in web and "demo_source_files" not in web
    folder = keys("folder_ingest")
    assert {"fer2013_images", "kaggle_face_images", "images", "balanced_sample", "serving_snapshot"} <= folder
    assert "pixabay_hits" not in folder and "demo_source_files" not in folder
    grid = {"data_factors", "data_factors_table"}  # partitioned by cell: their own job, data_factor_grid
    assert keys("femo_all") == {k.to_user_string() for k in graph.get_all_asset_keys()} - grid
    assert keys("data_factor_grid") == grid


def test_a_file_added_removed_and_added_again_gets_a_new_run_key_each_time(tmp_path):
    """Dagster skips a run key it has seen: the key of a change that comes back must differ from the first."""
    data_dir = tmp_path / "data"
    ingest = dg.AssetSelection.assets("demo_source_files", "fer2013_images", "kaggle_face_images")
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


def test_refresh_jobs_stop_before_the_model_and_every_job_queues_as_a_warehouse_writer():
    model_assets = {k.to_user_string() for k in dg.AssetSelection.groups("model").resolve(defs.resolve_asset_graph())}
    assert model_assets  # the model group exists
    for name in ("web_refresh", "folder_ingest"):
        job = defs.resolve_job_def(name)
        selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
        assert not selected & model_assets, name
    for name in ("femo_all", "web_refresh", "folder_ingest"):
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