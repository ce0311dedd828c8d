"""The pages for people (gallery, one face, disagreements, report), offline docs, caching headers, and the
browser walk-through (headless Chromium; skips without it)."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from fastapi.testclient import TestClient

from femo_pipeline import serving
from femo_pipeline.api import create_app
from femo_pipeline_tests.conftest import materialize
from femo_pipeline_tests.test_api import chromium, serve_in_thread

SCREENSHOTS = Path(__file__).resolve().parents[1] / "data" / "screenshots"
DEMO = {"ops": {"demo_source_files": {"config": {"fer_train_per_class": 8, "fer_test_per_class": 4,
                                                 "kaggle_per_class": 5, "survey_rows": 300}}}}
SEVEN = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
VOTES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")

# Tables the benchmark adds; created here only when the snapshot's schema lacks them.
RESULT_TABLES = """
CREATE TABLE IF NOT EXISTS model_runs (id VARCHAR PRIMARY KEY, reader VARCHAR NOT NULL, origin VARCHAR NOT NULL,
    created TIMESTAMP NOT NULL, synthetic BOOLEAN NOT NULL, caveat VARCHAR);
CREATE TABLE IF NOT EXISTS predictions (model_run_id VARCHAR NOT NULL, image_id BIGINT NOT NULL,
    emotion_id INTEGER NOT NULL, p_anger DOUBLE, p_disgust DOUBLE, p_fear DOUBLE, p_happiness DOUBLE,
    p_sadness DOUBLE, p_surprise DOUBLE, p_neutral DOUBLE, PRIMARY KEY (model_run_id, image_id));
CREATE TABLE IF NOT EXISTS human_votes (image_id BIGINT PRIMARY KEY, neutral INTEGER NOT NULL,
    happiness INTEGER NOT NULL, surprise INTEGER NOT NULL, sadness INTEGER NOT NULL, anger INTEGER NOT NULL,
    disgust INTEGER NOT NULL, fear INTEGER NOT NULL, contempt INTEGER NOT NULL, unknown INTEGER NOT NULL,
    "NF" INTEGER NOT NULL, synthetic BOOLEAN NOT NULL);
"""


def add_results(con: duckdb.DuckDBPyConnection) -> dict:
    """Hand-made votes and predictions for the FER-2013 test images, with known disagreements.

    Image k (in id order): people vote 6 of 10 for the label when k % 3 != 0, else 3 of 10 (the other 7 for the
    next emotion). Reader 'cnn' predicts the label when k is even, else the next emotion. So 'model right, most
    people wrong' is k even and k % 3 == 0; 'most people right, model wrong' is k odd and k % 3 != 0.
    """
    con.execute(RESULT_TABLES)
    con.execute("DELETE FROM predictions; DELETE FROM human_votes")
    con.execute("DELETE FROM model_runs WHERE id IN ('cnn-test', 'all-neutral-test')")
    columns = {r[0] for r in con.execute("DESCRIBE model_runs").fetchall()}
    now = dt.datetime(2026, 1, 1)
    for run_id, name in (("cnn-test", "femo CNN (test rows)"), ("all-neutral-test", "always neutral")):
        values = {"id": run_id, "reader": name, "origin": "baseline", "created": now, "synthetic": True,
                  "caveat": None}
        values = {k: v for k, v in values.items() if k in columns}
        con.execute(f"INSERT INTO model_runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                    list(values.values()))
    images = con.execute("SELECT id, emotion_id FROM images WHERE source_id = 4 AND split = 'test' "
                         "AND emotion_id <= 6 ORDER BY id").fetchall()
    expected = {"model": {}, "people": {}}
    for k, (image_id, label) in enumerate(images):
        other = (label + 1) % 7
        counts = dict.fromkeys(VOTES, 0)
        if k % 3:
            counts[SEVEN[label]], counts[SEVEN[other]] = 6, 4
        else:
            counts[SEVEN[label]], counts[SEVEN[other]] = 3, 7
        names = ", ".join(f'"{c}"' for c in VOTES)
        con.execute(f"INSERT INTO human_votes (image_id, {names}, synthetic) VALUES (?, {', '.join('?' * len(VOTES))}, "
                    "TRUE)", [image_id, *counts.values()])
        said = label if k % 2 == 0 else other
        probs = [0.02] * 7
        probs[said] = 0.88
        con.execute("INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ["cnn-test", image_id, said, *probs])
        neutral = [0.1] * 6 + [0.4]
        con.execute("INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    ["all-neutral-test", image_id, 6, *neutral])
        if said == label and k % 3 == 0:
            expected["model"].setdefault(label, []).append(image_id)
        if said != label and k % 3:
            expected["people"].setdefault(label, []).append(image_id)
    con.execute("INSERT OR REPLACE INTO warehouse_info VALUES ('declared_model_run', 'cnn-test')")
    return {"images": [i for i, _ in images], "expected": expected}


def build(data_dir: Path) -> Path:
    """The warehouse assets up to serving_snapshot (no model training), in data_dir."""
    selection = (dg.AssetSelection.assets("serving_snapshot").upstream() - dg.AssetSelection.groups("model")) \
        | dg.AssetSelection.assets("facs_emotion_action_units").upstream()
    assert materialize(data_dir, selection=selection, run_config=DEMO).success
    return data_dir / "serving" / "femo.duckdb"


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    """A snapshot as today's pipeline makes it without the model assets: no predictions, no votes."""
    return build(tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def results(plain, tmp_path_factory):
    """A copy of it with hand-made votes and predictions, published as a new snapshot."""
    data_dir = tmp_path_factory.mktemp("results")
    warehouse = data_dir / "warehouse" / "femo.duckdb"
    warehouse.parent.mkdir(parents=True)
    shutil.copyfile(plain.parent.parent / "warehouse" / "femo.duckdb", warehouse)
    with duckdb.connect(str(warehouse)) as con:
        made = add_results(con)
        serving.publish_snapshot(con, warehouse, data_dir / "serving" / "femo.duckdb")
    return data_dir / "serving" / "femo.duckdb", made


@pytest.fixture(scope="module")
def client(results):
    with TestClient(create_app(results[0])) as c:
        yield c


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _face_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<li class="face"><a href="/faces/(\d+)"', html)]


def _rows(snapshot: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(snapshot), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_gallery_filters_and_paging(client, results):
    snapshot = results[0]
    home = client.get("/")
    assert home.status_code == 200 and "text/html" in home.headers["content-type"]
    total = _rows(snapshot, "SELECT count(*) FROM images")[0][0]
    assert f"{total} images in the warehouse" in _text(home.text) and "synthetic demo data" in home.text
    assert len(_face_ids(home.text)) == 60 and 'loading="lazy"' in home.text
    for form in ('action="/images/sources"', 'action="/images/emotions"', 'id="one-image"'):  # the explore forms stay
        assert form in home.text
    cases = {
        "emotion=3": "emotion_id = 3",
        "source=4&split=test": "source_id = 4 AND split = 'test'",
        "split=none": "split IS NULL",
        "duplicates=label_conflict": "duplicate_label_conflict",
        "duplicates=cross_split&emotion=": "duplicate_cross_split",
        "status=no_face": "id IN (SELECT image_id FROM face_crops WHERE status = 'no_face')",
        "status=not_cropped&source=4": "source_id = 4 AND id NOT IN (SELECT image_id FROM face_crops)",
    }
    for query, where in cases.items():
        expected = [r[0] for r in _rows(snapshot, f"SELECT id FROM images WHERE {where}")]
        page = client.get(f"/?{query}&page_size=200")
        assert page.status_code == 200, (query, page.text)
        assert sorted(_face_ids(page.text)) == sorted(expected), query
        assert f"{len(expected)} faces" in _text(page.text)
    assert _rows(snapshot, "SELECT count(*) FROM images WHERE duplicate_label_conflict")[0][0] > 0
    # paging: links keep the filters, pages neither overlap nor skip
    seen, url = [], "/?source=4&page_size=25"
    while url:
        page = client.get(url.replace("&amp;", "&"))
        seen += _face_ids(page.text)
        found = re.search(r'<a rel="next" href="([^"]+)"', page.text)
        url = found.group(1) if found else None
        assert url is None or "source=4" in url
    assert sorted(seen) == sorted(r[0] for r in _rows(snapshot, "SELECT id FROM images WHERE source_id = 4"))
    quarantined = client.get("/?quarantined=true")
    reasons = [r[0] for r in _rows(snapshot, "SELECT reason FROM quarantined_files")]
    assert reasons and all(reason in html.unescape(quarantined.text) for reason in reasons)


@pytest.mark.parametrize("query,status", [
    ("source=abc", 422), ("emotion=1.5", 422), ("split=validation", 422), ("status=lost", 422),
    ("duplicates=some", 422), ("page=0", 422), ("page_size=201", 422), ("source=99999999999999999999", 422),
    ("page=999", 404), ("source=9", 200),
])
def test_gallery_bad_parameters_are_4xx(client, query, status):
    response = client.get(f"/?{query}")
    assert response.status_code == status, response.text
    if status != 200:  # a page for people: what went wrong and where to go, in HTML
        assert response.headers["content-type"].startswith("text/html")
        assert 'id="error"' in response.text and 'id="next"' in response.text
        key = query.split("=")[0]
        assert key in _text(response.text) or "past the last page" in response.text


def test_page_errors_say_what_to_do_next_and_the_json_api_keeps_json(client, results, tmp_path):
    past = client.get("/?source=4&page=999&page_size=10")
    assert past.status_code == 404 and "page 999 is past the last page" in past.text
    last = re.search(r'<a href="(/\?[^"]*)">the last page</a>', past.text)
    assert last and client.get(html.unescape(last.group(1))).status_code == 200  # the link leads somewhere real
    missing = client.get("/faces/123")
    assert missing.status_code == 404 and "no face with id 123" in missing.text and 'href="/"' in missing.text
    for digits in ("\u0663", "\uff11\uff12"):  # digits of other scripts are not ids, as on the JSON routes
        other = client.get("/", params={"source": digits})
        assert other.status_code == 422 and "source" in other.text
    bad = client.get("/faces/abc")
    assert bad.status_code == 422 and "text/html" in bad.headers["content-type"] and "image_id" in bad.text
    assert client.get("/images/123").json()["detail"] == "no image with id 123"  # the API: JSON as before
    assert client.get("/images/sources?source_id=abc").json()["error"] == "invalid parameters"
    browsed = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert browsed.status_code == 404 and 'id="next"' in browsed.text
    assert client.get("/no/such/page").json()  # a program asking JSON gets JSON
    with TestClient(create_app(tmp_path / "none.duckdb")) as empty:
        for path in ("/", "/faces/1", "/disagreements"):
            page = empty.get(path)
            assert page.status_code == 503 and "femo demo" in page.text and "femo run" in page.text, path
        assert empty.get("/images/").status_code == 503 and empty.get("/images/").json()["detail"]


def test_face_page_shows_votes_predictions_flags_and_units(client, results):
    snapshot, made = results
    image_id = made["expected"]["model"][next(iter(made["expected"]["model"]))][0]
    label, = _rows(snapshot, "SELECT e.emotion FROM images i JOIN emotions e ON e.id = i.emotion_id WHERE i.id = ?",
                   [image_id])[0]
    page = client.get(f"/faces/{image_id}")
    assert page.status_code == 200
    text = _text(page.text)
    assert f'<img id="face" src="/images/{image_id}.png"' in page.text and f"FER-2013 label {label}" in text
    bars = re.findall(r'<tr class="vote( is-label)?"><th>([\w ]+)</th>\s*<td class="bar-cell"><span class="vote-bar" '
                      r'style="width: ([\d.]+)%"></span></td>\s*<td class="num">(\d+)</td>', page.text)
    assert len(bars) == 10 and sum(int(b[3]) for b in bars) == 10
    marked = [b for b in bars if b[0]]
    assert [b[1] for b in marked] == [label.lower()] and marked[0][2:] == ("30.0", "3")  # k % 3 == 0: 3 of 10
    assert "femo CNN (test rows)" in text and "always neutral" in text
    # this face: k % 3 == 0, so 7 of 10 people chose the next emotion: the model names the label, right against
    # FER-2013's label and wrong against the crowd; "always neutral" is wrong against both (unless one is Neutral)
    crowd = _rows(snapshot, "SELECT e.emotion FROM images i JOIN emotions e ON e.id = (i.emotion_id + 1) % 7 "
                            "WHERE i.id = ?", [image_id])[0][0]
    assert f"({crowd}, 7 of 10 votes)" in text
    assert re.search(rf"femo CNN \(test rows\)[^%]*? {label} 88.0 % ✓ right ✗ wrong", text), text
    if "Neutral" not in (label, crowd):
        assert re.search(r"always neutral[^%]*? Neutral 40.0 % ✗ wrong ✗ wrong", text)
    units = [r[0] for r in _rows(snapshot, "SELECT fs.description FROM facs_emotions_units feu JOIN facs_single_units "
                                           "fs ON fs.action_unit = feu.action_units JOIN images i ON i.emotion_id = "
                                           "feu.emotion WHERE i.id = ?", [image_id])]
    assert units and all(u in page.text for u in units)
    conflict = _rows(snapshot, "SELECT id FROM images WHERE duplicate_label_conflict ORDER BY id LIMIT 1")[0][0]
    twins = _rows(snapshot, "SELECT id FROM images WHERE content_hash = (SELECT content_hash FROM images WHERE id = ?) "
                            "AND id <> ?", [conflict, conflict])
    flagged = client.get(f"/faces/{conflict}").text
    assert "conflicting labels" in flagged and all(f'href="/faces/{t[0]}"' in flagged for t in twins)
    assert client.get("/faces/123").status_code == 404
    assert client.get("/faces/abc").status_code == 422
    people_right = made["expected"]["people"][next(iter(made["expected"]["people"]))][0]  # 6 of 10 for the label
    row = re.search(r'femo CNN \(test rows\).*?</tr>', client.get(f"/faces/{people_right}").text, re.S).group(0)
    marks = re.findall(r'<td class="mark (?:label|crowd)-mark">([^<]+)</td>', row)
    assert marks == ["✗ wrong", "✗ wrong"]  # the model said the next emotion: wrong against both


def test_pages_say_clearly_when_there_are_no_predictions_yet(plain):
    with TestClient(create_app(plain)) as c:
        image_id = c.get("/images/", params={"page_size": 1}).json()["images"][0]["id"]
        face = c.get(f"/faces/{image_id}")
        assert face.status_code == 200 and "No predictions yet" in face.text and "No FER+ votes" in face.text
        page = c.get("/disagreements")
        assert page.status_code == 200 and 'id="no-data"' in page.text and "No predictions yet" in page.text


def test_disagreements_per_emotion_with_counts(client, results):
    snapshot, made = results
    page = client.get("/disagreements")
    assert page.status_code == 200 and "femo CNN (test rows)" in page.text  # the declared run by default
    counts = {m[0]: (int(m[1]), int(m[2]), int(m[3])) for m in re.findall(
        r'emotion=\d+">(\w+)</a></td><td class="num">(\d+)</td>\s*<td class="num">(\d+)</td><td class="num">(\d+)</td>',
        page.text)}
    names = dict(_rows(snapshot, "SELECT id, emotion FROM emotions"))
    for kind, position in (("model", 1), ("people", 2)):
        for emotion_id, ids in made["expected"][kind].items():
            assert counts[names[emotion_id]][position] == len(ids), (kind, names[emotion_id])
            assert all(f'href="/faces/{i}"' in page.text for i in ids)
    assert sum(c[1] for c in counts.values()) == sum(len(v) for v in made["expected"]["model"].values())
    assert sum(c[0] for c in counts.values()) == len(made["images"])
    views = {r[0] for r in _rows(snapshot, "SELECT table_name FROM information_schema.tables")}
    if "disagreements" in views:  # the warehouse's own view agrees with the page
        view = _rows(snapshot, "SELECT kind, count(*) FROM disagreements WHERE model_run_id = 'cnn-test' "
                               "GROUP BY 1 ORDER BY 1")
        assert [n for _, n in view] == [sum(c[1] for c in counts.values()), sum(c[2] for c in counts.values())]
    conflicted = {r[0] for r in _rows(snapshot, "SELECT id FROM images WHERE split = 'test' AND "
                                                "(duplicate_cross_split OR duplicate_label_conflict)")}
    leak_free = client.get("/disagreements", params={"leak_free": "true"}).text
    shown = set(map(int, re.findall(r'href="/faces/(\d+)"', leak_free)))
    assert conflicted and not shown & conflicted and shown  # the leak-free view leaves out test files seen in training
    other = client.get("/disagreements", params={"reader_id": "all-neutral-test", "emotion": 6})
    assert other.status_code == 200 and "always neutral" in other.text
    assert client.get("/disagreements", params={"reader_id": "nobody"}).status_code == 404


def test_report_page_renders_the_report_offline(results, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "benchmark.md").write_text(
        "# femo benchmark\n\n| reader | accuracy |\n| --- | --- |\n| cnn | 56.5 % |\n\n"
        "![per-class recall](benchmark_per_class.png)\n\nHumans: [Goodfellow et al. 2013](https://arxiv.org/abs/1307.0414)"
        " ![remote](https://example.org/x.png)\n")
    (reports / "benchmark_per_class.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "secret.png").write_bytes(b"no")
    with TestClient(create_app(results[0], reports_dir=reports)) as c:
        page = c.get("/report")
        assert page.status_code == 200 and "<table>" in page.text and "56.5 %" in page.text
        assert 'src="/report/files/benchmark_per_class.png"' in page.text
        assert "Goodfellow et al. 2013" in page.text and "arxiv.org/abs/1307.0414" in page.text
        assert "https://" not in page.text and "example.org" not in page.text
        assert c.get("/report/files/benchmark_per_class.png").content == b"\x89PNG fake"
        (reports / "linked.png").symlink_to(tmp_path / "secret.png")  # a link there may point anywhere
        for bad in ("../secret.png", "..%2Fsecret.png", "benchmark.md", "nothere.png", "linked.png"):
            assert c.get(f"/report/files/{bad}").status_code == 404
    with TestClient(create_app(results[0], reports_dir=tmp_path / "none")) as c:
        assert "No benchmark report yet" in c.get("/report").text


EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""", re.I)


def test_no_served_page_references_another_host(client, results):
    """Every HTML page (and the CSS it links) names only the app itself: they work without a network."""
    image_id = results[1]["images"][0]
    pages = ["/", "/?quarantined=true", f"/faces/{image_id}", "/disagreements", "/report", "/docs", "/redoc"]
    seen = set()
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert not EXTERNAL.search(response.text), (url, EXTERNAL.search(response.text).group(0))
        for ref in re.findall(r'(?:src|href)="(/[^"]*)"', response.text):
            seen.add(ref.replace("&amp;", "&"))
    assert {"/static/femo/femo.css", "/static/docs/swagger-ui-bundle.js", "/static/docs/swagger-ui.css",
            "/static/docs/redoc.standalone.js"} <= seen
    for ref in sorted(seen):
        linked = client.get(ref)
        assert linked.status_code == 200, ref
        if linked.headers["content-type"].startswith(("text/html", "text/css")):
            assert not EXTERNAL.search(linked.text), ref


def test_etags_304_and_no_duckdb_on_repeat(results, tmp_path):
    snapshot = results[0]
    app = create_app(snapshot)
    calls = []
    real_query = app.state.reader.query
    app.state.reader.query = lambda *a, **k: calls.append(a[0]) or real_query(*a, **k)
    image_id = results[1]["images"][0]
    with TestClient(app) as c:
        for url in ("/images/?page=2&page_size=50", "/", f"/faces/{image_id}", f"/images/{image_id}.png"):
            first = c.get(url)
            etag = first.headers["etag"]
            assert first.status_code == 200 and etag.startswith('"')
            assert first.headers["cache-control"] == ("public, max-age=3600" if url.endswith(".png") else "no-cache")
            before = len(calls)
            again = c.get(url)
            assert again.content == first.content and again.headers["etag"] == etag
            assert len(calls) == before, url  # answered from the cache: DuckDB not asked
            head = c.head(url)
            assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag
            not_modified = c.get(url, headers={"If-None-Match": etag})
            assert not_modified.status_code == 304 and not_modified.content == b""
            assert not_modified.headers["etag"] == etag
            assert c.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
        assert app.state.response_cache.hits >= 8 and app.state.response_cache.not_modified >= 4
        # errors are neither cached nor tagged
        missing = c.get("/images/1")
        assert missing.status_code == 404 and "etag" not in missing.headers
        # a new snapshot: new ETag, the old one no longer matches
        old = c.get("/").headers["etag"]
        warehouse = snapshot.parent.parent / "warehouse" / "femo.duckdb"
        with duckdb.connect(str(warehouse)) as con:
            serving.publish_snapshot(con, warehouse, snapshot)
        fresh = c.get("/", headers={"If-None-Match": old})
        assert fresh.status_code == 200 and fresh.headers["etag"] != old


# ------------------------------------------------------------------ a real browser, offline


@pytest.fixture(scope="module")
def live_server(results):
    with serve_in_thread(results[0]) as url:
        yield url


def _offline_chromium():
    """Headless Debian chromium with every host but loopback unreachable (dead proxy, no DNS); None without it."""
    return chromium("--window-size=1280,1000", "--proxy-server=http://127.0.0.1:9",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")


@pytest.mark.slow
def test_a_person_can_see_the_answer_in_a_browser_offline(live_server, results):
    """Gallery -> filter -> one face with vote bars and predictions -> disagreements -> /docs, with no network
    beyond the app; screenshots under data/screenshots/ for a person to look at."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser = _offline_chromium()
    if browser is None:
        pytest.skip("chromium or chromedriver not installed (.ci/run installs Debian's packages)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 30)
    try:
        with pytest.raises(WebDriverException, match="ERR_"):  # the network really is unreachable from it
            browser.get("https://example.org/")

        browser.get(live_server + "/")
        assert "Gallery" in browser.title
        form = browser.find_element(By.ID, "gallery-filters")
        Select(form.find_element(By.NAME, "source")).select_by_visible_text("FER-2013")
        Select(form.find_element(By.NAME, "split")).select_by_value("test")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda b: "split=test" in b.current_url)
        thumbs = browser.find_elements(By.CSS_SELECTOR, "#face-grid li.face img")
        assert thumbs and all("FER-2013 · test" in li.text for li in browser.find_elements(By.CSS_SELECTOR, "#face-grid li.face"))
        wait.until(lambda b: b.execute_script(
            "return [...document.querySelectorAll('#face-grid img')].slice(0, 8).every(i => i.complete && i.naturalWidth > 0)"))
        browser.save_screenshot(str(SCREENSHOTS / "1-gallery-filtered.png"))

        target = results[1]["expected"]["model"][next(iter(results[1]["expected"]["model"]))][0]
        link = browser.find_element(By.CSS_SELECTOR, f'#face-grid a[href="/faces/{target}"]')
        browser.execute_script("arguments[0].scrollIntoView()", link)
        link.click()
        wait.until(lambda b: f"/faces/{target}" in b.current_url)
        wait.until(lambda b: b.execute_script("const i = document.getElementById('face'); return i.complete && i.naturalWidth > 0"))
        bars = browser.find_elements(By.CSS_SELECTOR, "#votes .vote-bar")
        assert len(bars) == 10 and max(b.size["width"] for b in bars) > 50  # drawn, not just present
        predictions = browser.find_elements(By.CSS_SELECTOR, "#predictions tr.prediction")
        assert len(predictions) == 2 and "88.0 %" in browser.find_element(By.ID, "predictions").text
        assert browser.find_element(By.ID, "face").size["width"] >= 200  # readable, not a thumbnail
        browser.save_screenshot(str(SCREENSHOTS / "2-face.png"))

        browser.find_element(By.LINK_TEXT, "Where AI and people disagree").click()
        wait.until(lambda b: "/disagreements" in b.current_url)
        table = browser.find_element(By.ID, "disagreement-counts")
        assert "model right, most people wrong" in table.text and len(table.find_elements(By.TAG_NAME, "tr")) == 9
        browser.save_screenshot(str(SCREENSHOTS / "3-disagreements.png"))

        browser.get(live_server + "/docs")
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))
        assert "femo API" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock"))
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and all(u.startswith(live_server) for u in loaded), loaded
        browser.save_screenshot(str(SCREENSHOTS / "4-docs-offline.png"))
    finally:
        browser.quit()


def test_the_answer_heads_every_page_and_benchmark_and_says_synthetic_demo(results, tmp_path):
    """The report's headline (reports/benchmark.json) is the banner of every page and /benchmark's `answer`;
    a demo report's always says SYNTHETIC DEMO. No report yet: no answer, and the demo data still says so."""
    snapshot, made = results
    image_id = made["images"][0]
    sentence = "On the 140 leak-free test images, femo CNN is WORSE than one human annotator: -46.3 points."
    (tmp_path / "benchmark.json").write_text(json.dumps({"headline": sentence, "synthetic": True}))
    with TestClient(create_app(snapshot, reports_dir=tmp_path)) as c:
        for path in ("/", f"/faces/{image_id}", "/disagreements", "/report", "/faces/123"):
            banner = re.search(r'<p class="banner answer synthetic" id="answer">(.*?)</p>', c.get(path).text, re.S)
            assert banner and f"SYNTHETIC DEMO (drawn faces, made-up votes): {sentence}" in _text(banner.group(1)), path
        body = c.get("/benchmark").json()
        assert body["answer"] == f"SYNTHETIC DEMO (drawn faces, made-up votes): {sentence}" and body["synthetic"]
    with TestClient(create_app(snapshot, reports_dir=tmp_path / "none")) as c:
        page = c.get("/").text
        assert 'id="answer"' not in page and "SYNTHETIC DEMO data" in page
        assert c.get("/benchmark").json()["answer"] is None
