"""Web client hardening: secrets on redirects, in repr, in every encoding and in stored URLs; gzip lengths, total
deadlines, closed streams; a malformed hit or redirect fails that item only."""

from __future__ import annotations

import gzip
import json
import time

import pytest
import requests

from femo_pipeline import web_sources
from femo_pipeline.webclient import PoliteClient, WebError
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


# a key with the characters that URL and form encodings change: + / = & and a space
ODD_KEY = "Ab+cD/eF=gH&iJ kL-0123456789zz"
ODD_PART = "0123456789zz"  # a stretch of it no encoding changes: finding it anywhere is a leak


def _forms(secret: str) -> list[str]:
    import re
    from urllib.parse import quote, quote_plus

    lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe=""))
    return [secret, quote(secret, safe=""), quote(secret), quote_plus(secret), quote_plus(secret, safe="/"), lower_hex,
            json.dumps(secret)[1:-1].replace("/", "\\/")]


def test_redact_masks_every_encoding_of_a_secret():
    from femo_pipeline.webclient import redact

    for form in _forms(ODD_KEY):
        assert ODD_PART not in redact(f"GET https://x.example/?key={form}&q=1 failed", [ODD_KEY]), form


def test_an_error_body_is_masked_before_it_is_cut(web):
    """The start of the key must not survive because the cut fell inside it."""
    web.routes["/api"] = [Answer(403, b"x" * 190 + f"{KEY} is not a valid key".encode())]  # the cut was at 200
    c, _ = client(max_retries=0)
    with pytest.raises(WebError) as info:
        c.get(web.url + "/api")
    assert KEY[:6] not in str(info.value) and "HTTP 403" in str(info.value)


def test_keys_with_url_special_characters_never_reach_messages_or_logs(web, caplog):
    import logging

    web.routes["/api/"] = [Answer(400, f"bad key={ODD_KEY} sent as {_forms(ODD_KEY)[3]}".encode())]
    c, _ = client(secrets=(ODD_KEY,), max_retries=0)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(WebError) as info:
        c.get(web.url + "/api/", params={"key": ODD_KEY, "q": "sad face"})
    assert web.requests[0].query["key"] == ODD_KEY  # sent as it is
    assert ODD_PART not in str(info.value) and ODD_PART not in caplog.text


def test_urls_are_stored_without_secrets():
    from femo_pipeline.webclient import strip_secrets

    url = f"https://cdn.example/{ODD_KEY}/img.jpg?key={_forms(ODD_KEY)[3]}&w=640&sig=1#{ODD_KEY}"
    clean = strip_secrets(url, [ODD_KEY])
    assert ODD_PART not in clean and "w=640" in clean and clean.startswith("https://cdn.example/")
    assert strip_secrets("https://user:pw@cdn.example/a.jpg?token=abc", []) == "https://cdn.example/a.jpg"
    assert strip_secrets("https://cdn.example/a.jpg?q=1", [ODD_KEY]) == "https://cdn.example/a.jpg?q=1"


def _hits_answer(web, hits_for):
    def answer(request):
        if request.path == "/api/":
            hits = hits_for(request.query.get("q"))
            if isinstance(hits, Answer):
                return hits
            return Answer(200, json.dumps({"totalHits": len(hits), "hits": hits}).encode(),
                          {"Content-Type": "application/json"})
        if request.path.startswith("/img/"):
            return Answer(200, png(int(request.path.split("/")[-1].split(".")[0])), {"Content-Type": "image/png"})
        return None

    web.dynamic = answer


def _hit(i: int, url: str) -> dict:
    return {"id": i, "largeImageURL": url, "pageURL": f"https://pixabay.example/p/{i}", "imageWidth": 64,
            "imageHeight": 64, "tags": "face"}


def test_a_malformed_hit_or_redirect_fails_that_item_not_the_asset(web, tmp_path, monkeypatch):
    from femo_pipeline.definitions import web_resources
    from femo_pipeline_tests.conftest import materialize

    def hits_for(query):
        if query == "scared face":  # the search itself is redirected to a URL that cannot be parsed
            return Answer(302, headers={"Location": "http://127.0.0.1:99999/elsewhere"})
        return [_hit(1, f"{web.url}/img/1.png"), _hit(2, 12345), _hit(3, "javascript:alert(1)"),
                _hit(4, "http://cdn.example:99999/4.png"), {**_hit(5, f"{web.url}/img/5.png"), "imageWidth": "wide"},
                _hit(6, f"{web.url}/moved/6.png"), _hit(7, f"{web.url}/img/7.png?key={ODD_KEY}")]

    _hits_answer(web, hits_for)
    web.routes["/moved/6.png"] = [Answer(301, headers={"Location": "http://127.0.0.1:99999/6.png"})]
    monkeypatch.setenv("PIXABAY_API_KEY", ODD_KEY)
    resources = web_resources(pixabay_url=web.url + "/api/", ddg_url=web.url + "/ddg", backoff=0.01,
                              max_retries=0, min_interval=0)
    config = {"ops": {"pixabay_hits": {"config": {"queries": {"Anger": "angry face", "Fear": "scared face"},
                                                  "per_emotion": 10}}}}
    result = materialize(tmp_path, selection=["pixabay_hits", "pixabay_images"], run_config=config, web=resources,
                         profile="real")
    assert result.success
    hits_meta = result.asset_materializations_for_node("pixabay_hits")[0].metadata
    assert "scared face" in hits_meta["failed_queries"].value
    rejected = {line.split("|")[1].strip(): line.split("|")[2].strip()
                for line in hits_meta["rejected_hits"].value.splitlines()[2:]}
    assert rejected == {"2": "image URL is a int, not a URL", "3": "image URL is not an http(s) URL with a host",
                        "4": "image URL is malformed: Port out of range 0-65535",
                        "5": "width is not a pixel count: 'wide'"}
    meta = result.asset_materializations_for_node("pixabay_images")[0].metadata
    assert meta["downloads"].value == {"ok": 2, "failed": 1}  # 1 and 7 (its key stripped), not 6
    assert "6.png" in meta["failures"].value
    for path in tmp_path.rglob("*"):
        if path.is_file() and "dagster_home" not in path.parts:
            assert ODD_PART.encode() not in path.read_bytes(), path
    for event in result.all_events:
        assert ODD_PART not in str(event), event.event_type_value


def _one_hit(**fields) -> bytes:
    hit = {"id": 1, "largeImageURL": "https://cdn.example/1.jpg", "pageURL": "https://pixabay.example/p/1",
           "imageWidth": 640, "imageHeight": 480, "tags": "face", **fields}
    return json.dumps({"totalHits": 1, "hits": [hit]}).encode()


def test_numbers_too_long_for_int_in_headers_cost_the_hint_or_the_item_never_the_run(web, tmp_path):
    web.routes["/api/"] = [Answer(429, b"slow down", {"Retry-After": "9" * 5000}), Answer(200, _one_hit())]
    c, slept = client()
    hits = web_sources.pixabay_search(c, KEY, "q", 0, 5, base_url=web.url + "/api/")
    assert [h["remote_id"] for h in hits] == ["1"]
    assert len(slept) == 1 and slept[0] < 1  # the unreadable hint is ignored: the client's own backoff is used
    web.routes["/x.png"] = [Answer(200, png(4), {"Content-Type": "image/png", "Content-Length": "9" * 5000})]
    result = web_sources.download_image(c, web.url + "/x.png", tmp_path, "x")
    assert result.status == "failed" and result.reason, result
    assert list(tmp_path.iterdir()) == []


def test_search_answers_are_bounded_in_time_and_in_size(web):
    web.routes["/api/"] = [Answer(200, _one_hit(), {"Content-Type": "application/json"}, drip=0.05)]
    c, _ = client(max_retries=0, answer_deadline=0.6)  # each byte comes well within the per-read timeout
    start = time.monotonic()
    with pytest.raises(WebError, match="deadline"):
        web_sources.pixabay_search(c, KEY, "q", 0, 5, base_url=web.url + "/api/")
    assert time.monotonic() - start < 3
    web.routes["/big"] = [Answer(200, b"x" * 5000)]
    with pytest.raises(WebError, match="larger than 1000 bytes"):
        c.fetch(web.url + "/big", max_bytes=1000)
    assert c.fetch(web.url + "/big", max_bytes=5000)[0] == b"x" * 5000
    assert PoliteClient().answer_deadline == 300.0


def test_a_secret_the_api_echoes_in_a_hit_is_masked_in_what_is_kept_and_in_rejections(web):
    web.routes["/api/"] = [Answer(200, json.dumps({"totalHits": 2, "hits": [
        {"id": 1, "largeImageURL": "https://cdn.example/1.jpg", "imageWidth": 640, "imageHeight": 480,
         "tags": f"face, {KEY}"},
        {"id": f"2{KEY}", "largeImageURL": "https://cdn.example/2.jpg", "imageWidth": KEY, "imageHeight": 480},
    ]}).encode())]
    c, _ = client()
    rejected: list = []
    hits = web_sources.pixabay_search(c, KEY, "q", 0, 5, base_url=web.url + "/api/", rejected=rejected)
    assert len(hits) == 1 and len(rejected) == 1
    assert hits[0]["tags"] == "face, ***"
    assert KEY not in json.dumps(hits) and KEY not in json.dumps(rejected)
    assert "not a pixel count" in rejected[0]["reason"]


@pytest.mark.parametrize("kind", ["folder", "fifo", "link"])
def test_something_in_the_way_of_a_download_is_reported_never_read_or_followed(web, tmp_path, kind):
    import os

    folder = tmp_path / "dl"
    folder.mkdir()
    outside = tmp_path / "outside.png"
    outside.write_bytes(png(2))
    if kind == "folder":
        (folder / "a.png").mkdir()
    elif kind == "fifo":
        os.mkfifo(folder / "a.png")
    else:
        (folder / "a.png").symlink_to(outside)
    web.routes["/a.png"] = [Answer(200, png(3), {"Content-Type": "image/png"})]
    c, _ = client(max_retries=0)
    start = time.monotonic()
    result = web_sources.download_image(c, web.url + "/a.png", folder, "a")
    assert time.monotonic() - start < 3  # a FIFO is not waited on
    assert result.status == "failed" and "a.png" in result.reason and "remove it" in result.reason, result
    assert result.file_size_bytes is None and web.hits("/a.png") == []


def test_every_http_library_logger_is_masked_tracebacks_included(caplog):
    import logging

    client()  # registers the key with the log masking
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("urllib3.connection").warning("Failed to parse headers (url=%s)", f"http://h/?key={KEY}")
        try:
            raise ValueError(f"GET http://h/?key={KEY} broke")
        except ValueError:
            logging.getLogger("urllib3.response").exception("transfer")
        logging.getLogger("femo.other").warning("not a library: %s", "untouched")
    assert KEY not in caplog.text and "url=http://h/?key=***" in caplog.text and "ValueError" in caplog.text
    assert "untouched" in caplog.text


def test_one_content_length_sent_twice_is_one_count_and_two_counts_are_refused(web, tmp_path):
    image = png(6)
    c, _ = client(max_retries=0)
    for name, header, ok in (("same", f"{len(image)}, {len(image)}", True), ("two", f"{len(image)}, 7", False)):
        web.routes[f"/{name}.png"] = [Answer(200, image, {"Content-Type": "image/png", "Content-Length": header})]
        result = web_sources.download_image(c, web.url + f"/{name}.png", tmp_path, name)
        assert (result.status == "ok") is ok, result


def test_masking_while_other_threads_register_secrets_never_fails_a_log_call():
    import logging
    import threading

    errors: list[BaseException] = []

    def register():
        for i in range(300):
            PoliteClient(secrets=(f"thread-secret-{threading.get_ident()}-{i}",))

    def log():
        try:
            for _ in range(300):
                logging.getLogger("urllib3.connectionpool").debug("GET /?key=%s", KEY)
        except BaseException as exc:  # noqa: BLE001 - any failure of a log call is the finding
            errors.append(exc)

    client()
    threads = [threading.Thread(target=f) for f in (register, log, register, log)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_an_answer_cut_short_is_fetched_again_within_the_deadline(web):
    body = json.dumps({"totalHits": 0, "hits": []}).encode()
    web.routes["/api/"] = [Answer(200, body[:5], content_length=len(body)), Answer(200, body)]
    c, slept = client(max_retries=2)
    assert c.fetch(web.url + "/api/")[0] == body and len(web.hits("/api/")) == 2 and len(slept) == 1
    web.routes["/cut/"] = [Answer(200, body[:5], content_length=len(body))]
    c, _ = client(max_retries=1)
    with pytest.raises(WebError, match=r"transfer broke off .* after 2 attempts"):
        c.fetch(web.url + "/cut/")
