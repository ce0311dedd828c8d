"""Small file helpers: atomic writes so a crash never leaves half a file behind. Pure module."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a unique temporary path beside `path`; on success it replaces `path` in one rename, on error it is
    removed. Readers see the old file or the whole new one, never a half-written one, and two writers of the same
    file never share a temporary name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(table: pa.Table, path: str | os.PathLike) -> Path:
    # image bytes are already compressed (JPEG/PNG): storing them raw reads back faster at the same size
    compression = {f.name: ("none" if pa.types.is_binary(f.type) else "zstd") for f in table.schema}
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=compression)
    return Path(path)


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    return write_bytes_atomic(text.encode(), path)


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
