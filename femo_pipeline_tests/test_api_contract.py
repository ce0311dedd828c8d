"""The API's contract: an ETag per resource (and none on errors), and an OpenAPI document that describes every
answer the API gives, 4xx bodies included, checked by schemathesis with response-schema conformance on."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from femo_pipeline.api import create_app
from femo_pipeline_tests.test_gallery import build


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return build(tmp_path_factory.mktemp("contract"))


@pytest.fixture(scope="module")
def client(snapshot):
    with TestClient(create_app(snapshot)) as c:
        yield c


@pytest.fixture(scope="module")
def image_id(client) -> int:
    return client.get("/images/", params={"page_size": 1}).json()["images"][0]["id"]


def test_if_none_match_star_never_answers_304_for_a_missing_resource(client, image_id):
    for url in ("/images/1", "/images/1.png", "/faces/1", "/images/?page=999999", "/images/emotions?emotion=99"):
        answer = client.get(url, headers={"If-None-Match": "*"})
        assert answer.status_code == 404 and "etag" not in answer.headers, url
    for url in (f"/images/{image_id}", f"/images/{image_id}.png", "/sources"):
        assert client.get(url, headers={"If-None-Match": "*"}).status_code == 304, url


def test_an_etag_validates_its_own_resource_only(client, image_id):
    urls = ["/sources", "/emotions", f"/images/{image_id}", f"/images/{image_id}.png", "/", "/images/?page_size=3"]
    tags = {url: client.get(url).headers["etag"] for url in urls}
    assert len(set(tags.values())) == len(urls)  # one per resource
    for url in urls:
        for other, tag in tags.items():
            answer = client.get(url, headers={"If-None-Match": tag})
            assert answer.status_code == (304 if other == url else 200), (url, other)
    weak = client.get("/sources", headers={"If-None-Match": f"W/{tags['/sources']}, \"x\""})
    assert weak.status_code == 304  # If-None-Match compares weakly


def test_errors_carry_no_etag_and_422_has_one_shape(client):
    for url in ("/images/1", "/images/?page=0", "/images/emotions?emotion=x", "/?source=99999999999999999999"):
        answer = client.get(url)
        assert answer.status_code in (404, 422) and "etag" not in answer.headers, url
        if url.startswith("/?"):  # a page's error is a page (documented as text/html)
            assert answer.headers["content-type"].startswith("text/html"), url
        elif answer.status_code == 422:
            body = answer.json()
            assert body["error"] == "invalid parameters" and isinstance(body["detail"], list), (url, body)


def _operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_openapi_documents_the_4xx_answers_with_their_bodies(client):
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert "HTTPValidationError" not in components  # FastAPI's default 422 body is not what the API sends
    assert set(components["InvalidParameters"]["properties"]) == {"error", "detail"}
    assert set(components["Problem"]["properties"]) == {"detail"}
    for path, _method, operation in _operations(schema):
        responses = operation["responses"]
        page = path in ("/", "/faces/{image_id}", "/disagreements", "/report")  # HTML pages: errors as pages
        if operation.get("parameters"):
            if page:
                assert "text/html" in responses["422"]["content"], path
            else:
                ref = responses["422"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/InvalidParameters"), (path, ref)
        if "{" in path or any(p["name"] in ("page", "source_id", "emotion", "face") for p in operation.get("parameters", [])):
            if page:
                assert "text/html" in responses["404"]["content"], path
            else:
                assert responses["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/Problem"), path
        assert "503" in responses, path  # no snapshot yet


def test_every_answer_conforms_to_the_openapi_document(snapshot):
    """schemathesis, with status code, content type and response schema conformance on."""
    app = create_app(snapshot)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            nonlocal calls
            calls += 1
            case.validate_response(case.call(), checks=checks)  # raises, naming the request, on a failed check

        check()
    assert calls >= 150
