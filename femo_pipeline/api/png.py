"""Pixels served as PNG: `png_for_serving` (stored bytes re-encoded as PNG at most max_side pixels on the
long side, or passed through when they already are) and `PngCache`, the small LRU of encoded PNGs per
snapshot and image. Pure module (no Dagster)."""

from __future__ import annotations

import threading
from collections import OrderedDict

import cv2

from femo_pipeline import imaging

PNG_CACHE_ENTRIES = 64
PNG_CACHE_BYTES = 64 * 2**20


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
    pixels = imaging.decode(data)  # 8-bit, as every stage decodes
    if pixels is None:
        return None
    h, w = pixels.shape[:2]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        pixels = cv2.resize(pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    elif image_format == "PNG":
        return bytes(data)
    return cv2.imencode(".png", pixels)[1].tobytes()
