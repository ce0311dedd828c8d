"""The app's ASGI middleware: `HeadAsGet` (HEAD answered like GET everywhere) and `SnapshotCache` (ETag and
Cache-Control on every successful GET, 304 on a match, and the answers of the current snapshot kept in memory,
in a `_CacheStore`). Pure module (no Dagster)."""

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
