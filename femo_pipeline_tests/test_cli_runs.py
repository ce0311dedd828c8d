"""`femo demo|run|train|check`: inputs checked before any work, progress lines, runs filed under femo's code
location, the end of a run (the answer, or the first failure and what it stopped), the outputs listed only when
they exist, and `ui`/`serve` refusing a busy port at once."""

from __future__ import annotations

import random
import re
import shutil
import socket
import time

import dagster as dg
import duckdb
import pytest

from femo_pipeline import cli, headline, runner
from femo_pipeline_tests.conftest import FER2013_DIR, SHARED, requires_fer2013


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A data folder and Dagster instance of the test's own; every setting a command may change is restored."""
    monkeypatch.setenv("FEMO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "data" / "dagster_home"))
    monkeypatch.setenv("FEMO_PROFILE", "auto")
    for name in ("FEMO_FER2013NEW", "FEMO_FERPLUS_VOTES", "FEMO_FACS_URL", "FEMO_REFRESH_HOUR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


def _runs(data_dir) -> list[dg.DagsterRun]:
    home = data_dir / "dagster_home"
    if not (home / "dagster.yaml").exists():
        return []
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        return list(instance.get_runs())


def test_inputs_are_checked_before_any_work_one_message_per_problem(env, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("FEMO_PROFILE", "real")
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err
    assert "cannot start: 1 problem" in err and "no data is configured: set FEMO_FER2013_DIR" in err
    assert _runs(env) == [] and not (env / "warehouse").exists()  # nothing ran, nothing was written

    no_test = tmp_path / "fer"
    (no_test / "train" / "happy").mkdir(parents=True)
    monkeypatch.setenv("FEMO_FER2013_DIR", str(no_test))
    monkeypatch.setenv("FEMO_KAGGLE_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("FEMO_FER2013NEW", str(tmp_path / "missing.csv"))
    monkeypatch.setenv("FEMO_FACS_URL", "ftp://example.org/facs")
    monkeypatch.setenv("FEMO_REFRESH_HOUR", "25")
    assert cli.main(["train"]) == 2
    problems = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 5, problems
    for expected in ("FEMO_REFRESH_HOUR is '25'", "FEMO_FER2013_DIR is", "no test/ folder", "FEMO_KAGGLE_DIR is",
                     "FEMO_FER2013NEW is", "FEMO_FACS_URL is 'ftp://"):
        assert any(expected in p for p in problems), expected
    assert _runs(env) == []

    (no_test / "test" / "happy").mkdir(parents=True)
    for name in ("FEMO_KAGGLE_DIR", "FEMO_FER2013NEW", "FEMO_REFRESH_HOUR"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("FEMO_FACS_URL", "fixture")
    assert cli.main(["check"]) == 0
    assert "inputs look right for the real profile" in capsys.readouterr().out
    assert _runs(env) == []


def test_progress_lines_heartbeat_and_a_failure_in_one_paragraph(monkeypatch):
    """Steps are reported as they finish, an asset's log lines as they come, a silent stretch gets a line at
    least every HEARTBEAT seconds, and a failure is one line with its reason. The run is filed under femo's code
    location, as a run launched in the UI is (the Overview page lists only those)."""
    monkeypatch.setattr(runner, "HEARTBEAT", 1.0)

    @dg.asset
    def slow(context):
        context.log.info("halfway there")
        time.sleep(3.5)

    @dg.asset(deps=[slow])
    def broken():
        raise dg.Failure(description="the input is\n  broken: fix it")

    @dg.asset(deps=[broken])
    def after():
        pass

    job = dg.Definitions(assets=[slow, broken, after], jobs=[dg.define_asset_job("t", "*")]).resolve_job_def("t")
    lines = []
    with dg.instance_for_test() as instance:
        run_id = runner.execute(job, instance, {}, None, out=lambda line: lines.append((time.monotonic(), line)),
                                expected={"slow": 90})
        run = instance.get_run_by_id(run_id)
        label = "__repository__@femo_pipeline.definitions"  # the UI lists a job's runs by this tag
        listed = instance.get_runs(dg.RunsFilter(job_name="t", tags={".dagster/repository": label}))
        found = runner.outcome(instance, run_id, instance.storage_directory())
    text = [line for _, line in lines]
    assert any(re.search(r"\] +slow: halfway there$", t) for t in text)
    beats = [t for t in text if "still running: slow for 0:0" in t]
    assert beats and all("of about 1:30" in t for t in beats)
    assert all(b - a <= 2.5 for (a, _), (b, _) in zip(lines, lines[1:]))  # never silent for long
    assert any(t.endswith("FAILED broken: the input is broken: fix it") for t in text)
    assert run.remote_job_origin.repository_origin.get_label() == label and [r.run_id for r in listed] == [run_id]
    assert found.status == "FAILURE" and found.failures == [("broken", "the input is broken: fix it")]
    assert found.not_run == ["after"] and found.materialized == ["slow"]
    said = runner.describe(found)
    assert said[0] == "No answer: benchmark_report did not run (broken failed first, below)"
    assert "FIRST FAILURE: broken: the input is broken: fix it" in said
    assert any("not run because of it: 1 asset (after)" in s for s in said)


def test_the_headline_always_says_synthetic_demo_under_the_demo_profile(tmp_path):
    assert headline.read(tmp_path) is None
    (tmp_path / "benchmark.json").write_text('{"headline": "femo CNN is WORSE than one human annotator.", '
                                             '"synthetic": true}')
    shown = headline.read(tmp_path)["headline"]
    assert shown.startswith("SYNTHETIC DEMO") and "WORSE than one human" in shown
    assert headline.shown("SYNTHETIC DEMO: x", True) == "SYNTHETIC DEMO: x"  # said once
    assert headline.shown("real result", False) == "real result"
    (tmp_path / "benchmark.json").write_text("{half a fi")
    assert headline.read(tmp_path) is None


def test_ui_and_serve_on_a_busy_port_fail_at_once(env, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in ("ui", "serve"):
            start = time.monotonic()
            assert cli.main([command, "--port", str(port)]) == 2
            assert time.monotonic() - start < 5
            err = capsys.readouterr().err
            assert f"cannot listen on 127.0.0.1:{port}" in err and f"{command} --port {port + 1}" in err


@pytest.mark.slow
def test_a_failed_run_ends_with_its_first_failure_and_lists_only_outputs_that_exist(env, demo_inputs, monkeypatch,
                                                                                     capsys, tmp_path):
    """Real profile on a small FER-2013-shaped folder whose FER+ file is corrupt: the run goes as far as it can,
    then says which asset failed first and why, what that stopped, and lists no report (there is none)."""
    corrupt = tmp_path / "fer2013new.csv"
    corrupt.write_text("emotion,Usage\n0,Training\n")
    monkeypatch.setenv("FEMO_FER2013_DIR", str(demo_inputs / "fer2013"))
    monkeypatch.setenv("FEMO_FER2013NEW", str(corrupt))
    monkeypatch.setenv("FEMO_FACS_URL", "fixture")
    assert cli.main(["run"]) == 1
    out = capsys.readouterr().out
    summary = out[out.index("\n\n"):]
    assert "No answer: benchmark_report did not run (fer2013new_csv failed first, below)" in summary
    assert re.search(r"FIRST FAILURE: fer2013new_csv: fer2013new\.csv from .* has sha256 \w+\.\.\., expected", summary)
    stopped = re.search(r"not run because of it: (\d+) assets \(([^)]*)", summary)
    assert stopped and "human_votes" in stopped.group(2)
    for absent in ("benchmark report", "demo inputs", "serving snapshot", "gallery"):
        assert absent not in summary, absent
    assert "warehouse (DuckDB):" in summary  # it exists: the ingest ran
    assert "Dependencies" not in out  # Dagster's own lines stay in the UI
    [run] = _runs(env)
    assert run.job_name == "femo_answer" and run.status == dg.DagsterRunStatus.FAILURE


@pytest.mark.slow
def test_demo_with_training_prints_an_estimate_first_and_ends_with_a_synthetic_headline(env, capsys):
    assert cli.main(["demo", "--train", "--epochs", "1", "--width", "8", "--max-train-images", "200"]) == 0
    out = capsys.readouterr().out
    estimate = re.search(r"training estimate: 200 FER-2013 Training images, 1 epochs, width 8, at ([\d,]+) images/s "
                         r"here: about (\d+:\d\d)", out)
    assert estimate and int(estimate.group(1).replace(",", "")) > 0
    assert out.index("training estimate") < out.index("] done")  # before any step
    assert "done emotion_model" in out and "done data_factors" not in out
    answer = re.search(r"^femo: ANSWER: (.*)$", out, re.M)
    assert answer and answer.group(1).startswith("SYNTHETIC DEMO")
    assert "(synthetic)" in out and "FROM AN EARLIER RUN" not in out
    with duckdb.connect(str(env / "warehouse" / "femo.duckdb"), read_only=True) as con:
        readers = {r for (r,) in con.execute("SELECT DISTINCT reader FROM verdicts").fetchall()}
    assert any("trained here" in r for r in readers)
    [run] = _runs(env)
    assert run.job_name == "femo_all" and run.status == dg.DagsterRunStatus.SUCCESS


@pytest.mark.slow
@requires_fer2013
@pytest.mark.skipif(not (SHARED / "datasets" / "ferplus" / "fer2013new.csv").is_file(), reason="no FER+ votes")
def test_a_real_run_answers_without_training_and_offline_facs(env, monkeypatch, capsys, tmp_path):
    """A small real FER-2013 folder (every emotion, train and test), the FER+ votes from ../shared, and a FACS page
    that cannot be fetched: the run answers with the shipped models, trains nothing, and marks the FACS page stale."""
    rng = random.Random(0)
    small = tmp_path / "fer2013"
    for split, n in (("train", 10), ("test", 25)):
        for folder in sorted(p for p in (FER2013_DIR / split).iterdir() if p.is_dir()):
            files = sorted(folder.glob("*.jpg"))
            (small / split / folder.name).mkdir(parents=True)
            for f in rng.sample(files, min(n, len(files))):
                shutil.copyfile(f, small / split / folder.name / f.name)
    monkeypatch.setenv("FEMO_FER2013_DIR", str(small))
    monkeypatch.setenv("FEMO_FACS_URL", "http://127.0.0.1:9/facs/")  # nothing listens there
    assert cli.main(["run"]) == 0
    out = capsys.readouterr().out
    answer = re.search(r"^femo: ANSWER: (On the \d+ leak-free test images.*)$", out, re.M)
    assert answer and "SYNTHETIC" not in answer.group(1), out[-3000:]
    assert "check facs_page_current of facs_page not passed (WARN)" in out
    assert "done emotion_model" not in out and "done data_factors" not in out and "demo inputs" not in out
    [run] = _runs(env)
    assert run.job_name == "femo_answer"
    with duckdb.connect(str(env / "serving" / "femo.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM human_votes").fetchone()[0] > 0
        assert con.execute("SELECT count(*) FROM verdicts").fetchone()[0] > 0
        assert con.execute("SELECT count(*) FROM facs_single_units").fetchone()[0] == 30


def test_every_femo_setting_is_in_the_readme_table_and_in_env_example():
    """Each FEMO_* variable the code or the scale-out scripts read is a row of README's settings table and a line
    of .env.example; the example, loaded as a .env, sets nothing but the profile."""
    from dotenv import dotenv_values

    from femo_pipeline.resources import PROJECT_ROOT

    sources = [*(PROJECT_ROOT / "femo_pipeline").rglob("*.py"), *(PROJECT_ROOT / "docs" / "scale").glob("*")]
    used = {name for path in sources for name in re.findall(r"\bFEMO_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())}
    assert {"FEMO_FER2013NEW", "FEMO_FERPLUS_VOTES", "FEMO_FACS_URL", "FEMO_SERVING_DB"} <= used
    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme[readme.index("| setting | default | what |"):]
    table = table[:table.index("\n\n")]
    example = (PROJECT_ROOT / ".env.example").read_text()
    for name in sorted(used):
        assert f"`{name}`" in table, f"{name} is not in README's settings table"
        assert f"# {name}=" in example or f"{name}=" in example, f"{name} is not in .env.example"
    assert dotenv_values(PROJECT_ROOT / ".env.example") == {"FEMO_PROFILE": "auto"}
