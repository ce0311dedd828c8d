"""End to end: the README's demo command, the real web UI over GraphQL, and real FER-2013 from ../shared."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import duckdb
import pytest

from femo_pipeline.definitions import defs
from femo_pipeline.resources import PROJECT_ROOT
from femo_pipeline_tests.conftest import FER2013_DIR, materialize, requires_fer2013

ALL_ASSETS = {k.path[-1] for k in defs.resolve_asset_graph().get_all_asset_keys()}
TRAINING = {"emotion_model", "trained_model_run", "data_factors", "data_factors_table"}  # no default run trains
CORE_ASSETS = {"demo_source_files", "fer2013_images", "kaggle_face_images", "everyday_emotions_survey",
               "image_catalog", "data_sources", "emotions", "images", "survey_responses", "erd", "serving_snapshot"}


def _env(data_dir) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEMO_", "DAGSTER_"))}
    env.update(FEMO_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", FEMO_SENSOR_INTERVAL="5")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _answer_rows(database) -> dict[str, int]:
    with duckdb.connect(str(database), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("predictions", "human_votes", "verdicts", "benchmark_scores")}


@pytest.fixture(scope="module")
def demo_ui(tmp_path_factory):
    """The README's demo command, then `femo ui` (dagster dev: web UI and daemon) over its instance; yields
    (data folder, UI port, the demo command's output, the answer's row counts)."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    data_dir = tmp_path / "data"
    done = subprocess.run([sys.executable, "-m", "femo_pipeline", "demo"], cwd=PROJECT_ROOT, env=_env(data_dir),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    answer = _answer_rows(data_dir / "warehouse" / "femo.duckdb")
    port = _free_port()
    ui_log = tmp_path / "ui.log"
    # dagster dev ignores SIGINT when started in the background unless the default handler is restored first
    ui = subprocess.Popen(
        [sys.executable, "-m", "femo_pipeline", "ui", "--port", str(port)], cwd=PROJECT_ROOT, env=_env(data_dir),
        # to a file, not a pipe nobody reads while it runs: a full pipe would block whichever process logs next
        stdout=ui_log.open("w"), stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert ui.poll() is None, ui_log.read_text()[-3000:]
            try:  # the web server answers before the code location has loaded: wait for its assets
                if _graphql(port, "{ assetNodes { assetKey { path } } }").get("data", {}).get("assetNodes"):
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            pytest.fail("the UI did not answer in 3 minutes: " + ui_log.read_text()[-3000:])
        yield data_dir, port, done.stdout, answer
    finally:
        os.killpg(ui.pid, signal.SIGINT)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
            pytest.fail("dagster dev did not stop on SIGINT")
    # it stopped its webserver, daemon and code server with it: nothing of its process group is left
    deadline = time.monotonic() + 30
    while _group_alive(ui.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(ui.pid), "a process of dagster dev outlived it"


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_demo_command_then_web_ui_and_daemon(demo_ui):
    """The README's demo command ends with the answer; in the web UI every asset of the answer shows a
    materialization, the command's run is filed under its job (the Overview page lists it), and a file dropped
    into a raw folder makes the sensor start a run that ingests it and keeps the answer."""
    data_dir, port, stdout, answer = demo_ui
    assert "femo: ANSWER: SYNTHETIC DEMO" in stdout
    assert ", 0 failed, 0 not run" in stdout and "run success" in stdout
    assert "Where to look" in stdout and str(data_dir / "warehouse" / "femo.duckdb") in stdout
    assert (data_dir / "warehouse" / "erd.png").exists() and (data_dir / "reports" / "benchmark.md").exists()
    # the data-factor grid is not part of a default run; the report says how to measure it
    assert "No cell of the data-factor grid" in (data_dir / "reports" / "benchmark.md").read_text()
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM images_fer2013").fetchone()[0] == 7 * 80 + 2
    assert all(answer.values()), answer

    nodes = _graphql(port, "{ assetNodes { assetKey { path } groupName assetMaterializations(limit: 1) { runId } } }")
    nodes = {n["assetKey"]["path"][-1]: n for n in nodes["data"]["assetNodes"]}
    assert set(nodes) == ALL_ASSETS and CORE_ASSETS <= ALL_ASSETS
    assert {"ingest", "faces", "warehouse", "eda", "model", "serving"} == {n["groupName"] for n in nodes.values()}
    shown = {name for name, n in nodes.items() if n["assetMaterializations"]}
    assert shown == ALL_ASSETS - TRAINING, "every asset of the answer shows a materialization, training none"
    jobs = _graphql(port, "{ repositoriesOrError { ... on RepositoryConnection { nodes { location { name } "
                          "pipelines { name runs(limit: 5) { runId repositoryOrigin { repositoryLocationName } } } "
                          "} } } }")["data"]["repositoriesOrError"]["nodes"]
    runs = {p["name"]: p["runs"] for p in jobs[0]["pipelines"]}
    [demo_run] = runs["femo_answer"]  # filed under its job, with the origin the Overview timeline groups by
    assert demo_run["repositoryOrigin"]["repositoryLocationName"] == jobs[0]["location"]["name"]

    anger = data_dir / "demo" / "kaggle" / "anger"
    (anger / "dropped_0001.png").write_bytes((anger / "anger_0002.png").read_bytes())
    status, deadline = None, time.monotonic() + 600
    while time.monotonic() < deadline and status not in ("SUCCESS", "FAILURE", "CANCELED"):
        time.sleep(3)
        runs = _graphql(port, '{ runsOrError(filter: {tags: [{key: "dagster/sensor_name", value: "raw_folder_sensor"}]})'
                              ' { ... on Runs { results { runId status } } } }')["data"]["runsOrError"]["results"]
        status = runs[0]["status"] if runs else None
    assert status == "SUCCESS", status
    assert len(runs) == 1
    for database in (data_dir / "warehouse" / "femo.duckdb", data_dir / "serving" / "femo.duckdb"):
        with duckdb.connect(str(database), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM images WHERE rel_path = 'anger/dropped_0001.png'").fetchone()[0] == 1
            assert con.execute("SELECT count(*) FROM predictions p JOIN images i ON i.id = p.image_id "
                               "WHERE i.rel_path = 'anger/dropped_0001.png'").fetchone()[0] > 0
        kept = _answer_rows(database)  # the sensor's run kept the answer (and predicted the new face)
        assert {t: kept[t] for t in ("human_votes", "verdicts", "benchmark_scores")} == \
            {t: answer[t] for t in ("human_votes", "verdicts", "benchmark_scores")}
        assert kept["predictions"] > answer["predictions"]


@pytest.mark.slow
def test_screenshots_of_where_to_click(demo_ui):
    """Headless Chromium on the Dagster UI (benchmark_report's page, the Overview timeline with the demo's run)
    and on the gallery (the answer's banner, a face with its votes and every reader's guess); the pictures go to
    data/screenshots/readme-*.png (README shows copies from docs/screenshots/)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from femo_pipeline_tests.test_api import chromium, serve_in_thread

    browser = chromium("--window-size=1400,1000")
    if browser is None:
        pytest.skip("chromium or chromedriver not installed (.ci/run installs Debian's packages)")
    data_dir, port, _, _ = demo_ui
    shots = PROJECT_ROOT / "data" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    headline = json.loads((data_dir / "reports" / "benchmark.json").read_text())["headline"]
    wait = WebDriverWait(browser, 90)

    def shoot(name: str) -> None:
        """Save a screenshot once the UI's one-time 'join the community' dialog, if shown, is skipped."""
        time.sleep(2)
        for button in browser.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            button.click()
            time.sleep(1)
        browser.save_screenshot(str(shots / name))

    try:
        browser.get(f"http://127.0.0.1:{port}/assets/benchmark_report")
        wait.until(lambda b: headline[:60] in b.find_element(By.TAG_NAME, "body").text)
        shoot("readme-1-benchmark_report.png")
        words = " ".join(headline.replace("'", " ").split()[:6])  # the headline's metadata row, brought into view
        row = browser.find_element(By.XPATH, f"//*[contains(text(), '{words}')]")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
        shoot("readme-1b-headline.png")
        browser.get(f"http://127.0.0.1:{port}/overview/activity/timeline")
        wait.until(lambda b: "femo_answer" in b.find_element(By.TAG_NAME, "body").text)
        shoot("readme-2-overview-timeline.png")

        with duckdb.connect(str(data_dir / "serving" / "femo.duckdb"), read_only=True) as con:
            face = con.execute(
                "SELECT i.id FROM images i JOIN human_votes v ON v.image_id = i.id JOIN emotions e ON e.id = i.emotion_id "
                "WHERE i.split = 'test' AND greatest(v.anger, v.disgust, v.fear, v.happiness, v.sadness, v.surprise, "
                "v.neutral) > 5 ORDER BY i.id LIMIT 1").fetchone()[0]
        with serve_in_thread(data_dir / "serving" / "femo.duckdb") as url:
            browser.get(url + "/?source=4&split=test")
            wait.until(lambda b: b.find_element(By.ID, "answer").text.startswith("The answer: SYNTHETIC DEMO"))
            browser.save_screenshot(str(shots / "readme-3-gallery.png"))
            browser.get(f"{url}/faces/{face}")
            wait.until(lambda b: b.execute_script("const i = document.getElementById('face'); "
                                                  "return i.complete && i.naturalWidth > 0"))
            rows = browser.find_elements(By.CSS_SELECTOR, "#predictions tr.prediction")
            assert len(rows) >= 3 and all(r.size["height"] < 80 for r in rows)  # one line per reader
            height = browser.execute_script("return document.documentElement.scrollHeight")
            assert height < 2200, height  # the whole face page, not a 3,000 px scroll
            browser.set_window_size(1400, height + 140)
            browser.save_screenshot(str(shots / "readme-4-face.png"))
    finally:
        browser.quit()


FER_COUNTS = {
    "train": {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "sad": 4830, "surprise": 3171, "neutral": 4965},
    "test": {"angry": 958, "disgust": 111, "fear": 1024, "happy": 1774, "sad": 1247, "surprise": 831, "neutral": 1233},
}


@pytest.mark.slow
@requires_fer2013
def test_real_fer2013_ingests_whole_with_exact_counts(tmp_path):
    result = materialize(
        tmp_path, selection=["fer2013_images", "kaggle_face_images", "image_catalog", "data_sources", "emotions", "images"],
        profile="real", fer2013_dir=str(FER2013_DIR),
    )
    assert result.success
    with duckdb.connect(str(tmp_path / "warehouse" / "femo.duckdb"), read_only=True) as con:
        counts = con.execute("SELECT split, label_raw, count(*) FROM images WHERE source_id = 4 GROUP BY ALL").fetchall()
        assert con.execute("SELECT count(*) FROM images_fer2013").fetchone()[0] == 35887
        got = {}
        for split, label, n in counts:
            got.setdefault(split, {})[label] = n
        assert got == FER_COUNTS
        assert con.execute("SELECT count(*) FROM images WHERE usage = 'PublicTest'").fetchone()[0] == 3589
        assert con.execute("SELECT count(*) FROM images WHERE usage = 'PrivateTest'").fetchone()[0] == 3589
        assert con.execute("SELECT DISTINCT height, width, color_space, synthetic FROM images").fetchall() == [
            (48, 48, "Grayscale", False)]
        # SOURCE.txt beside the images is not an image: it is kept as a quarantine row, not dropped
        assert con.execute("SELECT rel_path, reason FROM quarantined_files").fetchall() == [
            ("SOURCE.txt", "not an image: unrecognised file signature")]
        dup = con.execute(
            """
            SELECT count(*) AS groups,
                   count(*) FILTER (WHERE bool_or_split) AS across
            FROM (SELECT content_hash, bool_or(duplicate_cross_split) AS bool_or_split
                  FROM images WHERE duplicate_count > 1 GROUP BY content_hash)
            """
        ).fetchone()
        assert dup == (1516, 531)
        leaked = con.execute("SELECT count(*) FROM images WHERE split = 'test' AND duplicate_cross_split").fetchone()[0]
        assert leaked == 568
    meta = result.asset_materializations_for_node("image_catalog")[0].metadata
    assert meta["duplicates"].value["test_files_also_in_train"] == 568
