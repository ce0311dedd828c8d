"""Schedule, sensor and jobs with Dagster's test helpers (the running-daemon test is in test_end_to_end.py)."""

from __future__ import annotations

import datetime as dt
import shutil

import dagster as dg

from femo_pipeline.automation import raw_folder_sensor, web_refresh_schedule
from femo_pipeline.definitions import defs
from femo_pipeline_tests.conftest import materialize, resources_for
from femo_pipeline_tests.test_assets import DEMO_RUN_CONFIG


def _evaluate(data_dir, **storage_fields):
    with dg.build_sensor_context(resources=resources_for(data_dir, **storage_fields)) as context:
        return raw_folder_sensor(context)


def test_sensor_requests_a_run_for_new_or_removed_files_only(tmp_path):
    data_dir = tmp_path / "data"
    first = _evaluate(data_dir)  # nothing generated yet: no folder to watch
    assert not first.run_requests and "no new" in first.skip_reason.skip_message

    assert materialize(data_dir, run_config=DEMO_RUN_CONFIG).success
    idle = _evaluate(data_dir)
    assert not idle.run_requests  # everything on disk is staged

    anger = data_dir / "demo" / "kaggle" / "anger"
    shutil.copyfile(anger / "anger_0001.png", anger / "dropped_0001.png")
    [request] = _evaluate(data_dir).run_requests
    assert request.run_key.startswith("kaggle:") and request.tags["femo/changes"] == "kaggle: +1 -0"
    assert _evaluate(data_dir).run_requests[0].run_key == request.run_key  # same change, same key: no second run

    (data_dir / "demo" / "fer2013" / "test" / "sad" / "PrivateTest_0500001.jpg").unlink()
    keys = _evaluate(data_dir).run_requests[0].run_key
    assert "fer2013:" in keys and "kaggle:" in keys

    # once the job has run, the folders and the staged tables agree again
    selection = dg.AssetSelection.assets("fer2013_images", "kaggle_face_images").downstream()
    assert materialize(data_dir, selection=selection).success
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
    assert keys("femo_all") == {k.to_user_string() for k in graph.get_all_asset_keys()}
