"""Pixabay and DuckDuckGo (RapidAPI) image search, and resumable image downloads. Pure module (no Dagster).

Search results keep what the pipeline needs (ids, image and page URLs, size, tags) and drop uploader names,
user ids and avatar URLs: no personal data is stored. DuckDuckGo's results keep only the site of the page an
image sits on and no title, since both can name a person. Stored URLs never carry an API key (webclient.strip_secrets).
A hit that is not what the API documents (no http(s) image URL, a port past 65535, a size that is not a number)
is rejected alone, with its reason, into the caller's `rejected` list.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from femo_pipeline import imaging
from femo_pipeline.files import write_bytes_atomic
from femo_pipeline.folders import read_regular_file
from femo_pipeline.numerals import whole_number
from femo_pipeline.webclient import (
    MAX_URL,
    DownloadDeadline,
    PoliteClient,
    WebError,
    content_length,
    read_body,
    redact,
    strip_secrets,
    url_problem,
)

PIXABAY_URL = "https://pixabay.com/api/"
DDG_URL = "https://duckduckgo10.p.rapidapi.com/search/images"
DDG_HOST = "duckduckgo10.p.rapidapi.com"

HIT_COLUMNS = ("source", "emotion_id", "query", "remote_id", "image_url", "page_url", "width", "height", "tags")
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "WEBP": "webp", "TIFF": "tif"}


class SearchError(ValueError):
    """Bad search parameters or a response that is not what the API documents."""


MAX_TEXT = 500  # characters kept of a hit's tags or title
MAX_REMOTE_ID = 100


def _url(value, what: str) -> str:
    """An http(s) URL with a host and a valid port, or a SearchError saying what is wrong with it."""
    if (problem := url_problem(value)) is not None:
        raise SearchError(f"{what} {problem}")
    return value


def _size(value, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) < 10 and (number := whole_number(value)) is not None:
        value = number
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise SearchError(f"{what} is not a pixel count: {str(value)[:40]!r}")
    return value


def _site(url) -> str | None:
    """scheme://host/ of a page URL (no path, query, user or port), or None when it is not an http(s) URL."""
    try:
        parts = urlsplit(url) if isinstance(url, str) and len(url) <= MAX_URL else None
        host = parts.hostname if parts else None
    except ValueError:
        return None
    return f"{parts.scheme}://{host}/" if host and parts.scheme in ("http", "https") else None


def _text(value) -> str | None:
    return None if value is None else str(value)[:MAX_TEXT]


def _hit(source: str, emotion_id: int, query: str, remote_id, image_url, page_url, width, height, tags,
         secrets: tuple[str, ...]) -> dict:
    """One hit as stored (HIT_COLUMNS), checked: a SearchError names what is wrong with it."""
    if isinstance(remote_id, (dict, list)) or remote_id is None or len(str(remote_id)) > MAX_REMOTE_ID:
        raise SearchError(f"id is not a short text or number: {str(remote_id)[:40]!r}")
    try:
        page = strip_secrets(_url(page_url, "page URL"), secrets)
    except SearchError:
        page = None  # a broken page link costs the link only: the image is what is downloaded
    tags = None if tags is None else _text(redact(str(tags), secrets))  # masked first, then cut
    return {"source": source, "emotion_id": emotion_id, "query": query, "remote_id": redact(str(remote_id), secrets),
            "image_url": strip_secrets(_url(image_url, "image URL"), secrets), "page_url": page,
            "width": _size(width, "width"), "height": _size(height, "height"), "tags": tags}


def _keep(hits: list[dict], rejected: list | None, remote_id, build, secrets: tuple[str, ...]) -> None:
    """Append build()'s hit, or record why it was rejected (the API's words in it with every secret masked)."""
    try:
        hits.append(build())
    except SearchError as exc:
        if rejected is not None:
            rejected.append({"remote_id": redact(str(remote_id), secrets)[:MAX_REMOTE_ID],
                             "reason": redact(str(exc), secrets)})


def _json(answer: tuple[bytes, requests.Response]) -> dict:
    body, response = answer
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise SearchError(f"response is not JSON (content-type {response.headers.get('Content-Type')!r})") from None
    if not isinstance(data, dict):
        raise SearchError(f"response JSON is a {type(data).__name__}, not an object")
    return data


def pixabay_search(client: PoliteClient, key: str, query: str, emotion_id: int, count: int,
                   per_page: int = 50, base_url: str = PIXABAY_URL, rejected: list | None = None) -> list[dict]:
    """Up to `count` photo hits for `query`, paging through the API (image_type=photo, people, safesearch).
    Hits that are not what the API documents go to `rejected` ({remote_id, reason}) instead."""
    if not 3 <= per_page <= 200:
        raise SearchError(f"per_page must be between 3 and 200 (Pixabay's limits), not {per_page}")
    if count < 1:
        raise SearchError(f"count must be positive, not {count}")
    if not query.strip() or len(query) > 100:
        raise SearchError(f"query must be 1-100 characters (Pixabay's limit), got {len(query)}")
    hits: list[dict] = []
    page = 1
    while len(hits) < count:
        params = {"key": key, "q": query, "image_type": "photo", "category": "people", "safesearch": "true",
                  "per_page": per_page, "page": page}
        try:
            data = _json(client.fetch(base_url, params=params))
        except WebError as exc:
            if exc.status == 400 and "out of valid range" in str(exc):  # Pixabay's answer past the last page
                break
            raise
        batch = data.get("hits")
        if not isinstance(batch, list):
            raise SearchError("Pixabay response has no 'hits' list")
        for hit in batch:
            if not isinstance(hit, dict) or "id" not in hit:
                if rejected is not None:
                    rejected.append({"remote_id": None, "reason": "not an object with an id"})
                continue
            _keep(hits, rejected, hit["id"], lambda hit=hit: _hit(
                "pixabay", emotion_id, query, hit["id"], hit.get("largeImageURL") or hit.get("webformatURL"),
                hit.get("pageURL"), hit.get("imageWidth"), hit.get("imageHeight"), hit.get("tags"), client.secrets),
                client.secrets)
        total = data.get("totalHits") or 0
        if not isinstance(total, int) or isinstance(total, bool):
            raise SearchError(f"Pixabay's totalHits is not a number: {str(total)[:40]!r}")
        if not batch or page * per_page >= min(total, 500):  # the API serves at most 500 hits per query
            break
        page += 1
    return hits[:count]


def ddg_search(client: PoliteClient, key: str, query: str, emotion_id: int, count: int,
               base_url: str = DDG_URL, host: str = DDG_HOST, rejected: list | None = None) -> list[dict]:
    """Up to `count` image results for `query` from DuckDuckGo image search on RapidAPI (one page). Results that
    are not what the API documents go to `rejected` ({remote_id, reason}) instead."""
    if count < 1:
        raise SearchError(f"count must be positive, not {count}")
    headers = {"X-RapidAPI-Key": key, "X-RapidAPI-Host": host}
    data = _json(client.fetch(base_url, params={"term": query, "region": "us-en", "safeSearch": "strict"},
                              headers=headers))
    if data.get("status") is False or "data" not in data:
        message = " ".join(client.redact(str(data.get("message"))).split())[:200]  # masked, then cut
        raise SearchError(f"DuckDuckGo API answered without data: {message}")
    rows = data["data"]
    if not isinstance(rows, list):
        raise SearchError("DuckDuckGo response 'data' is not a list")
    hits: list[dict] = []
    for item in rows:
        if not isinstance(item, dict) or not item.get("image"):
            continue
        image = item["image"]
        # results carry no id: name the file by its URL, so a resumed download finds the same file again
        remote_id = hashlib.sha256(str(image).encode()).hexdigest()[:20]
        # the page a result sits on, and its title, can name a person (a social profile, "Jane Doe on ..."):
        # only the page's site is kept, and no title
        _keep(hits, rejected, remote_id, lambda item=item, image=image, remote_id=remote_id: _hit(
            "ddg", emotion_id, query, remote_id, image, _site(item.get("url")), item.get("width"), item.get("height"),
            None, client.secrets), client.secrets)
    return hits[:count]


@dataclass
class DownloadResult:
    image_url: str
    path: str | None
    status: str  # ok / skipped (already there) / failed
    reason: str | None
    file_size_bytes: int | None
    content_hash: str | None


def download_image(client: PoliteClient, url: str, folder: Path, stem: str, max_bytes: int = imaging.DEFAULT_MAX_BYTES,
                   deadline: float | None = None) -> DownloadResult:
    """Download one image into folder/<stem>.<ext>, the extension taken from the bytes. Resumable: a file
    already there (any extension) is not fetched again. Non-images and broken images are not kept.

    `deadline` (default: the client's download_deadline) bounds the whole download in seconds; Content-Length
    is compared with the bytes that came over the wire (before any gzip decoding), and the response is always
    closed, whatever happens."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob(f"{stem}.*"))
    existing = [p for p in existing if not p.name.endswith(".tmp")]
    if existing:
        # what is in the way is read as a regular file only: a folder, FIFO or link there is reported, not followed
        data, _, problem = read_regular_file(str(existing[0]), max_bytes)
        if problem:
            return DownloadResult(url, None, "failed", f"{existing[0].name} is in the download folder and cannot be "
                                  f"kept ({problem}); remove it to download again", None, None)
        return DownloadResult(url, str(existing[0]), "skipped", "already downloaded", len(data), imaging.content_hash(data))
    deadline = client.download_deadline if deadline is None else deadline
    deadline_at = time.monotonic() + deadline
    response = None
    try:
        response = client.get(url, stream=True, deadline_at=deadline_at)
        data, wire_bytes = read_body(response, max_bytes, deadline_at, deadline)
        declared = response.headers.get("Content-Length")
        kind = response.headers.get("Content-Type", "?")
    except WebError as exc:
        return DownloadResult(url, None, "failed", str(exc), None, None)
    except DownloadDeadline as exc:
        return DownloadResult(url, None, "failed", str(exc), None, None)
    except Exception as exc:  # broken transfers surface as many exception types
        return DownloadResult(url, None, "failed", f"transfer broke off ({type(exc).__name__})", None, None)
    finally:
        if response is not None:
            response.close()
    try:
        declared = content_length(declared)
    except ValueError as exc:
        return DownloadResult(url, None, "failed", str(exc), len(data), None)
    if declared is not None and declared != wire_bytes and len(data) <= max_bytes:
        return DownloadResult(url, None, "failed", f"truncated: got {wire_bytes} of {declared} bytes", len(data), None)
    row = imaging.inspect_image(data, max_bytes=max_bytes)
    if row["status"] != imaging.OK:
        return DownloadResult(url, None, "failed", f"{row['reason']} (content-type {kind})", len(data), row["content_hash"])
    path = write_bytes_atomic(data, folder / f"{stem}.{_EXTENSIONS[row['image_format']]}")
    return DownloadResult(url, str(path), "ok", None, len(data), row["content_hash"])


def safe_stem(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:80]
