"""Small file helpers: atomic writes so a crash never leaves half a file behind. Pure module."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_parquet_atomic(table: pa.Table, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # image bytes are already compressed (JPEG/PNG): storing them raw reads back faster at the same size
    compression = {f.name: ("none" if pa.types.is_binary(f.type) else "zstd") for f in table.schema}
    pq.write_table(table, tmp, compression=compression)
    os.replace(tmp, path)
    return path


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    return write_bytes_atomic(text.encode(), path)


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
