"""The app's ASGI middleware: `HeadAsGet` (HEAD answered like GET everywhere) and `SnapshotCache` (an ETag per
resource and Cache-Control on every successful GET, 304 on a match, and the answers of the current snapshot kept
in memory, in a `_CacheStore`). Pure module (no Dagster)."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

from femo_pipeline.api.common import STATIC, TEMPLATES

UNCACHED_PREFIXES = ("/static/", "/report")  # files on disk: StaticFiles and the report page answer for themselves


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


def _code_version() -> str:
    """A digest of the code and templates that shape answers: a new release changes every ETag (the code:
    every module of this package)."""
    digest = hashlib.sha256()
    for module in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(module.read_bytes())
    for folder in (TEMPLATES, STATIC):
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()[:12]


class _CacheStore:
    """Responses of one snapshot: (path, query) -> (headers, body, etag), LRU-bounded in entries and bytes."""

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

    def put(self, token: str, key, headers: list, body: bytes, etag: bytes) -> None:
        if token != self.token or len(body) > self.max_item or key in self.items:
            return
        self.items[key] = (headers, body, etag)
        self.bytes += len(body)
        while len(self.items) > self.entries or self.bytes > self.max_bytes:
            _, (_, old, _) = self.items.popitem(last=False)
            self.bytes -= len(old)


def matches(if_none_match: bytes | None, etag: bytes) -> bool:
    """Whether an If-None-Match header names this ETag: '*' (the resource exists: only a 200 is asked), or a
    list of tags compared weakly (W/"x" matches "x"), as RFC 9110 says for If-None-Match."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == b"*":
        return True
    return any(tag.strip().removeprefix(b"W/") == etag for tag in if_none_match.split(b","))


class SnapshotCache:
    """ASGI middleware: an ETag and Cache-Control on every successful GET, 304 on a matching If-None-Match, and
    the answers themselves kept in memory per snapshot.

    The ETag is per resource: a digest of the answer's type and bytes and of the snapshot's identity (inode,
    mtime, size: one stat per request, no DuckDB) and the code version, so a tag from one URL never validates
    another, and a new snapshot or release changes every tag. Only 200 answers are tagged, kept or compared:
    errors always go through the app and carry no ETag, so If-None-Match (even '*') never turns a 404 into a
    304. It runs in the event loop only, so it needs no lock.
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
    def etag(token: str, headers: list, body: bytes) -> bytes:
        kind = next((v for k, v in headers if k == b"content-type"), b"")
        digest = hashlib.blake2b(token.encode() + b"\0" + kind + b"\0" + body, digest_size=12).hexdigest()
        return f'"{digest}"'.encode()

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
        store = self.store
        store.switch(token)
        cache_control = self.cache_control(path)
        if_none_match = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
        key = (path, scope.get("query_string", b""))
        found = store.get(key)
        if found is not None:
            store.hits += 1
            headers, body, etag = found
            await self._answer(send, headers, body, etag, cache_control, if_none_match)
            return
        store.misses += 1
        state: dict = {"start": None, "chunks": []}

        async def capture(message):
            if message["type"] == "http.response.start":
                if message["status"] != 200:  # an error goes out as the app made it, untagged
                    await send(message)
                    return
                state["start"] = message
            elif state["start"] is None:
                await send(message)
            else:  # a 200: held until complete, then tagged
                state["chunks"].append(message.get("body", b""))
                if not message.get("more_body"):
                    body = b"".join(state["chunks"])
                    headers = [(k, v) for k, v in state["start"].get("headers", [])
                               if k not in (b"etag", b"cache-control", b"content-length")]
                    etag = self.etag(token, headers, body)
                    headers.append((b"content-length", str(len(body)).encode()))
                    store.put(token, key, headers, body, etag)
                    await self._answer(send, headers, body, etag, cache_control, if_none_match)

        await self.app(scope, receive, capture)

    async def _answer(self, send, headers: list, body: bytes, etag: bytes, cache_control: bytes,
                      if_none_match: bytes | None) -> None:
        """A 200 with its ETag, or a 304 when the client already holds it."""
        if matches(if_none_match, etag):
            self.store.not_modified += 1
            await send({"type": "http.response.start", "status": 304,
                        "headers": [(b"etag", etag), (b"cache-control", cache_control)]})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*headers, (b"etag", etag), (b"cache-control", cache_control)]})
        await send({"type": "http.response.body", "body": body})
