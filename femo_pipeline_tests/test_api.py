"""The HTTP API over a warehouse built in tmp: every route, paging edges, errors, images, and fuzzing."""

from __future__ import annotations

import contextlib
import shutil
import threading

import cv2
import duckdb
import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from femo_pipeline import serving
from femo_pipeline.api import MAX_PAGE_SIZE, create_app
from femo_pipeline_tests.conftest import FOLDER_ASSETS, materialize

N_FER = 7 * 12 + 2
N_KAGGLE = 8 * 5
N_POSED = N_WEB = 7 * 4  # the demo's extra sets: posed-lab in square grey frames, web-crops colour and not square
N_ALL = N_FER + N_KAGGLE + N_POSED + N_WEB


@pytest.fixture(scope="module")
def built(demo_run):
    data_dir, result = demo_run  # the session's demo run (conftest.py); tests that change a warehouse copy it
    assert result.success
    warehouse_path = data_dir / "warehouse" / "femo.duckdb"
    with duckdb.connect(str(warehouse_path)) as con:  # publish once more by hand: the link must switch cleanly
        serving.publish_snapshot(con, warehouse_path, data_dir / "serving" / "femo.duckdb")
    assert (data_dir / "serving" / "femo.duckdb").is_symlink()
    return data_dir


@pytest.fixture(scope="module")
def client(built):
    with TestClient(create_app(built / "serving" / "femo.duckdb")) as c:
        yield c


def test_sources_and_emotions(client):
    sources = client.get("/sources").json()
    assert [s["id"] for s in sources] == [1, 2, 3, 4, 5] and sources[3]["source"] == "FER-2013"
    assert client.get("/emotions").json()[7] == {"id": 7, "emotion": "Contempt"}


def test_paging_arithmetic_at_the_edges(client):
    total = N_ALL
    first = client.get("/images/", params={"page_size": 50}).json()
    assert first["total"] == total and len(first["images"]) == 50
    assert first["previous_page"] is None
    assert first["next_page"] == "/images/?page=2&page_size=50"
    last_page = -(-total // 50)
    assert first["last_page"] == f"/images/?page={last_page}&page_size=50"
    last = client.get("/images/", params={"page": last_page, "page_size": 50}).json()
    assert len(last["images"]) == total - 50 * (last_page - 1) and last["next_page"] is None
    assert last["previous_page"] == f"/images/?page={last_page - 1}&page_size=50"
    # exact multiple: no empty trailing page (Contempt: Kaggle's 5 and the posed set's 4)
    exact = client.get("/images/emotions", params={"emotion": 7, "page_size": 9}).json()
    assert exact["total"] == 9 and exact["next_page"] is None and exact["last_page"].endswith("page=1&page_size=9")
    past = client.get("/images/", params={"page": last_page + 1, "page_size": 50})
    assert past.status_code == 404 and "past the last page" in past.json()["detail"]
    ids = [i["id"] for p in range(1, last_page + 1)
           for i in client.get("/images/", params={"page": p, "page_size": 50}).json()["images"]]
    assert len(ids) == len(set(ids)) == total  # pages neither overlap nor skip


@pytest.mark.parametrize(
    "route,params,expected",
    [
        ("/images/", {"page": 0}, 422),
        ("/images/", {"page": -3}, 422),
        ("/images/", {"page": "two"}, 422),
        ("/images/", {"page_size": MAX_PAGE_SIZE + 1}, 422),
        ("/images/", {"page_size": 10**12}, 422),
        ("/images/sources", {}, 422),
        ("/images/sources", {"source_id": 9}, 404),
        ("/images/emotions", {"emotion": 8}, 404),
        ("/images/emotions", {"emotion": "happy"}, 422),
        ("/images/aspect_ratio", {"aspect_ratio": 3}, 422),
        ("/images/colors", {"colors": 2}, 422),
        ("/images/emotions/faces", {"face": 42}, 404),
        ("/images/123456789", {}, 404),
        ("/images/123456789.png", {}, 404),
        ("/images/abc", {}, 422),
    ],
)
def test_bad_parameters_get_4xx_with_message(client, route, params, expected):
    response = client.get(route, params=params)
    assert response.status_code == expected, response.text
    body = response.json()
    assert body.get("detail"), body


def test_filters(client):
    fer = client.get("/images/sources", params={"source_id": 4, "page_size": 200}).json()
    assert fer["total"] == N_FER and {i["source"] for i in fer["images"]} == {"FER-2013"}
    assert fer["last_page"] == "/images/sources?source_id=4&page=1&page_size=200"
    assert client.get("/images/sources", params={"source_id": 1}).json()["total"] == 0
    happy = client.get("/images/emotions", params={"emotion": 3}).json()
    assert {i["emotion"] for i in happy["images"]} == {"Happiness"} and happy["total"] == 12 + 1 + 5 + 4 + 4
    square = client.get("/images/aspect_ratio", params={"aspect_ratio": 1}).json()["total"]
    assert square == N_FER + N_KAGGLE + N_POSED
    assert sum(client.get("/images/aspect_ratio", params={"aspect_ratio": r}).json()["total"] for r in (0, 2)) == N_WEB
    colour = client.get("/images/colors", params={"colors": 1}).json()
    grey = client.get("/images/colors", params={"colors": 0}).json()
    # one tinted Kaggle face per class, and the web crops
    assert colour["total"] == 8 + N_WEB and {i["color_space"] for i in colour["images"]} == {"RGB"}
    assert colour["total"] + grey["total"] == N_ALL


def test_one_image_and_its_png(client, built):
    listed = client.get("/images/sources", params={"source_id": 4, "page_size": 1}).json()["images"][0]
    one = client.get(f"/images/{listed['id']}").json()
    assert one == listed and "pixels" not in one
    png = client.get(one["png_url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    decoded = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_UNCHANGED)
    with duckdb.connect(str(built / "serving" / "femo.duckdb"), read_only=True) as con:
        stored = con.execute("SELECT pixels FROM image_pixels WHERE image_id = ?", [one["id"]]).fetchone()[0]
    original = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (48, 48) and np.array_equal(decoded, original)


def test_action_units_of_an_emotion(client):
    anger = client.get("/images/emotions/faces", params={"face": 0}).json()
    assert anger["emotion"] == "Anger"
    assert [u["action_unit"] for u in anger["action_units"]] == [4, 5, 7, 23]
    assert anger["action_units"][0] == {  # from the FACS fixture page the demo profile parses
        "action_unit": 4, "description": "Brow Lowerer",
        "facial_muscle": "Depressor Glabellae, Depressor Supercilli, Currugator",
        "example": "https://imotions.com/femo-fixture/gifs/AU04.gif"}
    assert client.get("/images/emotions/faces", params={"face": 6}).json()["action_units"] == []


def test_home_page_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for form in ('action="/images/sources"', 'action="/images/emotions"', 'action="/images/aspect_ratio"',
                 'action="/images/colors"', 'action="/images/emotions/faces"'):
        assert form in page.text
    assert "synthetic demo data" in page.text
    spec = client.get("/openapi.json").json()
    assert {"/images/", "/images/{image_id}", "/images/{image_id}.png", "/images/sources", "/images/emotions",
            "/images/aspect_ratio", "/images/colors", "/images/emotions/faces", "/sources", "/emotions"} <= set(spec["paths"])


def test_missing_snapshot_is_a_clear_503(tmp_path):
    with TestClient(create_app(tmp_path / "none.duckdb")) as c:
        response = c.get("/sources")
    assert response.status_code == 503 and "serving_snapshot" in response.json()["detail"]


def test_api_keeps_answering_while_the_pipeline_rebuilds(built, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(built, data_dir, ignore=shutil.ignore_patterns("dagster_home"))
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb")) as con:  # the old snapshot keeps these rows
        con.execute("DELETE FROM facs_emotions_units")
    app = create_app(data_dir / "serving" / "femo.duckdb")
    statuses: list[int] = []
    stop = threading.Event()

    def hammer():
        with TestClient(app) as c:
            while not stop.is_set():
                statuses.append(c.get("/images/", params={"page_size": 5}).status_code)
                statuses.append(c.get("/sources").status_code)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for _ in range(2):
            # a new folder is a new Dagster instance: the staged inputs are materialized again, never reused
            result = materialize(data_dir, selection=[*FOLDER_ASSETS, "image_catalog",
                                                      "everyday_emotions_survey", "images", "survey_responses",
                                                      "study_query_results", "erd", "serving_snapshot"])
            assert result.success
    finally:
        stop.set()
        thread.join(timeout=30)
    assert len(statuses) > 20 and set(statuses) == {200}
    # the rebuilt snapshot lacks the FACS links deleted above (facs assets not re-run): the API serves the new file
    with TestClient(app) as c:
        assert c.get("/images/emotions/faces", params={"face": 0}).json()["action_units"] == []


def _integer_parameters(spec: dict) -> set[str]:
    """Names of the parameters whose schema is an integer (directly or through a $ref)."""
    names = set()
    for ops in spec["paths"].values():
        for op in ops.values():
            for param in op.get("parameters", []):
                schema = param["schema"]
                if "$ref" in schema:
                    schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                if schema.get("type") == "integer":
                    names.add(param["name"])
    return names


CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]


def _huge_integers():
    return st.sampled_from(HUGE + [2**64, -(2**127), 2**63 - 1, -(2**63)]) | st.integers(min_value=2**63) \
        | st.integers(max_value=-(2**63) - 1)


def test_fuzzed_requests_never_get_a_server_error(built):
    """schemathesis generates requests from the OpenAPI spec, valid and invalid; none may answer 5xx, every answer
    must conform to the document (status code, content type, body schema), and no answer may name an internal path
    or SQL. A second pass puts huge integers (past 64 and 128 bits) into every integer parameter, where the
    schema's own bounds would keep schemathesis."""
    app = create_app(built / "serving" / "femo.duckdb")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    integers = _integer_parameters(app.openapi())
    assert {"image_id", "source_id", "emotion", "face", "page", "page_size"} <= integers
    failures, calls, huge_calls = [], 0, 0
    for result in schema.get_all_operations():
        operation = result.ok()

        def call(case):
            response = case.call()
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}")
            try:
                case.validate_response(response, checks=CONFORMANCE)
            except BaseException as exc:  # noqa: BLE001 - schemathesis raises a group; listed with the request
                failures.append(f"{case.method} {case.formatted_path} {case.query}: {str(exc).splitlines()[0]}")
            for word in INTERNAL + (str(built),):
                if word in response.text and case.formatted_path not in ("/docs", "/openapi.json"):
                    failures.append(f"{case.method} {case.formatted_path} {case.query}: body names {word!r}")

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            nonlocal calls
            calls += 1
            call(case)

        @given(case=operation.as_strategy(), number=_huge_integers(), data=st.data())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check_huge(case, number, data):
            nonlocal huge_calls
            targets = [(case.path_parameters, k) for k in (case.path_parameters or {}) if k in integers]
            targets += [(case.query, k) for k in (case.query or {}) if k in integers]
            if not targets:
                return
            for container, key in targets:
                if data.draw(st.booleans(), label=key) or len(targets) == 1:
                    container[key] = number
            huge_calls += 1
            call(case)

        check()
        check_huge()
    assert calls >= 100 and huge_calls >= 50
    assert failures == []


def chromium(*extra_flags: str):
    """Debian's chromium + chromedriver through selenium; None when either is missing (the test then skips)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", *extra_flags):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


@contextlib.contextmanager
def serve_in_thread(snapshot):
    """uvicorn serving the app over `snapshot` on a free loopback port, in a thread; yields the base URL."""
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(snapshot), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        threading.Event().wait(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_server(built):
    with serve_in_thread(built / "serving" / "femo.duckdb") as url:
        yield url


@pytest.mark.slow
def test_home_page_forms_work_in_a_real_browser(live_server):
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser = chromium()
    if browser is None:
        pytest.skip("chromium or chromedriver not installed (.ci/run installs Debian's packages)")
    try:
        browser.get(live_server + "/")
        assert "femo" in browser.title
        form = browser.find_element(By.ID, "by-emotion")
        Select(form.find_element(By.NAME, "emotion")).select_by_value("5")
        size = form.find_element(By.NAME, "page_size")
        size.clear()
        size.send_keys("3")
        form.find_element(By.TAG_NAME, "button").click()
        WebDriverWait(browser, 20).until(lambda b: "/images/emotions" in b.current_url)
        assert browser.current_url == live_server + "/images/emotions?emotion=5&page_size=3"
        body = json.loads(browser.find_element(By.TAG_NAME, "body").text)
        assert len(body["images"]) == 3 and {i["emotion"] for i in body["images"]} == {"Surprise"}

        browser.get(live_server + "/")
        form = browser.find_element(By.ID, "one-image")
        form.find_element(By.NAME, "image_id").send_keys(str(body["images"][0]["id"]))
        form.find_element(By.TAG_NAME, "button").click()
        WebDriverWait(browser, 20).until(lambda b: b.current_url != live_server + "/")
        assert browser.current_url == f"{live_server}/images/{body['images'][0]['id']}"
        assert json.loads(browser.find_element(By.TAG_NAME, "body").text)["emotion"] == "Surprise"
    finally:
        browser.quit()


# --- hardening: huge integers, no internal paths, HEAD, one open snapshot, bounded PNG work ---

HUGE = [2**127, 2**63, -(2**63) - 1, 10**40]
INTERNAL = ("/tmp", "/work", "/home", ".duckdb", "SELECT", "FROM ", "femo_pipeline", "Traceback")


def _no_internals(text: str, *extra: str) -> None:
    for word in INTERNAL + extra:
        assert word not in text, (word, text)


@pytest.mark.parametrize("number", HUGE)
@pytest.mark.parametrize("route,params", [
    ("/images/{n}", {}), ("/images/{n}.png", {}), ("/images/sources", {"source_id": "{n}"}),
    ("/images/emotions", {"emotion": "{n}"}), ("/images/emotions/faces", {"face": "{n}"}),
    ("/images/", {"page": "{n}"}), ("/images/sources", {"source_id": 4, "page": "{n}"}),
    ("/images/aspect_ratio", {"aspect_ratio": "{n}"}), ("/images/colors", {"colors": "{n}"}),
])
def test_huge_integers_get_4xx_with_message(client, built, route, params, number):
    response = client.get(route.format(n=number), params={k: str(v).format(n=number) for k, v in params.items()})
    assert response.status_code in (404, 422), response.text
    assert response.json().get("detail")
    _no_internals(response.text, str(built))


def test_ids_at_the_edges_of_64_bits_are_plain_404(client):
    for n in (2**63 - 1, -(2**63)):
        assert client.get(f"/images/{n}").status_code == 404
        assert client.get(f"/images/{n}.png").status_code == 404


def test_error_bodies_name_no_internal_path_or_sql(client, built, tmp_path):
    bad = [("GET", "/images/", {"page": 0}), ("GET", "/images/", {"page": 10**6}), ("GET", "/images/abc", {}),
           ("GET", "/images/99999999.png", {}), ("GET", "/images/sources", {"source_id": 9}),
           ("GET", "/nowhere", {}), ("POST", "/images/", {}), ("GET", "/images/colors", {"colors": "x"})]
    for method, route, params in bad:
        response = client.request(method, route, params=params)
        assert 400 <= response.status_code < 500, (route, response.status_code)
        _no_internals(response.text, str(built))
    missing = tmp_path / "secret-place" / "none.duckdb"
    with TestClient(create_app(missing)) as c:
        for route in ("/sources", "/", "/images/", "/images/1.png", "/images/1"):
            response = c.get(route)
            detail = response.text if route == "/" else response.json()["detail"]  # "/" is a page: HTML
            assert response.status_code == 503 and "serving_snapshot" in detail
            _no_internals(response.text, str(tmp_path), "secret-place")


def _get_routes(client) -> list[str]:
    image_id = client.get("/images/", params={"page_size": 1}).json()["images"][0]["id"]
    return ["/", "/docs", "/openapi.json", "/sources", "/emotions", "/images/", "/images/?page=2&page_size=5",
            "/images/sources?source_id=4", "/images/emotions?emotion=3", "/images/aspect_ratio?aspect_ratio=1",
            "/images/colors?colors=0", "/images/emotions/faces?face=0", f"/images/{image_id}",
            f"/images/{image_id}.png", "/images/999999999", "/images/?page=0",
            # the pages for people
            "/redoc", f"/faces/{image_id}", "/faces/999999999", "/disagreements", "/report",
            "/?emotion=3&split=test&page_size=5", "/?quarantined=true", "/static/femo/femo.css",
            # the results router (api_results.py): 404 alike for GET and HEAD until it is included
            "/benchmark", f"/images/{image_id}/predictions"]


def test_head_works_on_every_get_route(client):
    routes = _get_routes(client)
    spec_paths = {p for p, ops in client.get("/openapi.json").json()["paths"].items() if "get" in ops}
    covered = {r.split("?")[0] for r in routes}
    image_id = routes[12].rsplit("/", 1)[1]
    assert {p.replace("{image_id}", image_id) for p in spec_paths} <= covered
    for route in routes:
        get, head = client.get(route), client.head(route)
        assert head.status_code == get.status_code, route
        assert head.content == b"", route
        assert head.headers.get("content-type") == get.headers.get("content-type"), route
        assert head.headers.get("content-length") == get.headers.get("content-length"), route


def _open_snapshot_files(under) -> list[str]:
    import os

    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(under)) and "snapshots" in target and not target.endswith(".wal"):
            found.append(target)
    return found


def _private_warehouse(built, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(built, data_dir, ignore=shutil.ignore_patterns("dagster_home", "snapshots", "femo.duckdb"),
                    dirs_exist_ok=True)
    (data_dir / "warehouse").mkdir(exist_ok=True)
    shutil.copyfile(built / "warehouse" / "femo.duckdb", data_dir / "warehouse" / "femo.duckdb")
    warehouse = data_dir / "warehouse" / "femo.duckdb"
    target = data_dir / "serving" / "femo.duckdb"
    target.parent.mkdir(exist_ok=True)
    return warehouse, target


def test_republishing_leaves_one_open_snapshot_connection(built, tmp_path):
    from femo_pipeline.api import SnapshotReader

    warehouse, target = _private_warehouse(built, tmp_path)
    with duckdb.connect(str(warehouse)) as con:
        serving.publish_snapshot(con, warehouse, target)
        reader = SnapshotReader(target)
        held = []
        for _ in range(6):
            with reader.connection() as cur:
                assert cur.execute("SELECT count(*) FROM images").fetchone()[0] > 0
                held.append(reader._snapshot.con)  # a stray reference (a traceback, a debugger) must not keep it open
            serving.publish_snapshot(con, warehouse, target)
        # a request in flight on the old snapshot keeps a working connection while a new one is published
        with reader.connection() as in_flight:
            serving.publish_snapshot(con, warehouse, target)
            assert reader.query("SELECT count(*) AS n FROM emotions")[0]["n"] == 8  # opens the newest
            assert in_flight.execute("SELECT count(*) FROM emotions").fetchone()[0] == 8  # old one still works
            assert reader.open_connections() == 2
        assert reader.open_connections() == 1
        assert reader.query("SELECT count(*) AS n FROM emotions")[0]["n"] == 8
    for old in held:
        with pytest.raises(duckdb.ConnectionException):
            old.execute("SELECT 1")
    assert len(_open_snapshot_files(tmp_path)) == 1, _open_snapshot_files(tmp_path)
    reader.close()
    assert _open_snapshot_files(tmp_path) == []


def test_png_is_capped_and_cached(built, tmp_path, monkeypatch):
    import femo_pipeline.api.png as api_png  # the module that encodes PNGs (its cv2 is OpenCV itself)

    warehouse, target = _private_warehouse(built, tmp_path)
    big = np.random.default_rng(0).integers(0, 255, (1500, 3000, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", big)[1].tobytes()
    png_bytes = cv2.imencode(".png", big[:, :1200])[1].tobytes()
    with duckdb.connect(str(warehouse)) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM images ORDER BY id LIMIT 2").fetchall()]
        con.execute("UPDATE image_pixels SET pixels = ? WHERE image_id = ?", [jpeg, ids[0]])
        con.execute("UPDATE image_pixels SET pixels = ? WHERE image_id = ?", [png_bytes, ids[1]])
        con.execute("UPDATE images SET image_format = 'JPEG', width = 3000, height = 1500 WHERE id = ?", [ids[0]])
        con.execute("UPDATE images SET image_format = 'PNG', width = 1200, height = 1500 WHERE id = ?", [ids[1]])
        serving.publish_snapshot(con, warehouse, target)
    encodes = []
    real_encode = cv2.imencode
    monkeypatch.setattr(api_png.cv2, "imencode", lambda *a, **k: encodes.append(1) or real_encode(*a, **k))
    with TestClient(create_app(target)) as c:
        for _ in range(3):
            response = c.get(f"/images/{ids[0]}.png")
            assert response.status_code == 200
            shown = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
            assert shown.shape[:2] == (512, 1024)
        assert len(encodes) == 1  # encoded once, then served from the cache
        tall = cv2.imdecode(np.frombuffer(c.get(f"/images/{ids[1]}.png").content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert tall.shape[:2] == (1024, 819)  # a PNG over the cap is shrunk too
    with TestClient(create_app(target, max_png_side=4000)) as c:
        full = cv2.imdecode(np.frombuffer(c.get(f"/images/{ids[0]}.png").content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert full.shape[:2] == (1500, 3000)
