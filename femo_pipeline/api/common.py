"""What the routes and the pages share: the paging and id limits, the folders of templates and static files
(femo_pipeline/templates, femo_pipeline/static, and the Swagger UI / ReDoc files of fastapi-offline), and the
FastAPI parameter declarations for pages and ids. Pure module (no Dagster)."""

from __future__ import annotations

from pathlib import Path

from fastapi import Path as PathParam
from fastapi import Query

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # ids are BIGINT: anything outside is refused before SQL sees it
MAX_PAGE = INT64_MAX // MAX_PAGE_SIZE  # keeps (page - 1) * page_size a valid OFFSET
DEFAULT_MAX_PNG_SIDE = 1024

HERE = Path(__file__).resolve().parents[1]  # femo_pipeline/ (this module is in femo_pipeline/api/)
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def _docs_static() -> Path:
    """Swagger UI and ReDoc files shipped by the fastapi-offline package (MIT; their own licenses inside)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


DOCS_STATIC = _docs_static()

PageQ = Query(1, ge=1, le=MAX_PAGE, description="Page number, from 1.")
PageSizeQ = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, at most {MAX_PAGE_SIZE}.")


def _id_query(description: str):
    return Query(..., ge=INT64_MIN, le=INT64_MAX, description=description)


ImageIdPath = PathParam(..., ge=INT64_MIN, le=INT64_MAX, description="Image id (a signed 64-bit integer)")
