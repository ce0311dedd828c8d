"""What the HTML pages share: their texts and limits, the form-id pattern, the Jinja2 environment over
femo_pipeline/templates, the report's HTML made offline (no reference to another host) and the links between
pages of a list. Pure module (no Dagster)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from fastapi import HTTPException

from femo_pipeline.api.common import INT64_MAX, INT64_MIN, TEMPLATES

GALLERY_PAGE_SIZE = 60
SEVEN = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")  # emotion ids 0..6
CROP_STATUSES = ("ok", "multiple_faces", "no_face", "unreadable", "not_cropped")
NO_PREDICTIONS = ("No predictions yet: the snapshot has no model predictions (materialize contender_predictions "
                  "and serving_snapshot).")
NO_VOTES = "No FER+ votes for this face (votes exist only for FER-2013 test images, on real data)."
_ID_TEXT = r"^(-?[0-9]{1,18})?$"  # an optional id from a form: empty means "any"; 18 digits always fit in 64 bits
_EXTERNAL = re.compile(r"""<a\s[^>]*href=["'](https?:)?//([^"']*)["'][^>]*>(.*?)</a>""", re.S | re.I)
_EXTERNAL_IMG = re.compile(r"""<img\s[^>]*src=["'](https?:)?//[^"']*["'][^>]*>""", re.I)
_LOCAL_IMG = re.compile(r"""(<img\s[^>]*src=["'])([A-Za-z0-9_.-]+\.(?:png|svg|jpg))(["'])""", re.I)
REPORT_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.(png|svg|jpg)$")


def crowd_plurality(votes: dict) -> tuple[list[str], int, int]:
    """The emotions most of a face's FER+ annotators chose among the seven (ties: all of them), the votes for
    it and the seven-class votes in all; ([], 0, 0) when nobody voted one of the seven."""
    counts = {c: int(votes.get(c) or 0) for c in SEVEN}
    top = max(counts.values())
    if top == 0:
        return [], 0, 0
    return [c for c in SEVEN if counts[c] == top], top, sum(counts.values())


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


def _page_links(route: str, params: dict, page: int, last_page: int, page_size: int) -> dict:
    kept = {k: v for k, v in params.items() if v not in ("", None)}

    def link(p: int) -> str:
        return f"{route}?{urlencode({**kept, 'page': p, 'page_size': page_size})}"

    return {"first": link(1) if page > 1 else None, "previous": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < last_page else None, "last": link(last_page) if page < last_page else None,
            "self": link(page)}
