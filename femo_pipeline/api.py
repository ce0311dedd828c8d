"""Read-only HTTP API over the serving snapshot of the warehouse (FastAPI; OpenAPI docs at /docs).

The study's Flask routes, with their bugs fixed: pages start at 1 and links never point past the last page,
page_size is capped, unknown ids and bad parameters answer 4xx with a message, and every query is
parameterised. Lists carry metadata; pixels come as PNG from /images/{id}.png.

Start: `python -m femo_pipeline serve` (reads FEMO_SERVING_DB, default data/serving/femo.duckdb).
"""

from __future__ import annotations

import html
import math
import os
import threading
from enum import IntEnum
from pathlib import Path
from urllib.parse import urlencode

import cv2
import duckdb
import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class SnapshotReader:
    """Read-only connection to the serving snapshot, reopened when a new snapshot is published.

    `path` is the link that serving.publish_snapshot switches atomically (a plain file works too).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._current: tuple[str, int] | None = None

    def cursor(self) -> duckdb.DuckDBPyConnection:
        real = os.path.realpath(self.path)
        try:
            current = (real, os.stat(real).st_mtime_ns)
        except FileNotFoundError:
            raise HTTPException(503, f"no serving snapshot at {self.path}: materialize serving_snapshot first") from None
        with self._lock:
            if current != self._current or self._con is None:
                # connections already handed out keep reading the old copy until they finish
                self._con = duckdb.connect(real, read_only=True)
                self._current = current
            return self._con.cursor()

    def query(self, sql: str, params: list | None = None) -> list[dict]:
        cur = self.cursor()
        try:
            result = cur.execute(sql, params or [])
            names = [d[0] for d in result.description]
            return [dict(zip(names, row)) for row in result.fetchall()]
        finally:
            cur.close()


class AspectRatio(IntEnum):
    portrait = 0  # width/height < 1
    square = 1
    landscape = 2  # > 1


class Colors(IntEnum):
    grayscale = 0
    rgb = 1


_ASPECT_SQL = {0: "i.aspect_ratio < 1", 1: "i.aspect_ratio = 1", 2: "i.aspect_ratio > 1"}
_COLOR_VALUE = {0: "Grayscale", 1: "RGB"}

_SELECT = """
SELECT i.id, i.source_id, ds.source, i.emotion_id, e.emotion, i.split, i.usage, i.height, i.width,
       i.aspect_ratio, i.image_format, i.color_space, round(i.file_size_bytes / 1048576.0, 6) AS file_size_MB,
       i.content_hash, i.duplicate_count, i.synthetic
FROM images i
JOIN data_sources ds ON ds.id = i.source_id
JOIN emotions e ON e.id = i.emotion_id
"""

PageQ = Query(1, ge=1, description="Page number, from 1.")
PageSizeQ = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, at most {MAX_PAGE_SIZE}.")


def _with_links(item: dict) -> dict:
    item["url"] = f"/images/{item['id']}"
    item["png_url"] = f"/images/{item['id']}.png"
    return item


def create_app(snapshot_path: str | os.PathLike | None = None) -> FastAPI:
    path = snapshot_path or os.environ.get("FEMO_SERVING_DB") or Path(__file__).resolve().parents[1] / "data" / "serving" / "femo.duckdb"
    reader = SnapshotReader(path)
    app = FastAPI(
        title="femo API",
        version="1.0",
        description="Read-only access to the femo warehouse: face images with emotion labels, their sources, "
        "and the FACS action units of each emotion.",
    )
    app.state.reader = reader

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return JSONResponse(status_code=422, content={"error": "invalid parameters", "detail": problems})

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
        source_id: int = Query(..., description="Source id (see /sources): 1 Pixabay, 2 DuckDuckGo, 3 Kaggle, 4 FER-2013."),
        page: int = PageQ, page_size: int = PageSizeQ,
    ) -> dict:
        if not reader.query("SELECT 1 FROM data_sources WHERE id = ?", [source_id]):
            raise HTTPException(404, f"no source with id {source_id}; see /sources")
        return paged([("i.source_id = ?", [source_id])], page, page_size, "/images/sources", {"source_id": source_id})

    @app.get("/images/emotions", summary="Images of one emotion")
    def images_of_emotion(
        emotion: int = Query(..., description="Emotion id (see /emotions): 0 Anger ... 7 Contempt."),
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
    def action_units(face: int = Query(..., description="Emotion id (see /emotions).")) -> dict:
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
    def image_png(image_id: int = PathParam(..., description="Image id")) -> Response:
        rows = reader.query("SELECT p.pixels, i.image_format FROM image_pixels p JOIN images i ON i.id = p.image_id "
                            "WHERE p.image_id = ?", [image_id])
        if not rows:
            raise HTTPException(404, f"no image with id {image_id}")
        data, fmt = rows[0]["pixels"], rows[0]["image_format"]
        if fmt != "PNG":
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if pixels is None:
                raise HTTPException(404, f"image {image_id} cannot be decoded")
            data = cv2.imencode(".png", pixels)[1].tobytes()
        return Response(content=bytes(data), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.get("/images/{image_id}", summary="One image's metadata, by its stable id")
    def image(image_id: int = PathParam(..., description="Image id")) -> dict:
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

    @app.get("/", response_class=HTMLResponse, summary="Home page with explore forms")
    def home() -> str:
        return _home_page(reader.query("SELECT id, source FROM data_sources ORDER BY id"),
                          reader.query("SELECT id, emotion FROM emotions ORDER BY id"),
                          reader.query("SELECT count(*) AS n, bool_or(synthetic) AS s FROM images")[0])

    return app


def _options(rows: list[dict], label: str) -> str:
    return "".join(f'<option value="{r["id"]}">{r["id"]} {html.escape(str(r[label]))}</option>' for r in rows)


def _home_page(sources: list[dict], emotions: list[dict], stats: dict) -> str:
    note = " (synthetic demo data)" if stats["s"] else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>femo API</title>
<style>body{{font-family:sans-serif;max-width:52rem;margin:2rem auto;line-height:1.4}}
form{{border:1px solid #ccc;padding:.6rem 1rem;margin:.6rem 0;border-radius:6px}}label{{margin-right:.6rem}}</style>
</head><body>
<h1>femo: facial emotion images</h1>
<p>{stats['n']} images in the warehouse{note}. JSON routes below; OpenAPI docs at <a href="/docs">/docs</a>.</p>
<h2>Explore</h2>
<form id="by-source" action="/images/sources" method="get"><label>Source
<select name="source_id">{_options(sources, 'source')}</select></label>
<label>Page size <input name="page_size" type="number" value="10" min="1" max="{MAX_PAGE_SIZE}"></label>
<button type="submit">Images of this source</button></form>
<form id="by-emotion" action="/images/emotions" method="get"><label>Emotion
<select name="emotion">{_options(emotions, 'emotion')}</select></label>
<label>Page size <input name="page_size" type="number" value="10" min="1" max="{MAX_PAGE_SIZE}"></label>
<button type="submit">Images of this emotion</button></form>
<form id="by-aspect" action="/images/aspect_ratio" method="get"><label>Aspect ratio
<select name="aspect_ratio"><option value="0">portrait (&lt; 1)</option><option value="1">square (= 1)</option>
<option value="2">landscape (&gt; 1)</option></select></label>
<button type="submit">Images of this shape</button></form>
<form id="by-colors" action="/images/colors" method="get"><label>Colour
<select name="colors"><option value="0">grayscale</option><option value="1">colour</option></select></label>
<button type="submit">Images of this colour</button></form>
<form id="faces" action="/images/emotions/faces" method="get"><label>Emotion
<select name="face">{_options(emotions, 'emotion')}</select></label>
<button type="submit">Its FACS action units</button></form>
<form id="one-image" onsubmit="location.href='/images/'+this.image_id.value+(this.png.checked?'.png':'');return false;">
<label>Image id <input name="image_id" type="number" min="0" required></label>
<label><input name="png" type="checkbox"> as PNG</label><button type="submit">Show</button></form>
<p>Lists: <a href="/images/">/images/</a> · <a href="/sources">/sources</a> · <a href="/emotions">/emotions</a></p>
</body></html>"""
