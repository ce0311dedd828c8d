"""Web client hardening: secrets on redirects and in repr, gzip lengths, total deadlines, closed streams."""

from __future__ import annotations

import gzip
import time

import pytest
import requests

from femo_pipeline import web_sources
from femo_pipeline.webclient import PoliteClient
from femo_pipeline_tests.fake_web import Answer, FakeWeb
from femo_pipeline_tests.test_web import KEY, client, png


@pytest.fixture
def web():
    with FakeWeb() as fake:
        yield fake


@pytest.fixture
def other():
    """A second server, reached as 'localhost': another host than 127.0.0.1 as far as redirects go."""
    with FakeWeb() as fake:
        fake.url = fake.url.replace("127.0.0.1", "localhost")
        yield fake


def test_repr_and_str_mask_the_secrets():
    c = PoliteClient(secrets=(KEY, "other-secret-77"))
    for text in (repr(c), str(c)):
        assert KEY not in text and "other-secret-77" not in text
        assert "***" in text and "PoliteClient" in text


def test_secret_headers_and_params_are_dropped_on_a_redirect_to_another_host(web, other):
    other.routes["/landing"] = [Answer(200, b"landed")]
    web.routes["/search"] = [Answer(302, headers={"Location": other.url + f"/landing?key={KEY}&q=x"})]
    c, _ = client()
    response = c.get(web.url + "/search", params={"key": KEY, "q": "x"},
                     headers={"X-RapidAPI-Key": KEY, "X-RapidAPI-Host": "h.example", "Authorization": f"Bearer {KEY}"})
    assert response.text == "landed"
    first, = web.hits("/search")
    assert first.headers["X-RapidAPI-Key"] == KEY and first.query["key"] == KEY  # sent to the host it is meant for
    landed, = other.hits("/landing")
    assert "X-RapidAPI-Key" not in landed.headers and "Authorization" not in landed.headers
    assert KEY not in str(landed.headers) and KEY not in str(landed.query)
    assert landed.query.get("q") == "x" and "key" not in landed.query
    assert KEY not in response.url


def test_secret_headers_stay_on_a_redirect_within_the_host(web):
    web.routes["/old"] = [Answer(301, headers={"Location": "/new"})]
    web.routes["/new"] = [Answer(200, b"here")]
    c, _ = client()
    assert c.get(web.url + "/old", headers={"X-RapidAPI-Key": KEY}).text == "here"
    assert web.hits("/new")[0].headers["X-RapidAPI-Key"] == KEY


def test_gzip_encoded_download_is_not_called_truncated(web, tmp_path):
    image = png(5)
    packed = gzip.compress(image)
    web.routes["/z.png"] = [Answer(200, packed, {"Content-Type": "image/png", "Content-Encoding": "gzip"})]
    c, _ = client(max_retries=0)
    result = web_sources.download_image(c, web.url + "/z.png", tmp_path, "z")
    assert result.status == "ok", result.reason
    assert (tmp_path / "z.png").read_bytes() == image and result.file_size_bytes == len(image)


def test_gzip_download_cut_short_is_still_caught(web, tmp_path):
    packed = gzip.compress(png(6))
    web.routes["/cut.png"] = [Answer(200, packed[:50], {"Content-Type": "image/png", "Content-Encoding": "gzip"},
                                     content_length=len(packed))]
    c, _ = client(max_retries=0)
    result = web_sources.download_image(c, web.url + "/cut.png", tmp_path, "cut")
    assert result.status == "failed" and ("truncated" in result.reason or "broke off" in result.reason)
    assert list(tmp_path.iterdir()) == []


def test_slow_drip_download_is_cut_at_the_total_deadline(web, tmp_path):
    web.routes["/drip.png"] = [Answer(200, png(7), {"Content-Type": "image/png"}, drip=0.2)]
    c, _ = client(max_retries=0, timeout=2)  # each byte arrives well within the per-read timeout
    start = time.monotonic()
    result = web_sources.download_image(c, web.url + "/drip.png", tmp_path, "drip", deadline=1.0)
    elapsed = time.monotonic() - start
    assert result.status == "failed" and "deadline" in result.reason and "1 s" in result.reason
    assert elapsed < 3, elapsed
    assert list(tmp_path.iterdir()) == []


def test_default_deadline_comes_from_the_client(web, tmp_path):
    web.routes["/drip.png"] = [Answer(200, png(8), {"Content-Type": "image/png"}, drip=0.2)]
    c, _ = client(max_retries=0, download_deadline=0.6)
    result = web_sources.download_image(c, web.url + "/drip.png", tmp_path, "drip")
    assert result.status == "failed" and "deadline" in result.reason
    assert PoliteClient().download_deadline == 60.0


@pytest.mark.parametrize("route,answer,max_bytes", [
    ("/big.png", Answer(200, png(9, size=256), {"Content-Type": "image/png"}), 1000),  # over max_bytes: not read to the end
    ("/ok.png", Answer(200, png(9), {"Content-Type": "image/png"}), None),
    ("/page", Answer(200, b"<html>no</html>", {"Content-Type": "text/html"}), None),
    ("/cut.png", Answer(200, png(9)[:80], {"Content-Type": "image/png"}, content_length=5000), None),
    ("/drip.png", Answer(200, png(9), {"Content-Type": "image/png"}, drip=0.1), None),
])
def test_streamed_responses_are_always_closed(web, tmp_path, route, answer, max_bytes):
    web.routes[route] = [answer]
    c, _ = client(max_retries=0)
    responses: list[requests.Response] = []
    send = c.session.send

    def recording_send(request, **kw):
        responses.append(send(request, **kw))
        return responses[-1]

    c.session.send = recording_send
    kwargs = {"max_bytes": max_bytes} if max_bytes else {}
    web_sources.download_image(c, web.url + route, tmp_path, "x", deadline=0.5, **kwargs)
    assert responses and all(r.raw.closed for r in responses)


def test_deadline_also_bounds_slow_headers_and_retries(web, tmp_path):
    web.routes["/stall.png"] = [Answer(200, png(3), {"Content-Type": "image/png"}, delay=1.5)]
    c, _ = client(max_retries=3, timeout=5, backoff=0.01)
    start = time.monotonic()
    result = web_sources.download_image(c, web.url + "/stall.png", tmp_path, "s", deadline=0.5)
    assert result.status == "failed" and "deadline" in result.reason, result.reason
    assert time.monotonic() - start < 1.4
    web.routes["/busy.png"] = [Answer(503, b"busy", {"Retry-After": "30"})]
    c, slept = client(max_retries=3)
    result = web_sources.download_image(c, web.url + "/busy.png", tmp_path, "b", deadline=5)
    assert result.status == "failed" and "deadline" in result.reason and slept == []
    assert len(web.hits("/busy.png")) == 1


def test_download_deadline_is_asset_config(web, tmp_path, monkeypatch):
    import json

    from femo_pipeline.definitions import web_resources
    from femo_pipeline_tests.conftest import materialize

    def answer(request):
        if request.path == "/api/":
            hits = [{"id": i, "largeImageURL": f"{web.url}/img/{i}.png", "pageURL": "p", "imageWidth": 64,
                     "imageHeight": 64, "tags": "face"} for i in range(2)]
            return Answer(200, json.dumps({"totalHits": 2, "hits": hits}).encode(), {"Content-Type": "application/json"})
        if request.path == "/img/0.png":
            return Answer(200, png(0), {"Content-Type": "image/png"}, drip=0.2)
        return Answer(200, png(1), {"Content-Type": "image/png"})

    web.dynamic = answer
    monkeypatch.setenv("PIXABAY_API_KEY", KEY)
    resources = web_resources(pixabay_url=web.url + "/api/", ddg_url=web.url + "/ddg", backoff=0.01,
                              max_retries=0, min_interval=0)
    config = {"ops": {"pixabay_hits": {"config": {"queries": {"Anger": "angry face"}, "per_emotion": 2}},
                      "pixabay_images": {"config": {"deadline_s": 0.5}}}}
    result = materialize(tmp_path, selection=["pixabay_hits", "pixabay_images"], run_config=config, web=resources,
                         profile="real")
    meta = result.asset_materializations_for_node("pixabay_images")[0].metadata
    assert meta["downloads"].value == {"ok": 1, "failed": 1}
    assert "deadline" in meta["failures"].value
