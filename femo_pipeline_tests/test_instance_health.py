"""A run that dies never blocks the next: stale pool claims of dead runs are freed and the runs marked failed
(at the command line's start, and by the daemon's run monitoring through LocalRunLauncher), and the command line
obeys SIGINT and SIGTERM, even while it waits for a pool slot."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster import DagsterRun, DagsterRunStatus
from dagster._core.events import DagsterEventType, EngineEventData
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import WorkerStatus
from dagster._core.utils import make_new_run_id

from femo_pipeline import instance_health
from femo_pipeline.cli import prepare_pools
from femo_pipeline.resources import PROJECT_ROOT
from femo_pipeline_tests.conftest import materialize
from femo_pipeline_tests.test_faults import CONFIG, UNUSED, WAREHOUSE_ASSETS, _contents

POOL = "duckdb"
UNPOOLED = {"demo_source_files", "fer2013_images", "kaggle_face_images", "everyday_emotions_survey", "image_catalog"}


def instance_in(home: Path) -> dg.DagsterInstance:
    """An instance configured by the committed dagster.yaml, as the command line makes it."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    prepare_pools(instance)
    return instance


def dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def add_run(instance, status: DagsterRunStatus, tags: dict, claim: str | None = "images") -> DagsterRun:
    run = instance.add_run(DagsterRun(job_name="femo_all", run_id=make_new_run_id(), status=status, tags=tags))
    if claim:
        assert instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, claim).is_claimed
    return run


def holders(instance) -> set[str]:
    return {slot.run_id for slot in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots}


def tags_of(pid: int, start: str | None = None) -> dict:
    return {instance_health.HOST_TAG: socket.gethostname(), instance_health.PID_TAG: str(pid),
            instance_health.START_TAG: start or ""}


def failure_message(instance, run_id: str) -> str:
    [failure] = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
    return failure.dagster_event.message


def test_a_dead_run_is_failed_with_the_reason_and_its_slot_freed(tmp_path):
    instance = instance_in(tmp_path / "home")
    dead = add_run(instance, DagsterRunStatus.STARTED, tags_of(dead_pid()))
    assert holders(instance) == {dead.run_id}  # what blocked every later run
    assert instance_health.free_stale_claims(instance, say=lambda _: None) == [dead.run_id]
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    assert "is gone" in failure_message(instance, dead.run_id)
    assert holders(instance) == set()
    # the slot can be claimed again
    assert instance.event_log_storage.claim_concurrency_slot(POOL, "next-run", "images").is_claimed


def test_a_live_run_keeps_its_slot_and_an_ended_one_gives_it_back(tmp_path):
    instance = instance_in(tmp_path / "home")
    instance.event_log_storage.set_concurrency_slots(POOL, 2)
    live = add_run(instance, DagsterRunStatus.STARTED, tags_of(os.getpid(), instance_health.process_start(os.getpid())))
    ended = add_run(instance, DagsterRunStatus.FAILURE, {}, claim="emotions")  # failed by hand, slot kept
    assert holders(instance) == {live.run_id, ended.run_id}
    assert instance_health.free_stale_claims(instance, say=lambda _: None) == [ended.run_id]
    assert holders(instance) == {live.run_id}
    assert instance.get_run_by_id(live.run_id).status == DagsterRunStatus.STARTED


def test_a_process_id_used_again_is_not_mistaken_for_the_run(tmp_path):
    instance = instance_in(tmp_path / "home")
    reused = add_run(instance, DagsterRunStatus.STARTED, tags_of(os.getpid(), "1"))  # another start time
    assert "another process" in instance_health.why_gone(instance, reused)


def test_a_process_id_no_process_can_have_is_a_gone_run_not_a_crash(tmp_path):
    instance = instance_in(tmp_path / "home")
    huge = add_run(instance, DagsterRunStatus.STARTED, tags_of(10**15))  # os.kill raises OverflowError on it
    assert "is gone" in instance_health.why_gone(instance, huge)


def test_runs_without_femo_tags_are_judged_by_the_pid_dagster_recorded(tmp_path):
    """Runs launched by dagster dev record their process in an engine event, as every Dagster run does."""
    instance = instance_in(tmp_path / "home")
    dead = add_run(instance, DagsterRunStatus.STARTED, {})
    instance.report_engine_event(f"Started process for run (pid: {dead_pid()}).", dead,
                                 EngineEventData.in_process(dead_pid()))
    live = add_run(instance, DagsterRunStatus.STARTED, {}, claim=None)
    instance.report_engine_event("Started process", live, EngineEventData.in_process(os.getpid()))
    launcher = instance.run_launcher
    assert isinstance(launcher, instance_health.LocalRunLauncher) and launcher.supports_check_run_worker_health
    assert launcher.check_run_worker_health(dead).status == WorkerStatus.FAILED
    assert launcher.check_run_worker_health(live).status == WorkerStatus.RUNNING
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0


def _environment(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEMO_", "DAGSTER_", "PIXABAY", "RAPIDAPI"))}
    return {**env, "FEMO_DATA_DIR": str(data_dir), "FEMO_FACS_URL": UNUSED, "PYTHONPATH": str(PROJECT_ROOT)}


# `femo run` itself, on the warehouse assets of a small demo (the whole graph trains models: minutes)
CLI = """
import sys
import dagster as dg
from femo_pipeline_tests.test_faults import CONFIG, WAREHOUSE_ASSETS
whole = dg.JobDefinition.execute_in_process
def small(self, run_config=None, **kwargs):
    kwargs.pop("partition_key", None)
    return whole(self, run_config={**(run_config or {}), **CONFIG},
                 asset_selection=[dg.AssetKey(a) for a in WAREHOUSE_ASSETS], **kwargs)
dg.JobDefinition.execute_in_process = small
from femo_pipeline import cli
sys.exit(cli.main(["run"]))
"""


def start_cli(data_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI], cwd=PROJECT_ROOT, env=_environment(data_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not seen within {seconds} s: {what}")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.timeout(300)
def test_the_command_line_obeys_a_signal_while_it_waits_for_a_pool_slot(tmp_path, signum):
    data_dir = tmp_path / "data"
    instance = instance_in(data_dir / "dagster_home")
    holder = add_run(instance, DagsterRunStatus.STARTED,  # a live run (this test) holds the only slot
                     tags_of(os.getpid(), instance_health.process_start(os.getpid())), claim="someone_else")
    proc = start_cli(data_dir)
    try:
        def waiting():
            info = instance.event_log_storage.get_concurrency_info(POOL)
            return next((p.run_id for p in info.pending_steps if p.run_id != holder.run_id), None)

        run_id = wait_for(waiting, 180, "the command line's run waiting for the pool")

        def only_waiting():  # every step that needs no pool is done: nothing left but the wait
            done = {e.step_key for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS)}
            return done >= UNPOOLED

        wait_for(only_waiting, 180, "the steps that need no pool done")
        time.sleep(2.0)
        start = time.monotonic()
        os.kill(proc.pid, signum)
        out, _ = proc.communicate(timeout=3 * instance_health.STOP_GRACE_S + 30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signum, out[-3000:]
    assert time.monotonic() - start < 2 * instance_health.STOP_GRACE_S + 20
    assert instance.get_run_by_id(run_id).status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
    info = instance.event_log_storage.get_concurrency_info(POOL)
    assert run_id not in {p.run_id for p in info.pending_steps} | {s.run_id for s in info.claimed_slots}
    assert holders(instance) == {holder.run_id}  # the live run keeps its slot


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_run_killed_mid_write_does_not_block_the_next_run_which_equals_a_clean_one(tmp_path):
    clean = tmp_path / "clean"
    assert materialize(clean, selection=WAREHOUSE_ASSETS, run_config=CONFIG, facs_url=UNUSED).success
    expected = _contents(clean)

    data_dir = tmp_path / "killed"
    proc = start_cli(data_dir)
    home = data_dir / "dagster_home"
    try:
        wait_for(lambda: (home / "dagster.yaml").exists() and (home / "storage").exists(), 120, "the instance")
        instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        warehouse = data_dir / "warehouse" / "femo.duckdb"
        # killed while a warehouse step holds the pool's slot, after the warehouse file appeared
        dead = wait_for(lambda: warehouse.exists() and holders(instance), 300, "a warehouse step holding the slot")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    [dead_run] = dead
    assert instance.get_run_by_id(dead_run).status == DagsterRunStatus.STARTED  # left behind, slot held
    assert holders(instance) == {dead_run}

    again = start_cli(data_dir)
    try:
        out, _ = again.communicate(timeout=400)
    finally:
        if again.poll() is None:
            os.killpg(again.pid, signal.SIGKILL)
    assert again.returncode == 0, out[-3000:]
    assert f"run {dead_run} had died" in out
    assert instance.get_run_by_id(dead_run).status == DagsterRunStatus.FAILURE
    assert "is gone" in failure_message(instance, dead_run)
    assert holders(instance) == set()
    assert _contents(data_dir) == expected
