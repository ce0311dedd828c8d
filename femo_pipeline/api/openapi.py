"""The OpenAPI document as the API answers: FastAPI's, with the error answers it leaves out or describes wrongly
put right. Every operation that takes parameters lists 422 with the body the API sends ({error, detail: [...]},
not FastAPI's default validation body); every one that can miss (an id, a page past the last, an unknown
source, emotion or reader) lists 404, and every one 503 (no serving snapshot yet), both with their {detail}
body. Pure module (no Dagster)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM = {
    "title": "Problem", "type": "object", "required": ["detail"],
    "properties": {"detail": {"type": "string", "description": "What went wrong, in words."}},
}
INVALID_PARAMETERS = {
    "title": "InvalidParameters", "type": "object", "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "enum": ["invalid parameters"]},
        "detail": {"type": "array", "items": {"type": "string"},
                   "description": "One line per parameter: its name, then what is wrong with it."},
    },
}
# operations that answer 404 for a value of a query parameter (path parameters and pages always can)
MISSES = {"/images/sources": "no such source", "/images/emotions": "no such emotion",
          "/images/emotions/faces": "no such emotion", "/disagreements": "no predictions from that reader"}


def _json(description: str, name: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _page(description: str) -> dict:
    """An error of an HTML page: answered as a page saying what went wrong and what to do next."""
    return {"description": f"{description} Answered as an HTML page that says what to do next.",
            "content": {"text/html": {"schema": {"type": "string"}}}}


def errors_documented(app: FastAPI) -> dict:
    """The app's OpenAPI document with its error answers described (built once, then kept)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    components["Problem"], components["InvalidParameters"] = PROBLEM, INVALID_PARAMETERS
    from femo_pipeline.api.pages import PAGE_PATHS

    for path, methods in schema.get("paths", {}).items():
        page = bool(PAGE_PATHS.match(path.replace("{image_id}", "1")))
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            responses.pop("422", None)
            if parameters:
                what = "A parameter is missing, of the wrong type or out of range."
                responses["422"] = _page(what) if page else _json(what, "InvalidParameters")
            if "{" in path or any(p["name"] == "page" for p in parameters) or path in MISSES:
                what = ", ".join(w for w in ("no such id" if "{" in path else "",
                                             "a page past the last" if any(p["name"] == "page" for p in parameters)
                                             else "", MISSES.get(path, "")) if w)
                responses["404"] = _page(f"Not found: {what}.") if page else _json(f"Not found: {what}.", "Problem")
            what = "No serving snapshot yet: materialize serving_snapshot first."
            responses["503"] = _page(what) if page else _json(what, "Problem")
    app.openapi_schema = schema
    return schema
