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

The package re-exports its public names (`from femo_pipeline.api import create_app`; uvicorn's
"femo_pipeline.api:create_app"); the code lives in: common (limits, folders, parameters), snapshot
(SnapshotReader), png (PNG encoding and its LRU), middleware (HeadAsGet, SnapshotCache), queries (SQL),
routes (create_app and the JSON routes), pages (the HTML pages) and rendering (what the pages share).
A test that patches OpenCV patches the cv2 module itself (femo_pipeline.api.png.cv2 is that module).
"""

from femo_pipeline.api.common import (
    DEFAULT_MAX_PNG_SIDE,
    DEFAULT_PAGE_SIZE,
    DOCS_STATIC,
    HERE,
    INT64_MAX,
    INT64_MIN,
    MAX_PAGE,
    MAX_PAGE_SIZE,
    STATIC,
    TEMPLATES,
    ImageIdPath,
    PageQ,
    PageSizeQ,
)
from femo_pipeline.api.middleware import UNCACHED_PREFIXES, HeadAsGet, SnapshotCache
from femo_pipeline.api.pages import add_pages
from femo_pipeline.api.png import PNG_CACHE_BYTES, PNG_CACHE_ENTRIES, PngCache, png_for_serving
from femo_pipeline.api.queries import DUPLICATE_FILTERS, SPLITS
from femo_pipeline.api.rendering import (
    CROP_STATUSES,
    GALLERY_PAGE_SIZE,
    NO_PREDICTIONS,
    NO_VOTES,
    REPORT_FILE,
    SEVEN,
    html_escape,
    offline_html,
)
from femo_pipeline.api.routes import AspectRatio, Colors, create_app
from femo_pipeline.api.snapshot import NO_SNAPSHOT, SnapshotReader, log

__all__ = [
    "CROP_STATUSES", "DEFAULT_MAX_PNG_SIDE", "DEFAULT_PAGE_SIZE", "DOCS_STATIC", "DUPLICATE_FILTERS",
    "GALLERY_PAGE_SIZE", "HERE", "INT64_MAX", "INT64_MIN", "MAX_PAGE", "MAX_PAGE_SIZE", "NO_PREDICTIONS",
    "NO_SNAPSHOT", "NO_VOTES", "PNG_CACHE_BYTES", "PNG_CACHE_ENTRIES", "REPORT_FILE", "SEVEN", "SPLITS", "STATIC",
    "TEMPLATES", "UNCACHED_PREFIXES", "AspectRatio", "Colors", "HeadAsGet", "ImageIdPath",
    "PageQ", "PageSizeQ", "PngCache", "SnapshotCache", "SnapshotReader", "add_pages", "create_app", "html_escape",
    "log", "offline_html", "png_for_serving",
]
