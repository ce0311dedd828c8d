"""Small file helpers: atomic writes so a crash never leaves half a file behind, and reading one configured input
file without blocking on a FIFO or reading without end. Pure module."""

from __future__ import annotations

import contextlib
import os
import stat
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


def read_fd(fd: int, size: int, max_bytes: int) -> bytes:
    """An open file's bytes, at most max_bytes + 1 (so a caller sees it is over), asking for what fstat announced
    (`size`, +1 to see growth) rather than max_bytes at once: os.read allocates what it is asked for."""
    chunks, got = [], 0
    while got <= max_bytes:
        want = min(max_bytes + 1 - got, max(size + 1 - got, 65536))
        chunk = os.read(fd, want)
        chunks.append(chunk)
        got += len(chunk)
        if len(chunk) < want:  # a short read of a regular file is its end
            break
    return b"".join(chunks)


class InputFileError(ValueError):
    """A configured input file cannot be read: absent, not a regular file, too large or unreadable."""


MAX_INPUT_BYTES = 512 * 1024 * 1024


def read_input_file(path: str | os.PathLike, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of the regular file a user configured (a link to one is followed: the user chose the path).

    Opened non-blocking and checked with fstat before reading, so a FIFO, a device such as /dev/zero or a folder
    raises InputFileError with the reason instead of blocking, reading without end or raising IsADirectoryError;
    so does a file over max_bytes (checked on what is read too, in case it grows)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputFileError(f"not found: {path}") from None
    except OSError as exc:
        raise InputFileError(f"cannot be read: {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise InputFileError(f"{path} is {kind}; give the path of a file")
        if st.st_size > max_bytes:
            raise InputFileError(f"{path} has {st.st_size} bytes, more than the limit of {max_bytes}")
        data = read_fd(fd, st.st_size, max_bytes)
        if len(data) > max_bytes:
            raise InputFileError(f"{path} has more than the limit of {max_bytes} bytes")
        return data
    except OSError as exc:
        raise InputFileError(f"cannot be read: {path}: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)
