"""Read-only HTTP API over the serving snapshot of the warehouse (FastAPI; OpenAPI docs at /docs).

The study's Flask routes, with their bugs fixed: pages start at 1 and links never point past the last page,
page_size is capped, unknown ids and bad parameters answer 4xx with a message, and every query is
parameterised. Lists carry metadata; pixels come as PNG from /images/{id}.png (at most `max_png_side` pixels
on the long side, encoded once per snapshot and image and kept in a small LRU cache). Integers outside signed
64 bits answer 422, no answer names a file path or SQL, and HEAD works wherever GET does.

People look at faces rather than JSON: server-rendered pages (Jinja2 templates in femo_pipeline/templates) show
a gallery with filters (/), one face with its votes and every reader's guess (/faces/{id}), where the model and
people disagree (/disagreements) and the benchmark report (/report). No page loads anything from another host:
Swagger UI and ReDoc come from the fastapi-offline package's files, served by the app under /static/docs.

Every answer of a snapshot is cached in memory and carries an ETag naming the snapshot (a 304 when the client
already has it), so repeated pages cost no DuckDB query; a new snapshot empties the cache.

Start: `python -m femo_pipeline serve` (reads FEMO_SERVING_DB, default data/serving/femo.duckdb).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
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
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

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


HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def _docs_static() -> Path:
    """Swagger UI and ReDoc files shipped by the fastapi-offline package (MIT; their own licenses inside)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


DOCS_STATIC = _docs_static()
UNCACHED_PREFIXES = ("/static/", "/report")  # files on disk: StaticFiles and the report page answer for themselves


def _code_version() -> str:
    """A digest of the code and templates that shape answers: a new release changes every ETag."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for folder in (TEMPLATES, STATIC):
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()[:12]


class _CacheStore:
    """Responses of one snapshot: (path, query) -> (headers, body), LRU-bounded in entries and bytes."""

    def __init__(self, entries: int, max_bytes: int, max_item: int):
        self.entries, self.max_bytes, self.max_item = entries, max_bytes, max_item
        self.token: str | None = None
        self.items: OrderedDict = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = self.not_modified = 0

    def switch(self, token: str) -> None:
        if token != self.token:
            self.token, self.items, self.bytes = token, OrderedDict(), 0

    def get(self, key):
        found = self.items.get(key)
        if found is not None:
            self.items.move_to_end(key)
        return found

    def put(self, token: str, key, headers: list, body: bytes) -> None:
        if token != self.token or len(body) > self.max_item or key in self.items:
            return
        self.items[key] = (headers, body)
        self.bytes += len(body)
        while len(self.items) > self.entries or self.bytes > self.max_bytes:
            _, (_, old) = self.items.popitem(last=False)
            self.bytes -= len(old)


class SnapshotCache:
    """ASGI middleware: ETag and Cache-Control on every successful GET, 304 on a matching If-None-Match, and
    the answers themselves kept in memory per snapshot.

    Everything the app answers is a function of the serving snapshot (and of the code), so the ETag is a
    digest of the snapshot file's identity (inode, mtime, size: one stat per request, no DuckDB) and the code
    version. A new snapshot gives a new token and empties the store. Only 200 answers are kept or tagged;
    errors always go through the app. It runs in the event loop only, so it needs no lock.
    """

    def __init__(self, app, path: str | os.PathLike, store: _CacheStore | None = None):
        self.app = app
        self.path = str(path)
        self.store = store or self.settings()
        self.version = _code_version()

    @staticmethod
    def settings(entries: int = 4096, max_bytes: int = 64 * 2**20, max_item: int = 2 * 2**20) -> _CacheStore:
        return _CacheStore(entries, max_bytes, max_item)

    def token(self) -> str | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        raw = f"{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}:{self.version}"
        return hashlib.blake2b(raw.encode(), digest_size=10).hexdigest()

    @staticmethod
    def cache_control(path: str) -> bytes:
        if path.endswith(".png"):
            return b"public, max-age=3600"  # an image's pixels do not change with its id
        return b"no-cache"  # pages and JSON: revalidate (a 304 costs nothing)

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "GET" or path.startswith(UNCACHED_PREFIXES):
            await self.app(scope, receive, send)
            return
        token = self.token()
        if token is None:  # no snapshot: the app answers 503
            await self.app(scope, receive, send)
            return
        etag = f'"{token}"'.encode()
        store = self.store
        store.switch(token)
        cache_control = self.cache_control(path)
        for name, value in scope["headers"]:
            if name == b"if-none-match" and (value.strip() == b"*" or etag in [v.strip() for v in value.split(b",")]):
                store.not_modified += 1
                await send({"type": "http.response.start", "status": 304,
                            "headers": [(b"etag", etag), (b"cache-control", cache_control)]})
                await send({"type": "http.response.body", "body": b""})
                return
        key = (path, scope.get("query_string", b""))
        found = store.get(key)
        if found is not None:
            store.hits += 1
            await send({"type": "http.response.start", "status": 200, "headers": found[0]})
            await send({"type": "http.response.body", "body": found[1]})
            return
        store.misses += 1
        state = {"headers": None, "chunks": []}

        async def capture(message):
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = [(k, v) for k, v in message.get("headers", []) if k not in (b"etag", b"cache-control")]
                headers += [(b"etag", etag), (b"cache-control", cache_control)]
                state["headers"] = headers
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and state["headers"] is not None:
                state["chunks"].append(message.get("body", b""))
                if not message.get("more_body"):
                    store.put(token, key, state["headers"], b"".join(state["chunks"]))
            await send(message)

        await self.app(scope, receive, capture)


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


def create_app(snapshot_path: str | os.PathLike | None = None, max_png_side: int | None = None,
               reports_dir: str | os.PathLike | None = None) -> FastAPI:
    """The API over the snapshot link at snapshot_path (FEMO_SERVING_DB); PNGs capped at max_png_side pixels
    on the long side (FEMO_MAX_PNG_SIDE, default 1024); the benchmark report read from reports_dir
    (FEMO_REPORTS_DIR, default the `reports` folder beside the snapshot's `serving` folder)."""
    path = snapshot_path or os.environ.get("FEMO_SERVING_DB") or Path(__file__).resolve().parents[1] / "data" / "serving" / "femo.duckdb"
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


# ----------------------------------------------------------------------------------------------- pages for people

GALLERY_PAGE_SIZE = 60
VOTE_COLUMNS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral", "contempt", "unknown", "NF")
SEVEN = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")  # emotion ids 0..6
CROP_STATUSES = ("ok", "multiple_faces", "no_face", "unreadable", "not_cropped")
DUPLICATE_FILTERS = {  # constant SQL fragments
    "duplicated": "i.duplicate_count > 1",
    "cross_split": "i.duplicate_cross_split",
    "label_conflict": "i.duplicate_label_conflict",
    "unique": "i.duplicate_count = 1",
}
SPLITS = {"train": "i.split = 'train'", "test": "i.split = 'test'", "none": "i.split IS NULL"}
NO_PREDICTIONS = ("No predictions yet: the snapshot has no model predictions (materialize contender_predictions "
                  "and serving_snapshot).")
NO_VOTES = "No FER+ votes for this face (votes exist only for FER-2013 test images, on real data)."
_ID_TEXT = r"^(-?\d{1,18})?$"  # an optional id from a form: empty means "any"; 18 digits always fit in 64 bits
_EXTERNAL = re.compile(r"""<a\s[^>]*href=["'](https?:)?//([^"']*)["'][^>]*>(.*?)</a>""", re.S | re.I)
_EXTERNAL_IMG = re.compile(r"""<img\s[^>]*src=["'](https?:)?//[^"']*["'][^>]*>""", re.I)
_LOCAL_IMG = re.compile(r"""(<img\s[^>]*src=["'])([A-Za-z0-9_.-]+\.(?:png|svg|jpg))(["'])""", re.I)
REPORT_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.(png|svg|jpg)$")


def _templates():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["pct"] = lambda x, digits=0: "-" if x is None else f"{100 * x:.{digits}f} %"
    return env


def _optional_id(text: str, what: str) -> int | None:
    if text in ("", None):
        return None
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:  # cannot happen with 18 digits, kept as a guard
        raise HTTPException(422, f"{what} out of range")
    return value


def offline_html(body: str) -> str:
    """Rendered report HTML with no reference to another host: external links become text with the address
    shown, external images their alt text."""
    body = _EXTERNAL_IMG.sub("", body)
    return _EXTERNAL.sub(lambda m: f'{m.group(3)} <span class="addr">({html_escape(m.group(2))})</span>', body)


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def add_pages(app: FastAPI, reader: SnapshotReader, reports_dir: Path) -> None:
    """The HTML pages: gallery (/), one face (/faces/{id}), /disagreements and /report."""
    env = _templates()
    tables_by_snapshot: dict = {}

    def tables() -> dict[str, int]:
        """Tables and views of the current snapshot -> rows (views: -1), for pages that use what exists."""
        key = reader.key()
        if key not in tables_by_snapshot or key is None:
            with reader.connection() as cur:
                names = cur.execute("SELECT table_name, table_type FROM information_schema.tables "
                                    "WHERE table_schema = 'main'").fetchall()
                found = {}
                for name, kind in names:
                    if kind == "BASE TABLE" and name in ("predictions", "human_votes", "model_runs",
                                                         "benchmark_scores", "verdicts", "face_crops",
                                                         "quarantined_files"):
                        found[name] = cur.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                    else:
                        found[name] = -1
            tables_by_snapshot.clear()
            tables_by_snapshot[reader.key()] = found
        return tables_by_snapshot[reader.key()]

    def render(template: str, **context) -> HTMLResponse:
        synthetic = reader.query("SELECT bool_or(synthetic) AS s FROM images")[0]["s"]
        return HTMLResponse(env.get_template(template).render(synthetic=synthetic, **context))

    def vocab() -> tuple[list[dict], list[dict]]:
        return (reader.query("SELECT id, source FROM data_sources ORDER BY id"),
                reader.query("SELECT id, emotion FROM emotions ORDER BY id"))

    @app.get("/", response_class=HTMLResponse, summary="Gallery of faces with filters, and the explore forms")
    def home(
        source: str = Query("", pattern=_ID_TEXT, description="Source id (empty: any)."),
        emotion: str = Query("", pattern=_ID_TEXT, description="Emotion id (empty: any)."),
        split: str = Query("", pattern="^(|train|test|none)$", description="train, test or none (no split)."),
        status: str = Query("", pattern=f"^(|{'|'.join(CROP_STATUSES)})$",
                            description="Face detection outcome; not_cropped for sources that need none."),
        duplicates: str = Query("", pattern=f"^(|{'|'.join(DUPLICATE_FILTERS)})$",
                                description="duplicated, cross_split, label_conflict or unique."),
        quarantined: bool = Query(False, description="List the quarantined files (not images) instead."),
        page: int = PageQ,
        page_size: int = Query(GALLERY_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Faces per page."),
    ) -> HTMLResponse:
        sources, emotions = vocab()
        source_id, emotion_id = _optional_id(source, "source"), _optional_id(emotion, "emotion")
        have = tables()
        filters = {"source": source, "emotion": emotion, "split": split, "status": status, "duplicates": duplicates}
        stats = reader.query("SELECT count(*) AS n FROM images")[0]
        common = dict(sources=sources, emotions=emotions, filters=filters, statuses=CROP_STATUSES,
                      duplicate_filters=list(DUPLICATE_FILTERS), max_page_size=MAX_PAGE_SIZE, total_images=stats["n"],
                      quarantined=quarantined, n_quarantined=max(0, have.get("quarantined_files", 0)))
        if quarantined:
            where, params = ["TRUE"], []
            if source_id is not None:
                where, params = ["q.source_id = ?"], [source_id]
            clause = " AND ".join(where)
            total = reader.query(f"SELECT count(*) AS n FROM quarantined_files q WHERE {clause}", params)[0]["n"]
            last_page = max(1, math.ceil(total / page_size))
            if page > last_page:
                raise HTTPException(404, f"page {page} is past the last page ({last_page})")
            rows = reader.query(
                "SELECT ds.source, q.rel_path, q.reason, q.file_size_bytes FROM quarantined_files q "
                f"JOIN data_sources ds ON ds.id = q.source_id WHERE {clause} ORDER BY q.source_id, q.rel_path "
                "LIMIT ? OFFSET ?", params + [page_size, (page - 1) * page_size])
            return render("gallery.html", faces=[], files=rows, total=total, page=page, last_page=last_page,
                          links=_page_links("/", {**filters, "quarantined": "true"}, page, last_page, page_size),
                          **common)
        where: list[tuple[str, list]] = []
        if source_id is not None:
            where.append(("i.source_id = ?", [source_id]))
        if emotion_id is not None:
            where.append(("i.emotion_id = ?", [emotion_id]))
        if split:
            where.append((SPLITS[split], []))
        if duplicates:
            where.append((DUPLICATE_FILTERS[duplicates], []))
        crops = "face_crops" in have
        if status and not crops:
            where.append(("FALSE", []))
        elif status == "not_cropped":
            where.append(("fc.image_id IS NULL", []))
        elif status:
            where.append(("fc.status = ?", [status]))
        clause = " AND ".join(sql for sql, _ in where) or "TRUE"
        params = [p for _, ps in where for p in ps]
        join = "LEFT JOIN face_crops fc ON fc.image_id = i.id" if crops else ""
        status_col = "fc.status" if crops else "NULL"
        total = reader.query(f"SELECT count(*) AS n FROM images i {join} WHERE {clause}", params)[0]["n"]
        last_page = max(1, math.ceil(total / page_size))
        if page > last_page:
            raise HTTPException(404, f"page {page} is past the last page ({last_page}; {total} faces)")
        faces = reader.query(
            f"SELECT i.id, ds.source, e.emotion, i.split, i.usage, i.width, i.height, i.duplicate_count, "
            f"i.duplicate_cross_split, i.duplicate_label_conflict, {status_col} AS crop_status "
            f"FROM images i JOIN data_sources ds ON ds.id = i.source_id JOIN emotions e ON e.id = i.emotion_id "
            f"{join} WHERE {clause} ORDER BY i.source_id DESC, i.emotion_id, i.id LIMIT ? OFFSET ?",
            params + [page_size, (page - 1) * page_size])
        return render("gallery.html", faces=faces, files=[], total=total, page=page, last_page=last_page,
                      links=_page_links("/", filters, page, last_page, page_size), **common)

    @app.get("/faces/{image_id}", response_class=HTMLResponse, summary="One face: label, votes, every reader's guess")
    def face_page(image_id: int = ImageIdPath) -> HTMLResponse:
        rows = reader.query(f"{_FACE_SELECT} WHERE i.id = ?", [image_id])
        if not rows:
            raise HTTPException(404, f"no image with id {image_id}")
        face = rows[0]
        have = tables()
        crop = None
        if "face_crops" in have:
            found = reader.query("SELECT status, reason, n_faces FROM face_crops WHERE image_id = ?", [image_id])
            crop = found[0] if found else None
        twins = reader.query(
            "SELECT i.id, ds.source, e.emotion, i.split, i.usage FROM images i JOIN data_sources ds ON ds.id = i.source_id "
            "JOIN emotions e ON e.id = i.emotion_id WHERE i.content_hash = ? AND i.id <> ? ORDER BY i.id LIMIT 50",
            [face["content_hash"], image_id])
        units = reader.query(
            "SELECT fs.action_unit, fs.description, fs.facial_muscle, feu.note FROM facs_emotions_units feu "
            "JOIN facs_single_units fs ON feu.action_units = fs.action_unit WHERE feu.emotion = ? "
            "ORDER BY fs.action_unit", [face["emotion_id"]])
        votes, votes_note = [], NO_VOTES
        if have.get("human_votes", 0) > 0:
            found = reader.query("SELECT * FROM human_votes WHERE image_id = ?", [image_id])
            if found:
                total = sum(found[0].get(c) or 0 for c in VOTE_COLUMNS)
                label = face["emotion"].lower()
                votes = [{"name": "not a face" if c == "NF" else c, "count": found[0].get(c) or 0,
                          "share": (found[0].get(c) or 0) / total if total else 0.0, "is_label": c == label}
                         for c in VOTE_COLUMNS]
                votes_note = f"{total} votes" + (" (synthetic)" if found[0].get("synthetic") else "")
        predictions, predictions_note = [], NO_PREDICTIONS
        if have.get("predictions", 0) > 0:
            runs = "model_runs" in have
            found = reader.query(
                "SELECT p.*, e.emotion AS predicted, " + ("coalesce(m.reader, p.model_run_id) AS reader_name, "
                                                         "m.synthetic AS run_synthetic, m.caveat " if runs else
                                                         "p.model_run_id AS reader_name, NULL AS run_synthetic, NULL AS caveat ")
                + "FROM predictions p JOIN emotions e ON e.id = p.emotion_id "
                + ("LEFT JOIN model_runs m ON m.id = p.model_run_id " if runs else "")
                + "WHERE p.image_id = ? ORDER BY reader_name", [image_id])
            for row in found:
                probs = [{"name": c, "p": row.get(f"p_{c}")} for c in SEVEN if row.get(f"p_{c}") is not None]
                chosen = row.get(f"p_{row['predicted'].lower()}")
                predictions.append({"reader": row["reader_name"], "predicted": row["predicted"], "p": chosen,
                                    "right": row["emotion_id"] == face["emotion_id"], "probabilities": probs,
                                    "synthetic": row["run_synthetic"], "caveat": row["caveat"]})
            predictions_note = "" if predictions else "No reader has a prediction for this face (models score test images)."
        return render("face.html", face=face, crop=crop, twins=twins, units=units, votes=votes, votes_note=votes_note,
                      predictions=predictions, predictions_note=predictions_note)

    @app.get("/disagreements", response_class=HTMLResponse,
             summary="Faces the model gets right and most annotators wrong, and the reverse, per emotion")
    def disagreements(
        reader_id: str = Query("", max_length=200, description="model_runs id (empty: the declared model)."),
        emotion: str = Query("", pattern=_ID_TEXT, description="Show the faces of this emotion (empty: all)."),
        examples: int = Query(12, ge=0, le=60, description="Faces shown per emotion and kind."),
        leak_free: bool = Query(False, description="Only test faces whose bytes are not also in Training."),
    ) -> HTMLResponse:
        have = tables()
        _, emotions = vocab()
        emotion_id = _optional_id(emotion, "emotion")
        context = dict(emotions=emotions, readers=[], chosen=None, counts=[], groups=[], note="", emotion=emotion,
                       reader_id=reader_id, leak_free=leak_free)
        if have.get("predictions", 0) <= 0:
            return render("disagreements.html", **{**context, "note": NO_PREDICTIONS})
        if have.get("human_votes", 0) <= 0:
            return render("disagreements.html", **{**context, "note": "No FER+ votes in the snapshot: people's "
                                                   "answers are needed to say where they and the model disagree."})
        runs = "model_runs" in have
        readers = reader.query(
            "SELECT p.model_run_id AS id, " + ("coalesce(m.reader, p.model_run_id)" if runs else "p.model_run_id")
            + " AS name, count(*) AS n FROM predictions p "
            + ("LEFT JOIN model_runs m ON m.id = p.model_run_id " if runs else "")
            + "GROUP BY ALL ORDER BY n DESC, id")
        declared = reader.query("SELECT value FROM warehouse_info WHERE key = 'declared_model_run'") \
            if "warehouse_info" in have else []
        ids = [r["id"] for r in readers]
        chosen = reader_id or (declared[0]["value"] if declared and declared[0]["value"] in ids else ids[0])
        if chosen not in ids:
            raise HTTPException(404, "no predictions from that reader; pick one from the list")
        leak = _LEAK_FREE if leak_free else ""
        rows = reader.query(_DISAGREEMENT_SQL.replace("{leak_free}", leak), [chosen])
        counts = []
        for e in emotions:
            if e["id"] > 6:
                continue
            mine = [r for r in rows if r["label_id"] == e["id"]]
            counts.append({"id": e["id"], "emotion": e["emotion"],
                           "model_right": sum(r["kind"] == "model" for r in mine),
                           "people_right": sum(r["kind"] == "people" for r in mine)})
        scored = {r["label_id"]: r["n"] for r in reader.query(_SCORED_SQL.replace("{leak_free}", leak), [chosen])}
        for c in counts:
            c["scored"] = scored.get(c["id"], 0)
        groups = []
        for c in counts:
            if emotion_id is not None and c["id"] != emotion_id:
                continue
            for kind, title in (("model", "model right, most people wrong"), ("people", "most people right, model wrong")):
                faces = [r for r in rows if r["label_id"] == c["id"] and r["kind"] == kind]
                if faces:
                    groups.append({"emotion": c["emotion"], "kind": kind, "title": title, "total": len(faces),
                                   "faces": faces[:examples]})
        name = next(r["name"] for r in readers if r["id"] == chosen)
        return render("disagreements.html", **{**context, "readers": readers, "chosen": chosen, "chosen_name": name,
                                               "counts": counts, "groups": groups,
                                               "total_model": sum(c["model_right"] for c in counts),
                                               "total_people": sum(c["people_right"] for c in counts)})

    @app.get("/report", response_class=HTMLResponse, summary="The benchmark report with its plots")
    def report() -> HTMLResponse:
        import markdown

        md_path = reports_dir / "benchmark.md"
        body, scores, verdicts = "", [], []
        if md_path.is_file():
            body = markdown.markdown(md_path.read_text(encoding="utf-8"), extensions=["tables"])
            body = _LOCAL_IMG.sub(lambda m: f"{m.group(1)}/report/files/{m.group(2)}{m.group(3)}", body)
            body = offline_html(body)
        have = tables()
        if have.get("benchmark_scores", 0) > 0:
            scores = reader.query("SELECT dataset, reference, variant, reader, metric, value, ci_low, ci_high, n "
                                  "FROM benchmark_scores ORDER BY dataset, reference, variant, metric, value DESC")
        if have.get("verdicts", 0) > 0:
            verdicts = reader.query("SELECT dataset, reference, variant, reader, against, difference_pp, ci_low_pp, "
                                    "ci_high_pp, verdict, images FROM verdicts ORDER BY dataset, reference, variant, reader")
        response = render("report.html", body=body, scores=scores, verdicts=verdicts)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/report/files/{name}", include_in_schema=False)
    def report_file(name: str) -> FileResponse:
        path = reports_dir / name
        if not REPORT_FILE.match(name) or not path.is_file():
            raise HTTPException(404, "no such report file")
        return FileResponse(path)


_FACE_SELECT = _SELECT.replace(
    "i.synthetic\n", "i.synthetic, i.rel_path, i.label_raw, i.duplicate_cross_split, i.duplicate_label_conflict\n")

_LEAK_FREE = "AND NOT (i.duplicate_cross_split OR i.duplicate_label_conflict)"  # a constant fragment

_SCORED_SQL = """
SELECT i.emotion_id AS label_id, count(*) AS n
FROM predictions p JOIN images i ON i.id = p.image_id JOIN human_votes v ON v.image_id = p.image_id
WHERE p.model_run_id = ? AND i.split = 'test' {leak_free}
GROUP BY ALL
"""

# The same rule as the warehouse view `disagreements` (FER-2013 label as truth; "most people" = over half the
# votes), for any reader: the model right and at most half the votes for the label, or the model wrong and over
# half the votes for it.
_DISAGREEMENT_SQL = """
WITH votes AS (
    SELECT image_id, neutral + happiness + surprise + sadness + anger + disgust + fear + contempt + unknown + "NF" AS total,
           [anger, disgust, fear, happiness, sadness, surprise, neutral] AS seven
    FROM human_votes
)
SELECT i.id, i.emotion_id AS label_id, e.emotion AS label, pe.emotion AS model_says,
       v.seven[i.emotion_id + 1] AS votes_for_label, v.total AS votes,
       CASE WHEN p.emotion_id = i.emotion_id THEN 'model' ELSE 'people' END AS kind
FROM predictions p
JOIN images i ON i.id = p.image_id
JOIN votes v ON v.image_id = p.image_id
JOIN emotions e ON e.id = i.emotion_id
JOIN emotions pe ON pe.id = p.emotion_id
WHERE p.model_run_id = ? AND i.split = 'test' AND v.total > 0 AND i.emotion_id BETWEEN 0 AND 6 {leak_free}
  AND ((p.emotion_id = i.emotion_id AND 2 * v.seven[i.emotion_id + 1] < v.total)
    OR (p.emotion_id <> i.emotion_id AND 2 * v.seven[i.emotion_id + 1] > v.total))
ORDER BY i.emotion_id, kind, votes_for_label, i.id
"""


def _page_links(route: str, params: dict, page: int, last_page: int, page_size: int) -> dict:
    kept = {k: v for k, v in params.items() if v not in ("", None)}

    def link(p: int) -> str:
        return f"{route}?{urlencode({**kept, 'page': p, 'page_size': page_size})}"

    return {"first": link(1) if page > 1 else None, "previous": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < last_page else None, "last": link(last_page) if page < last_page else None}
