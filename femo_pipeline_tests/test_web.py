"""Web clients against local servers started by the tests (no network): retries, paging, bad answers, secrets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pytest

from femo_pipeline import web_sources
from femo_pipeline.definitions import web_resources
from femo_pipeline.webclient import PoliteClient, WebError, redact, retry_after_seconds
from femo_pipeline_tests.conftest import materialize
from femo_pipeline_tests.fake_web import Answer, FakeWeb

KEY = "sekret-KEY-4242"


def client(**kw) -> tuple[PoliteClient, list[float]]:
    slept: list[float] = []
    defaults = dict(timeout=2, max_retries=3, backoff=0.01, min_interval=0, sleep=slept.append, secrets=(KEY,))
    return PoliteClient(**{**defaults, **kw}), slept


def png(seed: int = 0, size: int = 64) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


@pytest.fixture
def web():
    with FakeWeb() as fake:
        yield fake


def test_success_sends_user_agent(web):
    web.routes["/ok"] = [Answer(200, b"hello")]
    c, slept = client()
    assert c.get(web.url + "/ok").text == "hello"
    assert web.requests[0].headers["User-Agent"].startswith("femo-pipeline/")
    assert slept == []


def test_429_honours_retry_after_then_succeeds(web):
    web.routes["/busy"] = [Answer(429, b"slow down", {"Retry-After": "7"}), Answer(200, b"done")]
    c, slept = client()
    assert c.get(web.url + "/busy").text == "done"
    assert slept == [7.0] and len(web.hits("/busy")) == 2


def test_500_then_success_backs_off(web):
    web.routes["/flaky"] = [Answer(500), Answer(503), Answer(200, b"fine")]
    c, slept = client()
    assert c.get(web.url + "/flaky").text == "fine"
    assert len(slept) == 2 and slept[1] > slept[0] > 0  # exponential


def test_403_fails_at_once_with_status(web):
    web.routes["/deny"] = [Answer(403, b"[ERROR 403] bad key")]
    c, slept = client()
    with pytest.raises(WebError) as err:
        c.get(web.url + "/deny", params={"key": KEY})
    assert err.value.status == 403 and "HTTP 403" in str(err.value)
    assert KEY not in str(err.value) and "***" in str(err.value)
    assert len(web.hits("/deny")) == 1 and slept == []


def test_timeout_retries_then_gives_up(web):
    web.routes["/slow"] = [Answer(200, b"late", delay=1.0)]
    c, _ = client(timeout=0.2, max_retries=1)
    with pytest.raises(WebError, match="timed out after 0.2 s"):
        c.get(web.url + "/slow")
    assert len(web.hits("/slow")) == 2


def test_retry_waits_are_capped_and_pacing_sleeps(web):
    web.routes["/busy"] = [Answer(429, headers={"Retry-After": "3600"}), Answer(200, b"ok")]
    c, slept = client(max_wait=5)
    c.get(web.url + "/busy")
    assert slept == [5]
    paced, slept = client(min_interval=30)
    web.routes["/ok"] = [Answer(200, b"x")]
    paced.get(web.url + "/ok")
    paced.get(web.url + "/ok")
    assert len(slept) == 1 and 29 < slept[0] <= 30


def test_retry_after_formats_and_redaction():
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 10) == pytest.approx(10)
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert retry_after_seconds("\u00b2") is None and retry_after_seconds("-5") is None  # isdigit() is true for '²'
    assert redact(f"url?key={KEY}&q=x", [KEY, ""]) == "url?key=***&q=x"


def _pixabay_page(ids, total):
    return json.dumps({"total": total, "totalHits": total, "hits": [
        {"id": i, "pageURL": f"https://pixabay.example/p/{i}", "largeImageURL": f"https://cdn.example/{i}.jpg",
         "webformatURL": f"https://cdn.example/{i}_640.jpg", "imageWidth": 640, "imageHeight": 480, "tags": "face",
         "user": "Some Person", "user_id": 99, "userImageURL": "https://cdn.example/avatar.png"} for i in ids]}).encode()


def test_pixabay_pagination_and_no_personal_data(web):
    web.routes["/api/"] = [Answer(200, _pixabay_page(range(0, 5), 12)), Answer(200, _pixabay_page(range(5, 10), 12)),
                           Answer(200, _pixabay_page(range(10, 12), 12))]
    c, _ = client()
    hits = web_sources.pixabay_search(c, KEY, "happy face", 3, count=20, per_page=5, base_url=web.url + "/api/")
    assert [h["remote_id"] for h in hits] == [str(i) for i in range(12)]
    assert [r.query["page"] for r in web.requests] == ["1", "2", "3"]
    first = web.requests[0].query
    assert first["key"] == KEY and first["q"] == "happy face" and first["image_type"] == "photo"
    assert first["category"] == "people" and first["safesearch"] == "true" and first["per_page"] == "5"
    assert set(hits[0]) == set(web_sources.HIT_COLUMNS)
    assert "Some Person" not in json.dumps(hits) and "avatar" not in json.dumps(hits)


def test_pixabay_stops_at_count_and_at_out_of_range(web):
    web.routes["/api/"] = [Answer(200, _pixabay_page(range(0, 5), 500))]
    c, _ = client()
    assert len(web_sources.pixabay_search(c, KEY, "q", 0, count=7, per_page=5, base_url=web.url + "/api/")) == 7
    web.requests.clear()
    web.routes["/api/"] = [Answer(200, _pixabay_page(range(0, 5), 500)),
                           Answer(400, b'[ERROR 400] "page" is out of valid range.')]
    assert len(web_sources.pixabay_search(c, KEY, "q", 0, count=50, per_page=5, base_url=web.url + "/api/")) == 5


@pytest.mark.parametrize("kwargs,message", [({"per_page": 2}, "per_page"), ({"per_page": 500}, "per_page"),
                                            ({"count": 0}, "count"), ({"query": ""}, "query")])
def test_pixabay_bad_parameters_are_refused_before_any_request(web, kwargs, message):
    c, _ = client()
    args = {"query": "q", "count": 5, "per_page": 20, **kwargs}
    with pytest.raises(web_sources.SearchError, match=message):
        web_sources.pixabay_search(c, KEY, args["query"], 0, args["count"], per_page=args["per_page"], base_url=web.url)
    assert web.requests == []


def test_malformed_json_and_wrong_content_type(web):
    web.routes["/api/"] = [Answer(200, b"{not json", {"Content-Type": "application/json"})]
    c, _ = client()
    with pytest.raises(web_sources.SearchError, match="not JSON"):
        web_sources.pixabay_search(c, KEY, "q", 0, 5, base_url=web.url + "/api/")
    web.routes["/api/"] = [Answer(200, b"<html>captcha</html>", {"Content-Type": "text/html"})]
    with pytest.raises(web_sources.SearchError, match="text/html"):
        web_sources.pixabay_search(c, KEY, "q", 0, 5, base_url=web.url + "/api/")


def test_duckduckgo_headers_and_data(web):
    body = {"status": True, "message": "ok", "data": [{"image": f"https://img.example/{i}.jpg", "title": "t",
                                                        "url": "https://page.example", "height": 10, "width": 20}
                                                       for i in range(4)] + [{"title": "no image"}]}
    web.routes["/search/images"] = [Answer(200, json.dumps(body).encode())]
    c, _ = client()
    hits = web_sources.ddg_search(c, KEY, "sad face", 4, count=3, base_url=web.url + "/search/images", host="h.example")
    assert [h["image_url"] for h in hits] == [f"https://img.example/{i}.jpg" for i in range(3)]
    request = web.requests[0]
    # the page and title can name a person: only the page's site is kept, and no title
    body["data"][0].update(url="https://www.instagram.com/jane.doe.1987/p/Cx1/?igsh=1",
                           title="Jane Doe (@jane.doe.1987) on Instagram")
    web.routes["/search/images"] = [Answer(200, json.dumps(body).encode())]
    first = web_sources.ddg_search(c, KEY, "sad face", 4, count=1, base_url=web.url + "/search/images")[0]
    assert first["page_url"] == "https://www.instagram.com/" and first["tags"] is None
    assert "jane" not in json.dumps(first).lower()
    assert request.headers["X-RapidAPI-Key"] == KEY and request.headers["X-RapidAPI-Host"] == "h.example"
    assert request.query == {"term": "sad face", "region": "us-en", "safeSearch": "strict"}
    web.routes["/search/images"] = [Answer(200, json.dumps({"status": False, "message": "quota"}).encode())]
    with pytest.raises(web_sources.SearchError, match="quota"):
        web_sources.ddg_search(c, KEY, "x", 0, 3, base_url=web.url + "/search/images")


def test_downloads_detect_type_resume_and_reject_bad_bytes(web, tmp_path):
    image = png(1)
    web.routes["/a.jpg"] = [Answer(200, image, {"Content-Type": "image/jpeg"})]  # really a PNG
    web.routes["/page.jpg"] = [Answer(200, b"<html>not here</html>", {"Content-Type": "text/html"})]
    web.routes["/cut.png"] = [Answer(200, image[:100], {"Content-Type": "image/png"}, content_length=len(image))]
    web.routes["/half.png"] = [Answer(200, image[: len(image) // 2], {"Content-Type": "image/png"})]
    web.routes["/gone.jpg"] = [Answer(404, b"no")]
    c, _ = client(max_retries=0)
    ok = web_sources.download_image(c, web.url + "/a.jpg", tmp_path, "a")
    assert ok.status == "ok" and ok.path.endswith("a.png") and Path(ok.path).read_bytes() == image
    again = web_sources.download_image(c, web.url + "/a.jpg", tmp_path, "a")
    assert again.status == "skipped" and len(web.hits("/a.jpg")) == 1 and again.content_hash == ok.content_hash
    html = web_sources.download_image(c, web.url + "/page.jpg", tmp_path, "p")
    assert html.status == "failed" and "not an image" in html.reason and "text/html" in html.reason
    cut = web_sources.download_image(c, web.url + "/cut.png", tmp_path, "c")
    assert cut.status == "failed" and ("truncated" in cut.reason or "broke off" in cut.reason)
    half = web_sources.download_image(c, web.url + "/half.png", tmp_path, "h")
    assert half.status == "failed" and "truncated PNG" in half.reason
    gone = web_sources.download_image(c, web.url + "/gone.jpg", tmp_path, "g")
    assert gone.status == "failed" and "HTTP 404" in gone.reason
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def _serve_pixabay(web: FakeWeb) -> None:
    def answer(request):
        if request.path == "/api/":
            if request.query.get("q") == "scared face":
                return Answer(500, f"boom for {request.path}?key={request.query.get('key')}".encode())
            e = {"angry face": 0, "happy face": 3}.get(request.query.get("q"), 9)
            ids = [e * 100 + i for i in range(3)]
            body = json.loads(_pixabay_page(ids, 3))
            for hit in body["hits"]:
                hit["largeImageURL"] = f"{web.url}/img/{hit['id']}.jpg"
            return Answer(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
        if request.path.startswith("/img/"):
            n = int(request.path.split("/")[-1].split(".")[0])
            if n == 2:
                return Answer(200, b"<html>blocked</html>", {"Content-Type": "text/html"})
            return Answer(200, png(n), {"Content-Type": "image/jpeg"})
        return None

    web.dynamic = answer


def test_pixabay_assets_end_to_end_and_the_key_never_leaks(web, tmp_path, monkeypatch, caplog):
    _serve_pixabay(web)
    monkeypatch.setenv("PIXABAY_API_KEY", KEY)
    resources = web_resources(pixabay_url=web.url + "/api/", ddg_url=web.url + "/ddg",
                              backoff=0.01, max_retries=1, min_interval=0)
    config = {"ops": {"pixabay_hits": {"config": {"queries": {"Anger": "angry face", "Happiness": "happy face",
                                                              "Fear": "scared face"}, "per_emotion": 3}}}}
    caplog.set_level(logging.DEBUG)
    data_dir = tmp_path / "data"
    result = materialize(data_dir, selection=["pixabay_hits", "pixabay_images", "duckduckgo_hits", "duckduckgo_images",
                                              "fer2013_images", "kaggle_face_images", "image_catalog", "data_sources",
                                              "emotions", "images"],
                         run_config=config, web=resources, profile="real")
    assert result.success
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT emotion_id, rel_path, image_format, synthetic FROM images_pixabay ORDER BY rel_path").fetchall()
    assert [r[:3] for r in rows] == [(0, "anger/0.png", "PNG"), (0, "anger/1.png", "PNG"),
                                     (3, "happiness/300.png", "PNG"), (3, "happiness/301.png", "PNG"),
                                     (3, "happiness/302.png", "PNG")]
    hits_meta = result.asset_materializations_for_node("pixabay_hits")[0].metadata
    assert "scared face" in hits_meta["failed_queries"].value and "HTTP 500" in hits_meta["failed_queries"].value
    downloads = result.asset_materializations_for_node("pixabay_images")[0].metadata
    assert downloads["downloads"].value == {"ok": 5, "failed": 1}
    ddg_meta = result.asset_materializations_for_node("duckduckgo_hits")[0].metadata
    assert ddg_meta["skipped"].value == "RAPIDAPI_KEY is not set"

    # the key must not be in any stored byte, any log line, or any event
    for path in data_dir.rglob("*"):
        if path.is_file() and "dagster_home" not in path.parts:
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in caplog.text
    for event in result.all_events:
        assert KEY not in str(event), event.event_type_value
    assert any(r.query.get("key") == KEY for r in web.requests)  # it was really used

    # re-running downloads is resumable: no image is fetched twice
    before = len([r for r in web.requests if r.path.startswith("/img/")])
    again = materialize(data_dir, selection=["pixabay_images"], web=resources, profile="real")
    assert again.success
    assert len([r for r in web.requests if r.path.startswith("/img/")]) == before + 1  # only the failed one again
    assert again.asset_materializations_for_node("pixabay_images")[0].metadata["downloads"].value == {"skipped": 5, "failed": 1}


def test_web_assets_skip_without_keys(tmp_path):
    result = materialize(tmp_path, selection=["pixabay_hits", "pixabay_images"])
    assert result.success
    assert result.asset_materializations_for_node("pixabay_hits")[0].metadata["skipped"].value == "PIXABAY_API_KEY is not set"
    assert result.asset_materializations_for_node("pixabay_images")[0].metadata["skipped"].value == "no hits from pixabay_hits"


def test_hits_are_kept_per_day_and_downloads_take_every_day(web, tmp_path, monkeypatch):
    import dagster as dg

    from femo_pipeline.definitions import all_assets
    from femo_pipeline_tests.conftest import instance_for, resources_for

    _serve_pixabay(web)
    monkeypatch.setenv("PIXABAY_API_KEY", KEY)
    resources = resources_for(tmp_path, web_resources(pixabay_url=web.url + "/api/", ddg_url=web.url + "/ddg",
                                                      backoff=0.01, max_retries=0, min_interval=0), profile="real")
    for day, query in (("2026-11-20", {"Anger": "angry face"}), ("2026-11-21", {"Happiness": "happy face"})):
        config = {"ops": {"pixabay_hits": {"config": {"queries": query, "per_emotion": 2}}}}
        assert dg.materialize(all_assets, selection=["pixabay_hits"], partition_key=day, resources=resources,
                              run_config=config, instance=instance_for(tmp_path)).success
    assert sorted(p.name for p in (tmp_path / "staging" / "pixabay_hits").iterdir()) == ["2026-11-20", "2026-11-21"]
    # the downloads take the days this instance pulled (a new instance would see none of them)
    result = dg.materialize(all_assets, selection=["pixabay_images"], resources=resources,
                            instance=instance_for(tmp_path))
    meta = result.asset_materializations_for_node("pixabay_images")[0].metadata
    assert meta["hits_all_days"].value == 4 and meta["downloads"].value == {"ok": 4}
    assert sorted(p.name for p in (tmp_path / "raw" / "pixabay").rglob("*.png")) == ["0.png", "1.png", "300.png", "301.png"]


@pytest.mark.parametrize("text, number", [("0", 0), ("007", 7), ("9" * 18, 10**18 - 1), ("0" * 30 + "12", 12),
                                          ("1" + "0" * 18, None), ("9" * 5000, None),
                                          ("\u00b2", None), ("\u0661\u0662", None), ("-1", None), (" 1", None),
                                          ("", None), (None, None), (12, None)])
def test_whole_numbers_are_ascii_digits_only(text, number):
    """ASCII digits only, and at most 18 significant ones: int() raises past 4,300 digits."""
    from femo_pipeline.numerals import whole_number

    assert whole_number(text) == number
