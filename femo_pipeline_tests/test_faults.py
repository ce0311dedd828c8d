"""Faults: a run killed (SIGKILL) while it writes the warehouse leaves nothing that a re-run does not repair;
two runs that overlap on the warehouse both finish (the duckdb pool makes one wait), with no lock error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.instance.ref import InstanceRef

from femo_pipeline.cli import prepare_pools
from femo_pipeline.resources import PROJECT_ROOT
from femo_pipeline_tests.conftest import DEMO_RUN_CONFIG, FOLDER_ASSETS, materialize

pytestmark = pytest.mark.slow  # fault tests: kills, overlapping runs, a lock held across processes

WAREHOUSE_ASSETS = ["demo_source_files", *FOLDER_ASSETS, "everyday_emotions_survey",
                    "image_catalog", "data_sources", "emotions", "images", "survey_responses"]
CONFIG = {"ops": {"demo_source_files": DEMO_RUN_CONFIG["ops"]["demo_source_files"]}}
UNUSED = "http://127.0.0.1:9/unused"

# A run of the warehouse writers that stops at a chosen point of its writes (argv[2]), writes argv[3] there and
# waits to be killed. schema: the first writer, inside the transaction that creates the schema; pixels: inside the
# images load, its rows and bytes inserted and not committed; survey: as the survey's load begins, the writers
# before it committed.
RUN = """
import sys, threading
from pathlib import Path
from femo_pipeline_tests.conftest import materialize
from femo_pipeline_tests.test_faults import CONFIG, UNUSED, WAREHOUSE_ASSETS
import femo_pipeline.warehouse as package
from femo_pipeline.warehouse import loads, schema

module, name, after = {"schema": (schema, "apply_schema", True), "pixels": (loads, "_insert_staged_pixels", True),
                       "survey": (package, "replace_survey", False)}[sys.argv[2]]
real = getattr(module, name)

def stopped(*args, **kwargs):
    result = real(*args, **kwargs) if after else None
    Path(sys.argv[3]).write_text(name)
    threading.Event().wait()  # until killed
    return result

setattr(module, name, stopped)
materialize(Path(sys.argv[1]), selection=WAREHOUSE_ASSETS, run_config=CONFIG, facs_url=UNUSED)
"""

TABLES = {
    "data_sources": "SELECT * FROM data_sources ORDER BY ALL",
    "emotions": "SELECT * FROM emotions ORDER BY ALL",
    "images": "SELECT * FROM images ORDER BY id",
    "image_pixels": "SELECT image_id, md5(pixels) FROM image_pixels ORDER BY image_id",
    "quarantined_files": "SELECT * FROM quarantined_files ORDER BY ALL",
    "survey_responses": "SELECT * FROM survey_responses ORDER BY ALL",
    "survey_rejected_rows": "SELECT * FROM survey_rejected_rows ORDER BY ALL",
}


def _contents(data_dir: Path) -> dict:
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        return {name: con.execute(sql).fetchall() for name, sql in TABLES.items()}


@pytest.mark.timeout(900)
def test_a_run_killed_while_writing_the_warehouse_is_repaired_by_a_rerun(tmp_path):
    clean = tmp_path / "clean"
    assert materialize(clean, selection=WAREHOUSE_ASSETS, run_config=CONFIG, facs_url=UNUSED).success
    expected = _contents(clean)
    assert len(expected["images"]) > 100 and expected["image_pixels"] and expected["survey_responses"]

    for point in ("schema", "pixels", "survey"):
        data_dir, reached = tmp_path / f"killed_{point}", tmp_path / f"reached_{point}"
        proc = subprocess.Popen([sys.executable, "-c", RUN, str(data_dir), point, str(reached)], cwd=PROJECT_ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        _wait_for_file(reached, proc)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-write: the point's transaction is open, or a writer is next
        proc.wait(timeout=60)
        try:
            left = _contents(data_dir)
        except duckdb.Error:  # no warehouse tables yet: the schema's transaction was rolled back
            left = None
        assert left != expected  # the kill left an unfinished warehouse
        assert materialize(data_dir, selection=WAREHOUSE_ASSETS, run_config=CONFIG, facs_url=UNUSED).success
        assert _contents(data_dir) == expected, f"killed at {point}"


def _wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    """Until `path` exists (the other process reached its point); a failure if the process ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the process ended before {path.name}: {proc.stderr.read()[-3000:] if proc.stderr else ''}")
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


HOLDER = """
import sys
from pathlib import Path
from femo_pipeline.resources import warehouse_lock
with warehouse_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()  # until told to release (or killed)
    Path(sys.argv[2]).write_text("releasing")
"""


def test_a_second_process_waits_for_the_warehouse_lock(tmp_path):
    """WarehouseResource connections are serialised across processes by a lock beside the file: a second process
    waits for the first to close (instead of DuckDB's immediate "Could not set lock") and gets in once it has, a
    nested open in one process does not deadlock, a lock held too long fails with a clear message, and a killed
    holder's lock is released by the kernel."""
    import logging
    import threading

    from femo_pipeline.resources import FemoStorage, WarehouseResource

    db, released = tmp_path / "warehouse" / "femo.duckdb", tmp_path / "released"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(released)], cwd=PROJECT_ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    waiting, outcome = threading.Event(), {}

    class Waiting(logging.Handler):
        def emit(self, record):
            if "waiting for the warehouse" in record.getMessage():
                waiting.set()

    handler = Waiting()
    logging.getLogger("dagster").addHandler(handler)
    resource = WarehouseResource(database=str(db), storage=FemoStorage(data_dir=str(tmp_path)))

    def second():
        try:
            with resource.get_connection() as con:
                outcome["after_release"] = released.exists()
                with resource.get_connection() as again:  # nested in the same process: no deadlock
                    again.execute("CREATE TABLE t AS SELECT 1 AS x")
                outcome["x"] = con.execute("SELECT x FROM t").fetchone()
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=second)
    try:
        thread.start()
        assert waiting.wait(timeout=60), "the second process never waited for the lock"
        assert thread.is_alive() and not outcome  # waiting, not failed on DuckDB's lock
        holder.stdin.write("release\n")
        holder.stdin.flush()
        thread.join(timeout=60)
    finally:
        logging.getLogger("dagster").removeHandler(handler)
    assert holder.wait(timeout=60) == 0
    assert outcome == {"after_release": True, "x": (1,)}, outcome

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(released)], cwd=PROJECT_ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    impatient = WarehouseResource(database=str(db), storage=FemoStorage(data_dir=str(tmp_path)), lock_timeout=0.5)
    with pytest.raises(TimeoutError, match="in use by another process"):
        with impatient.get_connection():
            pass
    holder.kill()
    holder.wait(timeout=60)
    with impatient.get_connection() as con:  # the kernel released the killed holder's lock
        assert con.execute("SELECT count(*) FROM t").fetchone() == (1,)


@pytest.mark.timeout(900)
def test_two_overlapping_runs_on_one_instance_both_finish_without_a_lock_error(tmp_path):
    """Two processes materialize warehouse writers into the same DuckDB file at once, sharing a Dagster instance
    configured by the repository's dagster.yaml: the duckdb pool lets one step at a time open the file."""
    data_dir = tmp_path / "data"
    assert materialize(data_dir, selection=WAREHOUSE_ASSETS, run_config=CONFIG, facs_url=UNUSED).success
    expected = _contents(data_dir)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    script = """
import sys, dagster as dg
from femo_pipeline_tests.conftest import materialize
from femo_pipeline_tests.test_faults import CONFIG, UNUSED, WAREHOUSE_ASSETS
with dg.DagsterInstance.get() as instance:
    import femo_pipeline_tests.conftest as c
    result = dg.materialize([*c.all_assets, *c.all_checks], selection=WAREHOUSE_ASSETS, run_config=CONFIG,
                            resources=c.resources_for(__import__("pathlib").Path(sys.argv[1]), facs_url=UNUSED),
                            instance=instance, raise_on_error=False)
    sys.exit(0 if result.success else 1)
"""
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        # create the instance's storage and pools once, as the CLI does, before two processes race to create them
        assert prepare_pools(instance) == ["duckdb"]
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(data_dir)], cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=800)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
        assert "Could not set lock" not in out and "Conflicting lock" not in out
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    # Which step opened the file when is not asserted from Dagster's step spans: two runs starting the same
    # instant can both get the pool's one slot on SQLite storage (seen once in CI); the warehouse lock
    # (test_a_second_process_waits_for_the_warehouse_lock) is what keeps their connections apart.
    assert _contents(data_dir) == expected  # both wrote the same rows; nothing lost or doubled


def test_warehouse_connections_have_a_memory_limit(tmp_path):
    """DuckDB's default (80 % of RAM) let the million-image load grow the run by gigabytes: the pipeline's
    connections get `memory_limit` (512MB), and a memory_limit in connection_config wins."""
    from femo_pipeline.resources import FemoStorage, WarehouseResource

    storage = FemoStorage(data_dir=str(tmp_path))
    with WarehouseResource(storage=storage).get_connection() as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "488.2 MiB"  # 512 MB
    with WarehouseResource(storage=storage, connection_config={"memory_limit": "1GB"}).get_connection() as con:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "953.6 MiB"  # 1 GB
