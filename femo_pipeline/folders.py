"""Read labelled image folders (FER-2013 and Kaggle layouts) into inspection rows.

Layouts:
- with splits (FER-2013): <root>/<split>/<emotion>/<file>, split in {train, test}
- without splits (Kaggle random images): <root>/<emotion>/<file>

Pure module (no Dagster). A wrong folder is a clear FolderLayoutError. Every other entry of the tree gets an
outcome row: a usable file, or a quarantined one with the reason (a file in a folder that names no known
emotion, or outside any emotion folder; a hidden entry; a link that leads out of the source root, dangles or
loops; a FIFO, socket or device; a folder that cannot be read). The scan never leaves the resolved source root
and never opens anything but regular files inside it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
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
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from femo_pipeline import imaging
from femo_pipeline.vocab import emotion_id

SPLITS = ("train", "test")
# FER-2013 file names carry the original CSV's Usage column.
_USAGE_PREFIXES = ("Training", "PublicTest", "PrivateTest")


class FolderLayoutError(ValueError):
    """The folder does not have the layout the source needs."""


@dataclass(frozen=True, slots=True)  # slots: a million entries without a dict each
class FileEntry:
    rel_path: str  # '/'-separated, valid UTF-8: bytes of a name that are not UTF-8 shown as \\xNN escapes
    split: str | None
    label_raw: str | None
    emotion_id: int | None
    problem: str | None  # set when the file's place in the tree already disqualifies it
    fs_path: str | None = None  # where to read it: a path inside the resolved root (None: <resolved root>/rel_path)
    openable: bool = True  # False: the scan decided already (link out of the root, FIFO, ...); never opened


def _usage(name: str) -> str | None:
    prefix = name.split("_", 1)[0]
    return prefix if prefix in _USAGE_PREFIXES else None


def shown_name(name: str) -> str:
    """A file name as valid UTF-8 text: bytes that are not UTF-8 (surrogate-escaped by os) become \\xNN escapes."""
    if name.isascii():
        return name
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


_KINDS = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "special file")


@dataclass(frozen=True)
class _Place:
    """What an entry of a folder is, by where the folder sits in the layout."""

    role: str  # 'root_splits' | 'top' (root without splits, or a split folder) | 'class' | 'other'
    split: str | None = None
    label: str | None = None
    emotion: int | None = None
    problem: str | None = None


class _Scanner:
    def __init__(self, root: Path):
        self.real_root = os.path.realpath(root)
        self._prefix = self.real_root.rstrip(os.sep) + os.sep
        self.entries: list[FileEntry] = []
        self.read_dirs: set[tuple[int, int]] = set()  # (device, inode) of every folder listed
        self.linked_dirs: list[tuple[str, str, str, _Place]] = []  # links to folders, followed after the tree
        self._pending: list[tuple[str, str, _Place]] = []  # folders still to list

    def inside(self, real: str) -> bool:
        return real == self.real_root or real.startswith(self._prefix)

    def outcome(self, rel: str, place: _Place, reason: str) -> None:
        self.entries.append(FileEntry(rel, place.split, place.label, place.emotion, reason, None, openable=False))

    def listing(self, real_dir: str) -> list[os.DirEntry]:
        with os.scandir(real_dir) as it:
            return sorted(it, key=lambda e: e.name)

    def folder(self, real_dir: str, rel_dir: str, place: _Place) -> None:
        """Give every entry of a folder (real path, inside the root) and of its subfolders its outcome.

        Iterative (a stack, not recursion), so however deep a hostile tree goes the scan cannot overflow.
        """
        self._pending.append((real_dir, rel_dir, place))
        while self._pending:
            real_dir, rel_dir, place = self._pending.pop()
            try:
                st = os.stat(real_dir)
                self.read_dirs.add((st.st_dev, st.st_ino))
                children = self.listing(real_dir)
            except OSError as exc:
                self.outcome(rel_dir, place, f"unreadable folder: {exc.strerror or type(exc).__name__}")
                continue
            for child in children:
                self.child(real_dir, rel_dir, child, place)

    def child(self, real_dir: str, rel_dir: str, entry: os.DirEntry, place: _Place) -> None:
        name = shown_name(entry.name)
        rel = f"{rel_dir}/{name}" if rel_dir else name
        path = entry.path  # = os.path.join(real_dir, entry.name): scandir was given real_dir
        try:
            is_link = entry.is_symlink()
            is_dir = not is_link and entry.is_dir(follow_symlinks=False)
            is_file = not is_link and entry.is_file(follow_symlinks=False)
            mode = None if (is_link or is_dir or is_file) else entry.stat(follow_symlinks=False).st_mode
        except OSError as exc:
            self.outcome(rel, self.file_place(place, name), f"unreadable entry: {exc.strerror or type(exc).__name__}")
            return
        target = path
        if is_link:
            try:
                target = os.path.realpath(path, strict=True)
            except FileNotFoundError:
                self.outcome(rel, self.file_place(place, name), "dangling symbolic link")
                return
            except (OSError, RuntimeError) as exc:
                reason = "symlink loop" if getattr(exc, "errno", errno.ELOOP) == errno.ELOOP else (
                    f"unreadable symbolic link: {exc.strerror or type(exc).__name__}")
                self.outcome(rel, self.file_place(place, name), reason)
                return
            if not self.inside(target):
                self.outcome(rel, self.file_place(place, name), "outside the source root (symbolic link), not read")
                return
            try:
                st = os.stat(target)
            except OSError as exc:
                self.outcome(rel, self.file_place(place, name), f"unreadable entry: {exc.strerror or type(exc).__name__}")
                return
            is_dir, is_file = stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode)
            mode = None if (is_dir or is_file) else st.st_mode
        if entry.name.startswith("."):
            self.outcome(rel, self.file_place(place, name), "hidden folder, not read" if is_dir else "hidden file, not read")
        elif is_dir:
            sub = self.dir_place(place, entry.name, name)
            if is_link:
                self.linked_dirs.append((target, rel, real_dir, sub))
            else:
                self._pending.append((target, rel, sub))
        elif is_file:
            p = self.file_place(place, name)
            # the path is kept only where it is not <real root>/<rel> (links, names that are not UTF-8): at a
            # million files the second copy of every path was 150 MB
            fs_path = None if target == self._prefix + rel else target
            self.entries.append(FileEntry(rel, p.split, p.label, p.emotion, p.problem, fs_path))
        else:
            self.outcome(rel, self.file_place(place, name), f"not a regular file ({_kind(mode)}), not read")

    @staticmethod
    def file_place(place: _Place, name: str) -> _Place:
        """The place of a file (or any non-folder entry) directly inside a folder of `place`."""
        if place.role in ("class", "other"):
            return place
        return _Place("file", place.split, problem="file outside any emotion folder")

    @staticmethod
    def dir_place(place: _Place, raw_name: str, name: str) -> _Place:
        if place.role == "root_splits":
            if raw_name in SPLITS:
                return _Place("top", split=raw_name)
            return _Place("other", problem=f"folder '{name}' is not a split (expected train or test)")
        if place.role == "top":
            emo = emotion_id(raw_name)
            problem = None if emo is not None else f"folder '{name}' names no known emotion"
            return _Place("class", place.split, name, emo, problem)
        return place  # folders inside an emotion folder keep its label

    def follow_links(self) -> None:
        """Links to folders inside the root: a folder already read (or containing the link) is not read again."""
        while self.linked_dirs:
            target, rel, link_dir, place = self.linked_dirs.pop(0)
            try:
                st = os.stat(target)
            except OSError as exc:
                self.outcome(rel, place, f"unreadable folder: {exc.strerror or type(exc).__name__}")
                continue
            if link_dir == target or link_dir.startswith(target.rstrip(os.sep) + os.sep):
                self.outcome(rel, place, "symlink loop: links to a folder that contains it")
            elif (st.st_dev, st.st_ino) in self.read_dirs:
                shown = shown_name(os.path.relpath(target, self.real_root)).replace(os.sep, "/")
                self.outcome(rel, place, f"link to a folder already read ('{shown}'), not read twice")
            else:
                self.folder(target, rel, place)


def _top_dirs(scanner: _Scanner) -> list[tuple[str, str, str, bool]]:
    """(raw name, shown name, real path, is a link) of the folders directly in the root."""
    out = []
    for entry in scanner.listing(scanner.real_root):
        with contextlib.suppress(OSError):
            if entry.name.startswith("."):
                continue
            real = os.path.realpath(entry.path) if entry.is_symlink() else entry.path
            if scanner.inside(real) and os.path.isdir(real):
                out.append((entry.name, shown_name(entry.name), real, entry.is_symlink()))
    return out


def _unique(entries: list[FileEntry], real_prefix: str) -> list[FileEntry]:
    """Sorted by rel_path; a shown name equal to another (only possible through escapes) gets a suffix. A renamed
    entry keeps where it really is (fs_path), since <root>/<new name> is not that file."""
    seen: set[str] = set()
    out = []
    for entry in sorted(entries, key=lambda e: e.rel_path):
        rel, n = entry.rel_path, 1
        while rel in seen:
            n += 1
            rel = f"{entry.rel_path} (#{n}: name not valid UTF-8)"
        seen.add(rel)
        if rel != entry.rel_path:
            entry = dataclasses.replace(entry, rel_path=rel, fs_path=entry.fs_path or (
                real_prefix + entry.rel_path if entry.openable else None))
        out.append(entry)
    return out


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block. A scan makes an object per entry and no cycles; each
    collection it set off walked every object of the process (Dagster's included): with the pipeline loaded, the
    FER-2013 scan took 0.16 s instead of 0.07 s. Reference counting still frees everything as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ScannedEntries(list):
    """scan_folder's entries, with the resolved root they were found under (inspect_folder reads from it, not from
    the root resolved again: a root link repointed in between is never followed)."""

    real_root: str = ""


def scan_folder(root: str | os.PathLike, with_splits: bool) -> list[FileEntry]:
    """List every entry of a labelled folder tree with its split, emotion and, where it cannot be used, the reason."""
    root = Path(root)
    if not root.exists():
        raise FolderLayoutError(f"folder does not exist: {root}")
    if not root.is_dir():
        raise FolderLayoutError(f"not a folder: {root}")
    with _gc_paused():
        return _scan(root, with_splits)


def _scan(root: Path, with_splits: bool) -> list[FileEntry]:
    scanner = _Scanner(root)
    try:
        tops = _top_dirs(scanner)
    except OSError as exc:
        raise FolderLayoutError(f"cannot read folder {root}: {exc.strerror or exc}") from exc
    if with_splits:
        if not any(raw in SPLITS for raw, *_ in tops):
            raise FolderLayoutError(
                f"{root} has no 'train' or 'test' folder (expected <root>/<train|test>/<emotion>/*.jpg); "
                f"found {[shown for _, shown, *_ in tops]}"
            )
        scanner.folder(scanner.real_root, "", _Place("root_splits"))
    else:
        if not any(emotion_id(raw) is not None for raw, *_ in tops):
            raise FolderLayoutError(
                f"{root} has no emotion folders (expected <root>/<emotion>/*.png, e.g. anger/, happiness/); "
                f"found {[shown for _, shown, *_ in tops]}"
            )
        scanner.folder(scanner.real_root, "", _Place("top"))
    scanner.follow_links()
    entries = ScannedEntries(_unique(scanner.entries, scanner._prefix))
    entries.real_root = scanner.real_root
    return entries


SCHEMA = pa.schema(
    [
        ("rel_path", pa.string()),
        ("split", pa.string()),
        ("usage", pa.string()),
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


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def read_regular_file(path: str, max_bytes: int) -> tuple[bytes | None, int | None, str | None]:
    """(bytes, size, problem) of a regular file; never blocks on a FIFO nor follows a final symbolic link.

    The file is opened non-blocking without following links, then checked with fstat: anything but a regular
    file (swapped in since the scan) is refused unread; a file over max_bytes is described by its size only.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, None, "symbolic link appeared since the scan, not followed"
        return None, None, f"unreadable file: {exc.strerror or type(exc).__name__}"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, None, f"not a regular file ({_kind(st.st_mode)}), not read"
        if st.st_size > max_bytes:
            return None, st.st_size, f"file too large: {st.st_size} bytes > limit {max_bytes}"
        chunks, size = [], 0
        while size <= max_bytes:
            # ask for what fstat announced (+1 to see growth), not max_bytes: os.read allocates what it is asked
            want = min(max_bytes + 1 - size, max(st.st_size + 1 - size, 65536))
            chunk = os.read(fd, want)
            chunks.append(chunk)
            size += len(chunk)
            if len(chunk) < want:  # a short read of a regular file is its end
                break
        return b"".join(chunks), None, None
    except OSError as exc:
        return None, None, f"unreadable file: {exc.strerror or type(exc).__name__}"
    finally:
        os.close(fd)


# the fields of a FileEntry a worker needs, as a plain tuple: a chunk of 2000 frozen dataclasses took 3 ms to
# pickle in the parent and 3 ms to unpickle in the worker (tuples of strings: 0.1 ms each way)
_ROW = operator.attrgetter("rel_path", "split", "label_raw", "emotion_id", "problem", "fs_path", "openable")


def _inspect_chunk(args: tuple[str, list[tuple], int, int, int]) -> pa.Table:
    root, rows, max_pixels, max_bytes, min_side = args
    with imaging.held_stderr():  # libjpeg's warnings are caught per file, stderr redirected once per chunk
        values = [_inspect_entry(root, row, max_pixels, max_bytes, min_side) for row in rows]
    # an Arrow table crosses the process boundary as a few buffers, far cheaper than thousands of rows; built
    # column by column from the row tuples (from_pylist's dict per row cost a sixth of the inspection)
    columns = zip(*values) if values else ([] for _ in SCHEMA)
    return pa.Table.from_arrays([pa.array(col, f.type) for col, f in zip(columns, SCHEMA)], schema=SCHEMA)


_NOT_READ = (None,) * 5  # height, width, channels, image_format, color_space of a file described by its reason


def _inspect_entry(root: str, row: tuple, max_pixels: int, max_bytes: int, min_side: int) -> tuple:
    """The inspection row of one scanned entry (a _ROW tuple), values in SCHEMA order (bytes read only from a
    regular file inside the root)."""
    rel, split, label_raw, emotion, place_problem, fs_path, openable = row
    data = size = problem = None
    if openable:
        data, size, problem = read_regular_file(fs_path or f"{root}/{rel}", max_bytes)
    if data is None:  # never opened, or refused: described by its reason only
        values = (*_NOT_READ, size, None, imaging.QUARANTINED, problem or place_problem)
    else:
        values = imaging.inspect_values(data, max_pixels, max_bytes, min_side)
        if place_problem and values[7] == imaging.OK:
            values = (*values[:7], imaging.QUARANTINED, place_problem)
    # keep the bytes of usable images only; quarantined files are described, not stored
    return (rel, split, _usage(rel.rpartition("/")[2]), label_raw, emotion, *values,
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
) -> pa.Table:
    """Read and inspect every entry, in parallel processes; returns an Arrow table with SCHEMA (bytes included).

    With `sink`, each part (chunk_size files, bytes included) is handed to sink as soon as it is ready, in entry
    order, and the returned table leaves out the content column: a whole dataset's bytes are never held at once.
    Workers then hand each part's bytes over through a file in a temporary folder (SPOOL_PREFIX*) under
    `spool_dir` (default: the system's temporary folder), at most 2 x workers parts at a time, removed as they
    are handed on.
    """
    workers = (workers or os.cpu_count() or 1) if can_start_processes() else 1
    # entries without fs_path sit at <resolved root>/<rel_path>: the root as the scan resolved it
    real_root = getattr(entries, "real_root", "") or os.path.realpath(root)
    with _gc_paused():  # a tuple per entry, no cycles (see _gc_paused)
        chunks = [
            (real_root, list(map(_ROW, entries[i : i + chunk_size])), max_pixels, max_bytes, min_side)
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
