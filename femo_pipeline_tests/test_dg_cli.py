"""`dg check defs` and `dg list defs` work from the project root ([tool.dg] in pyproject.toml), so `dg dev` can load
the same code location as `dagster dev` and CI notices when it stops loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from femo_pipeline.definitions import defs
from femo_pipeline.resources import PROJECT_ROOT

DG = Path(sys.executable).with_name("dg")

pytestmark = [pytest.mark.skipif(not DG.exists(), reason=f"dg CLI (dagster-dg-cli) not installed at {DG}"),
              pytest.mark.slow]  # the dg command in its own process, loading the whole code location


def _dg(*args: str) -> subprocess.CompletedProcess:
    # the venv counts as active, as it would after `source .venv/bin/activate` (else dg warns about a mismatch)
    env = {**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parents[1])}
    return subprocess.run([str(DG), *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.timeout(300)
def test_dg_check_defs_passes():
    done = _dg("check", "defs")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "All definitions loaded successfully" in done.stdout + done.stderr


@pytest.mark.timeout(300)
def test_dg_list_defs_shows_the_whole_code_location():
    done = _dg("list", "defs", "--json")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    listed = json.loads(done.stdout)
    keys = {a["asset_key"] for a in listed["assets"]}
    assert "benchmark_report" in keys and "images" in keys
    expected = {k.to_user_string() for a in defs.assets for k in getattr(a, "keys", ())}
    assert keys == expected
    assert {j["name"] for j in listed["jobs"]} >= {"femo_all", "folder_ingest", "web_refresh"}
    assert [s["name"] for s in listed["schedules"]] and [s["name"] for s in listed["sensors"]]
    assert all(a["group_name"] for a in listed["assets"])
