"""Reading and inspecting scanned entries in parallel processes into Arrow tables (SCHEMA), bytes of usable images
included; with a sink, part by part through a spool folder. Pure module (no Dagster)."""

from __future__ import annotations

import collections
import contextlib
import errno
import gc
import multiprocessing
import operator
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

import pyarrow as pa
import pyarrow.ipc as ipc

from femo_pipeline import imaging
from femo_pipeline.files import read_fd
from femo_pipeline.folders import entries as entries_module
from femo_pipeline.folders.entries import FileEntry, _gc_paused, _kind, _usage, name_fields
from femo_pipeline.folders.tree import FILE_FLAGS, LINK_APPEARED, TreeFds, split

SCHEMA = pa.schema(
    [
        ("rel_path", pa.string()),
        ("split", pa.string()),
        ("usage", pa.string()),
        ("subject", pa.string()),  # who is shown, from the file name (the source's name pattern), else NULL
        ("sequence", pa.string()),
        ("label_raw", pa.string()),
        ("emotion_id", pa.int32()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("channels", pa.int32()),
        ("image_format", pa.string()),
        ("color_space", pa.string()),
        ("file_size_bytes", pa.int64()),
        ("content_hash", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("content", pa.binary()),
    ]
)


def read_regular_file(path: str, max_bytes: int, tree: TreeFds | None = None,
                      names_met: dict | None = None) -> tuple[bytes | None, int | None, str | None]:
    """(bytes, size, problem) of a regular file; never blocks on a FIFO nor follows a symbolic link.

    With `tree`, `path` is '/'-separated names under its root, each folder on the way opened from the one
    before without following a link (a folder swapped for a link since the scan is refused, not followed);
    without, a path whose last name only is not followed. The file is opened non-blocking, then checked with
    fstat: anything but a regular file (swapped in since the scan) is refused unread, and so is a file with
    more names (hard links) than the scan met in the tree (`names_met`, {(device, inode): names}; absent: one):
    its other name is elsewhere, perhaps outside the root. A file over max_bytes is described by its size only.
    """
    try:
        fd = tree.open_file(split(path)) if tree is not None else os.open(path, FILE_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, None, LINK_APPEARED
        return None, None, f"unreadable file: {exc.strerror or type(exc).__name__}"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, None, f"not a regular file ({_kind(st.st_mode)}), not read"
        if st.st_nlink > 1:
            met = (names_met or {}).get((st.st_dev, st.st_ino), 1)
            if st.st_nlink > met:
                return None, None, (f"hard link: the file has {st.st_nlink} names and only {met} in the source "
                                    "tree, so another may be outside the source root; not read")
        if st.st_size > max_bytes:
            return None, st.st_size, f"file too large: {st.st_size} bytes > limit {max_bytes}"
        return read_fd(fd, st.st_size, max_bytes), None, None
    except OSError as exc:
        return None, None, f"unreadable file: {exc.strerror or type(exc).__name__}"
    finally:
        os.close(fd)


# the fields of a FileEntry a worker needs, as a plain tuple: a chunk of frozen dataclasses costs many times
# more to pickle in the parent and unpickle in the worker than tuples of strings
_ROW = operator.attrgetter("rel_path", "split", "label_raw", "emotion_id", "problem", "fs_path", "openable")


def _inspect_chunk(args: tuple[str, list[tuple], tuple, dict, str | None]) -> pa.Table:
    root, rows, limits, names_met, pattern = args
    try:
        tree = TreeFds(root)
    except OSError as exc:  # the resolved root itself is gone or replaced since the scan
        tree, gone = None, f"source root cannot be opened: {exc.strerror or type(exc).__name__}"
    # libjpeg's warnings are caught per file, stderr redirected once per chunk
    with imaging.held_stderr(), (tree or contextlib.nullcontext()):
        values = [_inspect_entry(tree, row, limits, names_met, pattern) if tree is not None
                  else _refused(row, gone, pattern=pattern) for row in rows]
    # an Arrow table crosses the process boundary as a few buffers, far cheaper than thousands of rows; built
    # column by column from the row tuples (from_pylist's dict per row cost a sixth of the inspection)
    columns = zip(*values) if values else ([] for _ in SCHEMA)
    return pa.Table.from_arrays([pa.array(col, f.type) for col, f in zip(columns, SCHEMA)], schema=SCHEMA)


_NOT_READ = (None,) * 5  # height, width, channels, image_format, color_space of a file described by its reason


def _named(rel: str, pattern: str | None) -> tuple:
    """usage, subject and sequence: what the file's name says."""
    return (_usage(rel.rpartition("/")[2]), *name_fields(rel, pattern))


def _refused(row: tuple, problem: str, size: int | None = None, pattern: str | None = None) -> tuple:
    rel, split_name, label_raw, emotion = row[:4]
    return (rel, split_name, *_named(rel, pattern), label_raw, emotion, *_NOT_READ, size, None,
            imaging.QUARANTINED, problem, None)


def _inspect_entry(tree: TreeFds, row: tuple, limits: tuple, names_met: dict, pattern: str | None = None) -> tuple:
    """The inspection row of one scanned entry (a _ROW tuple), values in SCHEMA order (bytes read only from a
    regular file inside the root). limits: max_pixels, max_bytes, min_side, max_decoded_bytes."""
    rel, split_name, label_raw, emotion, place_problem, fs_path, openable = row
    max_pixels, max_bytes, min_side, max_decoded = limits
    data = size = problem = None
    if openable:
        data, size, problem = read_regular_file(fs_path or rel, max_bytes, tree, names_met)
    if data is None:  # never opened, or refused: described by its reason only
        return _refused(row, problem or place_problem, size, pattern)
    values = imaging.inspect_values(data, max_pixels, max_bytes, min_side, max_decoded)
    if place_problem and values[7] == imaging.OK:
        values = (*values[:7], imaging.QUARANTINED, place_problem)
    # keep the bytes of usable images only; quarantined files are described, not stored
    return (rel, split_name, *_named(rel, pattern), label_raw, emotion, *values,
            data if values[7] == imaging.OK else None)


def can_start_processes() -> bool:
    """False inside a daemonic process (a Celery prefork worker, a multiprocessing pool's worker), which may not
    have children of its own: the work then runs in this process."""
    return not multiprocessing.current_process().daemon


def _ready() -> None:
    """A task that does nothing: submitted once per worker so that every worker is forked, and waiting."""


def _start_pool(workers: int) -> ProcessPoolExecutor:
    """A pool whose workers are all started now, forked (where the platform forks) with the parent's objects
    frozen: a worker's garbage collections then skip the objects it inherited instead of walking - and, by
    touching, copying - the whole parent heap (gc.freeze's documented use before fork). Unfrozen again here;
    a process that froze its heap itself is left as it is."""
    ours = gc.get_freeze_count() == 0
    if ours:
        gc.freeze()
    try:
        pool = ProcessPoolExecutor(max_workers=workers)
        try:
            for future in [pool.submit(_ready) for _ in range(workers)]:
                future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    finally:
        if ours:
            gc.unfreeze()
    return pool


SPOOL_PREFIX = "femo-inspect-"  # the temporary folder of a parallel inspection with a sink


def _inspect_spooled(args: tuple[tuple, str]) -> tuple[pa.Table, str]:
    """A worker's part for a sink: the table without its content column, which goes to an Arrow file at `path`
    instead. (Through the result pipe, the bytes of a part - 3 MB for 2000 faces - kept the worker waiting
    15-20 ms per part for the parent to read them; written to a file they cost the worker about 1 ms, and the
    parent maps the file rather than copying it.)"""
    chunk, path = args
    table = _inspect_chunk(chunk)
    content = table.select(["content"])
    with pa.OSFile(path, "wb") as out, ipc.new_file(out, content.schema) as writer:
        writer.write_table(content)
    return table.drop(["content"]), path


def _bounded_map(pool: ProcessPoolExecutor, fn: Callable, items: Iterator, window: int) -> Iterator:
    """pool.map in order, with at most `window` items submitted and not yet handed on. (Executor.map submits
    everything at once: when the workers outrun the sink, finished parts - file bytes included - pile up in this
    process; at a million files that was about a gigabyte.)"""
    pending: collections.deque = collections.deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _spooled_parts(pool: ProcessPoolExecutor, chunks: list, window: int, spool: str) -> Iterator[pa.Table]:
    """The parts of `chunks`, bytes included, each rebuilt from the worker's table and its mapped content file
    (removed once the part has been handed on)."""
    items = ((chunk, os.path.join(spool, f"{i:07d}.arrow")) for i, chunk in enumerate(chunks))
    for meta, path in _bounded_map(pool, _inspect_spooled, items, window):
        try:
            with pa.memory_map(path) as source:
                content = ipc.open_file(source).read_all().column("content")
                yield meta.append_column(SCHEMA.field("content"), content)
                del content
        finally:
            os.unlink(path)


def inspect_folder(
    root: str | os.PathLike,
    entries: list[FileEntry],
    workers: int | None = None,
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS,
    max_bytes: int = imaging.DEFAULT_MAX_BYTES,
    progress: Callable[[int, int, float], None] | None = None,
    chunk_size: int = 2000,
    min_side: int = imaging.DEFAULT_MIN_SIDE,
    sink: Callable[[pa.Table], None] | None = None,
    spool_dir: str | os.PathLike | None = None,
    max_decoded_bytes: int = imaging.DEFAULT_MAX_DECODED_BYTES,
    name_pattern: str | None = None,
) -> pa.Table:
    """Read and inspect every entry, in parallel processes; returns an Arrow table with SCHEMA (bytes included).

    With `sink`, each part (chunk_size files, bytes included) is handed to sink as soon as it is ready, in entry
    order, and the returned table leaves out the content column: a whole dataset's bytes are never held at once.
    Workers then hand each part's bytes over through a file in a temporary folder (SPOOL_PREFIX*) under
    `spool_dir` (default: the system's temporary folder), at most 2 x workers parts at a time, removed as they
    are handed on. `name_pattern` (entries.name_pattern) fills subject and sequence from the file names.
    """
    if name_pattern:
        entries_module.name_pattern(name_pattern)  # a bad pattern fails here, not in every worker
    workers = (workers or os.cpu_count() or 1) if can_start_processes() else 1
    # entries are read under the root as the scan resolved it, by their names from there
    real_root = getattr(entries, "real_root", "") or os.path.realpath(root)
    names_met = getattr(entries, "names_met", {})
    limits = (max_pixels, max_bytes, min_side, max_decoded_bytes)
    with _gc_paused():  # a tuple per entry, no cycles (see _gc_paused)
        chunks = [
            (real_root, list(map(_ROW, entries[i : i + chunk_size])), limits, names_met, name_pattern or None)
            for i in range(0, len(entries), chunk_size)
        ]
    parts_done: list[pa.Table] = []
    done = 0
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if workers == 1 or len(chunks) <= 1:
            parts = map(_inspect_chunk, chunks)
        elif sink is None:
            parts = _bounded_map(stack.enter_context(_start_pool(workers)), _inspect_chunk, chunks, 2 * workers)
        else:  # the bytes come back through files in a private temporary folder (see _inspect_spooled)
            spool = stack.enter_context(tempfile.TemporaryDirectory(prefix=SPOOL_PREFIX, dir=spool_dir))
            pool = stack.enter_context(_start_pool(workers))
            # closed first on the way out (a failed sink): its mapped file goes, then the pool, then the folder
            parts = stack.enter_context(contextlib.closing(_spooled_parts(pool, chunks, 2 * workers, spool)))
        for part in parts:
            if sink is not None:
                sink(part)
                part = part.drop(["content"])
            parts_done.append(part)
            done += part.num_rows
            if progress:
                progress(done, len(entries), time.perf_counter() - start)
    if parts_done:
        return pa.concat_tables(parts_done)
    return SCHEMA.empty_table() if sink is None else SCHEMA.empty_table().drop(["content"])
