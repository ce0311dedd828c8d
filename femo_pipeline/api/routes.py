"""The JSON API: `create_app` builds the FastAPI app over the snapshot (middleware, offline /docs and /redoc,
the 422 handler, paged image lists and filters, one image's metadata and PNG, sources, emotions), then adds the
pages and the results router. Pure module (no Dagster)."""

from __future__ import annotations

import math
import os
import threading
from enum import IntEnum
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from femo_pipeline.api.common import DEFAULT_MAX_PNG_SIDE, DOCS_STATIC, STATIC, ImageIdPath, PageQ, PageSizeQ, _id_query
from femo_pipeline.api.middleware import HeadAsGet, SnapshotCache
from femo_pipeline.api.openapi import errors_documented
from femo_pipeline.api.pages import add_pages
from femo_pipeline.api.png import PngCache, png_for_serving
from femo_pipeline.api.queries import _SELECT
from femo_pipeline.api.snapshot import SnapshotReader


class AspectRatio(IntEnum):
    portrait = 0  # width/height < 1
    square = 1
    landscape = 2  # > 1


class Colors(IntEnum):
    grayscale = 0
    rgb = 1


_ASPECT_SQL = {0: "i.aspect_ratio < 1", 1: "i.aspect_ratio = 1", 2: "i.aspect_ratio > 1"}
_COLOR_VALUE = {0: "Grayscale", 1: "RGB"}


def _with_links(item: dict) -> dict:
    item["url"] = f"/images/{item['id']}"
    item["png_url"] = f"/images/{item['id']}.png"
    return item


def create_app(snapshot_path: str | os.PathLike | None = None, max_png_side: int | None = None,
               reports_dir: str | os.PathLike | None = None) -> FastAPI:
    """The API over the snapshot link at snapshot_path (FEMO_SERVING_DB); PNGs capped at max_png_side pixels
    on the long side (FEMO_MAX_PNG_SIDE, default 1024); the benchmark report read from reports_dir
    (FEMO_REPORTS_DIR, default the `reports` folder beside the snapshot's `serving` folder)."""
    path = snapshot_path or os.environ.get("FEMO_SERVING_DB") or Path(__file__).resolve().parents[2] / "data" / "serving" / "femo.duckdb"
    max_png_side = int(max_png_side or os.environ.get("FEMO_MAX_PNG_SIDE") or DEFAULT_MAX_PNG_SIDE)
    reports_dir = Path(reports_dir or os.environ.get("FEMO_REPORTS_DIR") or Path(path).parent.parent / "reports")
    reader = SnapshotReader(path)
    png_cache = PngCache()
    encoding = threading.BoundedSemaphore(2)  # decoding a large image is CPU and memory heavy: two at a time
    app = FastAPI(
        title="femo API",
        version="1.0",
        description="Read-only access to the femo warehouse: face images with emotion labels, their sources, "
        "and the FACS action units of each emotion. Pages for people: the gallery at /, one face at "
        "/faces/{id}, /disagreements and /report.",
        docs_url=None, redoc_url=None,  # served below from the app's own files (no CDN)
    )
    app.state.reader = reader
    app.state.png_cache = png_cache
    app.state.response_cache = cache = SnapshotCache.settings()
    app.add_middleware(SnapshotCache, path=path, store=cache)  # inside HeadAsGet: it only ever sees GET
    app.add_middleware(HeadAsGet)
    app.mount("/static/docs", StaticFiles(directory=DOCS_STATIC), name="docs-static")
    app.mount("/static/femo", StaticFiles(directory=STATIC), name="femo-static")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="femo API - Swagger UI",
                                   swagger_js_url="/static/docs/swagger-ui-bundle.js",
                                   swagger_css_url="/static/docs/swagger-ui.css",
                                   swagger_favicon_url="/static/docs/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="femo API - ReDoc",
                              redoc_js_url="/static/docs/redoc.standalone.js",
                              redoc_favicon_url="/static/docs/favicon.png", with_google_fonts=False)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return JSONResponse(status_code=422, content={"error": "invalid parameters", "detail": problems})

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 422:  # a value refused by a route itself: the same body as the validation's
            return JSONResponse(status_code=422, content={"error": "invalid parameters", "detail": [exc.detail]})
        return await http_exception_handler(request, exc)

    app.openapi = lambda: errors_documented(app)

    def paged(where: list[tuple[str, list]], page: int, page_size: int, route: str, fixed: dict) -> dict:
        """One page of images matching the (SQL fragment, parameters) filters; fragments are constants."""
        clause = " AND ".join(sql for sql, _ in where) or "TRUE"
        params = [p for _, ps in where for p in ps]
        total = reader.query(f"SELECT count(*) AS n FROM images i WHERE {clause}", params)[0]["n"]
        last_page = max(1, math.ceil(total / page_size))
        if page > last_page:
            raise HTTPException(404, f"page {page} is past the last page ({last_page}; {total} images)")
        rows = reader.query(f"{_SELECT} WHERE {clause} ORDER BY i.id LIMIT ? OFFSET ?",
                            params + [page_size, (page - 1) * page_size])

        def link(p: int) -> str:
            return f"{route}?{urlencode({**fixed, 'page': p, 'page_size': page_size})}"

        return {
            "images": [_with_links(r) for r in rows],
            "page": page,
            "page_size": page_size,
            "total": total,
            "previous_page": link(page - 1) if page > 1 else None,
            "next_page": link(page + 1) if page < last_page else None,
            "last_page": link(last_page),
        }

    @app.get("/images/", summary="All images, paged")
    def list_images(page: int = PageQ, page_size: int = PageSizeQ) -> dict:
        return paged([], page, page_size, "/images/", {})

    @app.get("/images/sources", summary="Images of one source")
    def images_of_source(
        source_id: int = _id_query("Source id (see /sources): 1 Pixabay, 2 DuckDuckGo, 3 Kaggle, 4 FER-2013."),
        page: int = PageQ, page_size: int = PageSizeQ,
    ) -> dict:
        if not reader.query("SELECT 1 FROM data_sources WHERE id = ?", [source_id]):
            raise HTTPException(404, f"no source with id {source_id}; see /sources")
        return paged([("i.source_id = ?", [source_id])], page, page_size, "/images/sources", {"source_id": source_id})

    @app.get("/images/emotions", summary="Images of one emotion")
    def images_of_emotion(
        emotion: int = _id_query("Emotion id (see /emotions): 0 Anger ... 7 Contempt."),
        page: int = PageQ, page_size: int = PageSizeQ,
    ) -> dict:
        if not reader.query("SELECT 1 FROM emotions WHERE id = ?", [emotion]):
            raise HTTPException(404, f"no emotion with id {emotion}; see /emotions")
        return paged([("i.emotion_id = ?", [emotion])], page, page_size, "/images/emotions", {"emotion": emotion})

    @app.get("/images/aspect_ratio", summary="Images by aspect ratio: 0 portrait (<1), 1 square, 2 landscape (>1)")
    def images_by_aspect_ratio(aspect_ratio: AspectRatio = Query(...), page: int = PageQ, page_size: int = PageSizeQ) -> dict:
        return paged([(_ASPECT_SQL[int(aspect_ratio)], [])], page, page_size,
                     "/images/aspect_ratio", {"aspect_ratio": int(aspect_ratio)})

    @app.get("/images/colors", summary="Images by colour: 0 grayscale, 1 colour (RGB)")
    def images_by_colors(colors: Colors = Query(...), page: int = PageQ, page_size: int = PageSizeQ) -> dict:
        return paged([("i.color_space = ?", [_COLOR_VALUE[int(colors)]])], page, page_size, "/images/colors",
                     {"colors": int(colors)})

    @app.get("/images/emotions/faces", summary="FACS action units of one emotion")
    def action_units(face: int = _id_query("Emotion id (see /emotions).")) -> dict:
        found = reader.query("SELECT id, emotion FROM emotions WHERE id = ?", [face])
        if not found:
            raise HTTPException(404, f"no emotion with id {face}; see /emotions")
        units = reader.query(
            "SELECT fs.action_unit, fs.description, fs.facial_muscle, fs.example "
            "FROM facs_emotions_units feu JOIN facs_single_units fs ON feu.action_units = fs.action_unit "
            "WHERE feu.emotion = ? ORDER BY fs.action_unit", [face])
        return {"emotion_id": face, "emotion": found[0]["emotion"], "action_units": units}

    @app.get("/images/{image_id}.png", summary="The image itself, as PNG",
             responses={200: {"content": {"image/png": {}}}}, response_class=Response)
    def image_png(image_id: int = ImageIdPath) -> Response:
        cached = png_cache.get((reader.key(), image_id))
        if cached is None:
            rows = reader.query("SELECT p.pixels, i.image_format, i.width, i.height FROM image_pixels p "
                                "JOIN images i ON i.id = p.image_id WHERE p.image_id = ?", [image_id])
            if not rows:
                raise HTTPException(404, f"no image with id {image_id}")
            row = rows[0]
            with encoding:
                cached = png_for_serving(row["pixels"], row["image_format"], row["width"], row["height"], max_png_side)
            if cached is None:
                raise HTTPException(404, f"image {image_id} cannot be decoded")
            png_cache.put((reader.key(), image_id), cached)
        return Response(content=cached, media_type="image/png")  # caching headers: SnapshotCache

    @app.get("/images/{image_id}", summary="One image's metadata, by its stable id")
    def image(image_id: int = ImageIdPath) -> dict:
        rows = reader.query(f"{_SELECT} WHERE i.id = ?", [image_id])
        if not rows:
            raise HTTPException(404, f"no image with id {image_id}")
        return _with_links(rows[0])

    @app.get("/sources", summary="Image sources")
    def sources() -> list[dict]:
        return reader.query("SELECT id, source, url_link, comments, synthetic FROM data_sources ORDER BY id")

    @app.get("/emotions", summary="Emotion vocabulary")
    def emotions() -> list[dict]:
        return reader.query("SELECT id, emotion FROM emotions ORDER BY id")

    add_pages(app, reader, reports_dir)
    from femo_pipeline.api_results import router as results_router  # /benchmark, /images/{id}/predictions
    app.include_router(results_router)
    return app
