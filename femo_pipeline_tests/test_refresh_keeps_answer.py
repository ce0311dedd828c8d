"""A sensor run and a schedule tick on a warehouse that holds the answer: the answer is still there afterwards
(predictions, FER+ votes, verdicts, scores, in the warehouse and in the served snapshot), nothing trained, and
the instance's materializations say what was rebuilt."""

from __future__ import annotations

import datetime as dt
import shutil

import dagster as dg
import duckdb
import pytest

from femo_pipeline import runner
from femo_pipeline.definitions import defs
from femo_pipeline.defs.automation.automation import raw_folder_sensor
from femo_pipeline.other_faces import KAGGLE
from femo_pipeline.resources import FemoStorage
from femo_pipeline_tests.conftest import DEMO_RUN_CONFIG, TODAY, instance_for

ANSWER_TABLES = ("predictions", "human_votes", "verdicts", "benchmark_scores")
TRAINED = ("emotion_model", "trained_model_run", "data_factors")


def _answer(database) -> dict[str, list[tuple]]:
    """The answer's tables, rows sorted, floats rounded (a recomputed probability may differ in its last bits)."""
    with duckdb.connect(str(database), read_only=True) as con:
        return {t: sorted(tuple(round(v, 6) if isinstance(v, float) else v for v in row)
                          for row in con.execute(f"SELECT * FROM {t}").fetchall()) for t in ANSWER_TABLES}


def _readers(database) -> set[str]:
    with duckdb.connect(str(database), read_only=True) as con:
        return {r for (r,) in con.execute("SELECT DISTINCT reader FROM verdicts").fetchall()}


def _latest_run(instance: dg.DagsterInstance, asset: str) -> str | None:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return event.run_id if event else None


def _run(instance, job_name: str, request: dg.RunRequest | None = None, **kwargs) -> str:
    run_id = runner.execute(defs.resolve_job_def(job_name), instance, request.run_config if request else {},
                            request.partition_key if request else None, out=lambda line: None,
                            tags=dict(request.tags) if request else None, **kwargs)
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS, runner.describe(
        runner.outcome(instance, run_id, FemoStorage().root / "reports"))
    return run_id


@pytest.mark.slow
def test_a_sensor_run_and_a_schedule_tick_keep_the_answer(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    monkeypatch.setenv("FEMO_DATA_DIR", str(data_dir))  # the code location's resources read it at run time
    warehouse, served = data_dir / "warehouse" / "femo.duckdb", data_dir / "serving" / "femo.duckdb"
    instance = instance_for(data_dir)
    # small data and a short model; scoring with its default settings, as the sensor's and the schedule's runs do
    config = {"ops": {op: DEMO_RUN_CONFIG["ops"][op] for op in ("demo_source_files", "emotion_model")}}
    first = runner.execute(defs.resolve_job_def("femo_all"), instance, config, TODAY, out=lambda line: None)
    assert instance.get_run_by_id(first).status == dg.DagsterRunStatus.SUCCESS
    before = _answer(warehouse)
    assert all(before[t] for t in ANSWER_TABLES)
    readers = _readers(warehouse)
    assert any("trained here" in r for r in readers) and any("shipped" in r for r in readers)

    # a file dropped into a watched folder: the sensor asks for folder_ingest, which rebuilds the answer
    anger = data_dir / "demo" / "kaggle" / "anger"
    shutil.copyfile(anger / "anger_0001.png", anger / "dropped_0001.png")
    with dg.build_sensor_context(instance=instance, resources={"storage": FemoStorage()}) as context:
        [request] = raw_folder_sensor(context).run_requests
    sensed = _run(instance, "folder_ingest", request)
    after = _answer(warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        dropped = con.execute("SELECT id FROM images WHERE rel_path = 'anger/dropped_0001.png'").fetchone()[0]
        runs = {r for (r,) in con.execute("SELECT DISTINCT model_run_id FROM predictions").fetchall()}
    assert [r for r in after["predictions"] if r[1] != dropped] == before["predictions"]  # the same answer ...
    assert {r[0] for r in after["predictions"] if r[1] == dropped} == runs  # ... and the new face predicted by all
    for table in ("human_votes", "verdicts"):
        assert after[table] == before[table], table
    # scores on the folder that received the face are recomputed over one more image; every other score is kept
    assert [r for r in after["benchmark_scores"] if r[0] != KAGGLE] == [
        r for r in before["benchmark_scores"] if r[0] != KAGGLE]
    grown = {r[:6]: r[-1] for r in after["benchmark_scores"] if r[0] == KAGGLE}
    assert grown and grown == {r[:6]: r[-1] + 1 for r in before["benchmark_scores"] if r[0] == KAGGLE}
    assert _readers(warehouse) == readers  # the trained model is still used: its Training images did not change
    assert _answer(served) == after  # the gallery serves it

    # what the UI shows: everything the run rebuilt is materialized by it, training is not, and says so by age
    rebuilt = {k.to_user_string() for k in defs.resolve_job_def("folder_ingest").asset_layer.executable_asset_keys}
    assert {"images", "model_evaluation", "human_votes", "benchmark_report", "serving_snapshot"} <= rebuilt
    assert all(_latest_run(instance, a) == sensed for a in rebuilt)
    assert _latest_run(instance, "emotion_model") == first  # older than images: the UI marks it, it did not re-run
    assert _latest_run(instance, "data_factors") is None

    # the daily schedule's tick: web sources (no keys in the demo), FACS page, and everything below them
    tick_time = dt.datetime.combine(dt.date.fromisoformat(TODAY), dt.time(3), tzinfo=dt.timezone.utc)
    schedule = defs.resolve_schedule_def("web_refresh_daily")
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_time) as context:
        [tick] = list(schedule.evaluate_tick(context).run_requests)
    ticked = _run(instance, "web_refresh", tick)
    again = _answer(warehouse)
    assert again == after and _answer(served) == again
    refreshed = {k.to_user_string() for k in defs.resolve_job_def("web_refresh").asset_layer.executable_asset_keys}
    assert {"facs_page", "images", "model_evaluation", "benchmark_report", "serving_snapshot"} <= refreshed
    assert all(_latest_run(instance, a) == ticked for a in refreshed)
    assert _latest_run(instance, "emotion_model") == first
    trained_in = {e.run_id for a in TRAINED for e in instance.fetch_materializations(
        dg.AssetKey(a), limit=100).records}
    assert not trained_in & {sensed, ticked}
