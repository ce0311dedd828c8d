"""Read-only HTTP API over the serving snapshot of the warehouse (FastAPI; OpenAPI docs at /docs).

The study's Flask routes, with their bugs fixed: pages start at 1 and links never point past the last page,
page_size is capped, unknown ids and bad parameters answer 4xx with a message, and every query is
parameterised. Lists carry metadata; pixels come as PNG from /images/{id}.png (at most `max_png_side` pixels
on the long side, encoded once per snapshot and image and kept in a small LRU cache). Integers outside signed
64 bits answer 422, no answer names a file path or SQL, and HEAD works wherever GET does.

Start: `python -m femo_pipeline serve` (reads FEMO_SERVING_DB, default data/serving/femo.duckdb).
"""

from __future__ import annotations

import contextlib
import html
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
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
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # ids are BIGINT: anything outside is refused before SQL sees it
MAX_PAGE = INT64_MAX // MAX_PAGE_SIZE  # keeps (page - 1) * page_size a valid OFFSET
DEFAULT_MAX_PNG_SIDE = 1024
PNG_CACHE_ENTRIES = 64
PNG_CACHE_BYTES = 64 * 2**20
NO_SNAPSHOT = "no serving snapshot available: materialize serving_snapshot first"
log = logging.getLogger("femo_pipeline.api")


class _Snapshot:
    """One open read-only connection and the number of requests using it."""

    def __init__(self, real: str, key: tuple[str, int]):
        self.key = key
        self.con = duckdb.connect(real, read_only=True)
        self.users = 0
        self.retired = False


class SnapshotReader:
    """Read-only connection to the serving snapshot, reopened when a new snapshot is published.

    `path` is the link that serving.publish_snapshot switches atomically (a plain file works too). Connections
    are reference counted: when a newer snapshot appears the old connection is retired and closed as soon as
    the last request using it finishes, so only the current snapshot stays open.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._retired: list[_Snapshot] = []

    def _acquire(self) -> _Snapshot:
        real = os.path.realpath(self.path)
        try:
            key = (real, os.stat(real).st_mtime_ns)
        except FileNotFoundError:
            log.warning("no serving snapshot at %s", self.path)
            raise HTTPException(503, NO_SNAPSHOT) from None
        with self._lock:
            if self._snapshot is None or self._snapshot.key != key:
                try:
                    fresh = _Snapshot(real, key)
                except duckdb.Error as exc:
                    log.warning("serving snapshot %s not readable: %s", real, exc)
                    raise HTTPException(503, NO_SNAPSHOT) from None
                if self._snapshot is not None:
                    self._retire(self._snapshot)
                self._snapshot = fresh
            self._snapshot.users += 1
            return self._snapshot

    def _retire(self, snapshot: _Snapshot) -> None:  # under the lock
        snapshot.retired = True
        if snapshot.users == 0:
            snapshot.con.close()
        else:
            self._retired.append(snapshot)

    def _release(self, snapshot: _Snapshot) -> None:
        with self._lock:
            snapshot.users -= 1
            if snapshot.retired and snapshot.users == 0:
                snapshot.con.close()
                self._retired.remove(snapshot)

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the current snapshot; the snapshot stays open until the block ends."""
        snapshot = self._acquire()
        try:
            cur = snapshot.con.cursor()
            try:
                yield cur
            finally:
                cur.close()
        finally:
            self._release(snapshot)

    def key(self) -> tuple[str, int] | None:
        """Which snapshot file is being served (path, mtime), for caches."""
        with self._lock:
            return self._snapshot.key if self._snapshot else None

    def open_connections(self) -> int:
        with self._lock:
            return (self._snapshot is not None) + len(self._retired)

    def close(self) -> None:
        with self._lock:
            if self._snapshot is not None:
                self._retire(self._snapshot)
                self._snapshot = None

    def query(self, sql: str, params: list | None = None) -> list[dict]:
        with self.connection() as cur:
            result = cur.execute(sql, params or [])
            names = [d[0] for d in result.description]
            return [dict(zip(names, row)) for row in result.fetchall()]


class HeadAsGet:
    """ASGI middleware: HEAD is answered like GET on every route, with the same headers and no body."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message):
            if message["type"] == "http.response.body":
                if message.get("more_body"):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


class PngCache:
    """A small LRU of encoded PNGs keyed by (snapshot, image id), bounded in entries and bytes."""

    def __init__(self, entries: int = PNG_CACHE_ENTRIES, max_bytes: int = PNG_CACHE_BYTES):
        self.entries, self.max_bytes = entries, max_bytes
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self._bytes += len(data)
            while len(self._items) > self.entries or self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)


def png_for_serving(data: bytes, image_format: str, width: int | None, height: int | None, max_side: int) -> bytes | None:
    """The stored bytes as a PNG at most max_side pixels on its long side; None when they cannot be decoded."""
    if image_format == "PNG" and width and height and max(width, height) <= max_side:
        return bytes(data)  # already what is served: no decoding at all
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        return None
    h, w = pixels.shape[:2]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        pixels = cv2.resize(pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    elif image_format == "PNG":
        return bytes(data)
    return cv2.imencode(".png", pixels)[1].tobytes()


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

PageQ = Query(1, ge=1, le=MAX_PAGE, description="Page number, from 1.")
PageSizeQ = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, at most {MAX_PAGE_SIZE}.")


def _with_links(item: dict) -> dict:
    item["url"] = f"/images/{item['id']}"
    item["png_url"] = f"/images/{item['id']}.png"
    return item


def _id_query(description: str):
    return Query(..., ge=INT64_MIN, le=INT64_MAX, description=description)


ImageIdPath = PathParam(..., ge=INT64_MIN, le=INT64_MAX, description="Image id (a signed 64-bit integer)")


def create_app(snapshot_path: str | os.PathLike | None = None, max_png_side: int | None = None) -> FastAPI:
    """The API over the snapshot link at snapshot_path (FEMO_SERVING_DB); PNGs capped at max_png_side pixels
    on the long side (FEMO_MAX_PNG_SIDE, default 1024)."""
    path = snapshot_path or os.environ.get("FEMO_SERVING_DB") or Path(__file__).resolve().parents[1] / "data" / "serving" / "femo.duckdb"
    max_png_side = int(max_png_side or os.environ.get("FEMO_MAX_PNG_SIDE") or DEFAULT_MAX_PNG_SIDE)
    reader = SnapshotReader(path)
    png_cache = PngCache()
    encoding = threading.BoundedSemaphore(2)  # decoding a large image is CPU and memory heavy: two at a time
    app = FastAPI(
        title="femo API",
        version="1.0",
        description="Read-only access to the femo warehouse: face images with emotion labels, their sources, "
        "and the FACS action units of each emotion.",
    )
    app.state.reader = reader
    app.state.png_cache = png_cache
    app.add_middleware(HeadAsGet)

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
        return Response(content=cached, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

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
