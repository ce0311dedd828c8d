"""Read labelled image folders (FER-2013 and Kaggle layouts) into inspection rows.

Layouts:
- with splits (FER-2013): <root>/<split>/<emotion>/<file>, split in {train, test}
- without splits (Kaggle random images): <root>/<emotion>/<file>

Pure module (no Dagster). A wrong folder is a clear FolderLayoutError; a file in a folder that names no
known emotion, or outside any emotion folder, becomes a quarantined row with the reason.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from femo_pipeline import imaging
from femo_pipeline.vocab import emotion_id

SPLITS = ("train", "test")
# FER-2013 file names carry the original CSV's Usage column.
_USAGE_PREFIXES = ("Training", "PublicTest", "PrivateTest")


class FolderLayoutError(ValueError):
    """The folder does not have the layout the source needs."""


@dataclass(frozen=True)
class FileEntry:
    rel_path: str
    split: str | None
    label_raw: str | None
    emotion_id: int | None
    problem: str | None  # set when the file's place in the tree already disqualifies it


def _usage(name: str) -> str | None:
    prefix = name.split("_", 1)[0]
    return prefix if prefix in _USAGE_PREFIXES else None


def _files_below(folder: Path) -> Iterator[str]:
    """Paths (relative to folder, '/'-separated, sorted) of the non-hidden files below folder.

    os.walk reads directory entries without a stat call per file: several times faster than Path.rglob here.
    """
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, folder)
        for name in sorted(filenames):
            if not name.startswith("."):
                yield name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")


def _class_dir_entries(class_dir: Path, root: Path, split: str | None) -> Iterator[FileEntry]:
    label = class_dir.name
    emo = emotion_id(label)
    problem = None if emo is not None else f"folder '{label}' names no known emotion"
    prefix = class_dir.relative_to(root).as_posix()
    for rel in _files_below(class_dir):
        yield FileEntry(f"{prefix}/{rel}", split, label, emo, problem)


def _loose_files(folder: Path, root: Path, split: str | None) -> Iterator[FileEntry]:
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file() and not entry.name.startswith("."):
            rel = Path(entry.path).relative_to(root).as_posix()
            yield FileEntry(rel, split, None, None, "file outside any emotion folder")


def scan_folder(root: str | os.PathLike, with_splits: bool) -> list[FileEntry]:
    """List every file of a labelled folder tree with its split and emotion. Hidden files are ignored."""
    root = Path(root)
    if not root.exists():
        raise FolderLayoutError(f"folder does not exist: {root}")
    if not root.is_dir():
        raise FolderLayoutError(f"not a folder: {root}")
    entries: list[FileEntry] = []
    if with_splits:
        split_dirs = [root / s for s in SPLITS if (root / s).is_dir()]
        if not split_dirs:
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise FolderLayoutError(
                f"{root} has no 'train' or 'test' folder (expected <root>/<train|test>/<emotion>/*.jpg); found {found}"
            )
        entries.extend(_loose_files(root, root, None))
        for split_dir in split_dirs:
            entries.extend(_loose_files(split_dir, root, split_dir.name))
            for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
                entries.extend(_class_dir_entries(class_dir, root, split_dir.name))
    else:
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not any(emotion_id(p.name) is not None for p in class_dirs):
            raise FolderLayoutError(
                f"{root} has no emotion folders (expected <root>/<emotion>/*.png, e.g. anger/, happiness/); "
                f"found {[p.name for p in class_dirs]}"
            )
        entries.extend(_loose_files(root, root, None))
        for class_dir in class_dirs:
            entries.extend(_class_dir_entries(class_dir, root, None))
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


def _inspect_chunk(args: tuple[str, list[FileEntry], int, int]) -> pa.Table:
    root, entries, max_pixels, max_bytes = args
    rows = []
    for entry in entries:
        try:
            with open(os.path.join(root, entry.rel_path), "rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError as exc:
            data, read_error = b"", f"unreadable file: {exc.strerror or type(exc).__name__}"
        else:
            read_error = None
        row = imaging.inspect_image(data, max_pixels=max_pixels, max_bytes=max_bytes)
        if read_error:
            row.update(status=imaging.QUARANTINED, reason=read_error)
        elif entry.problem and row["status"] == imaging.OK:
            row.update(status=imaging.QUARANTINED, reason=entry.problem)
        row.update(
            rel_path=entry.rel_path,
            split=entry.split,
            usage=_usage(os.path.basename(entry.rel_path)),
            label_raw=entry.label_raw,
            emotion_id=entry.emotion_id,
            # keep the bytes of usable images only; quarantined files are described, not stored
            content=data if row["status"] == imaging.OK else None,
        )
        rows.append(row)
    # an Arrow table crosses the process boundary as a few buffers, far cheaper than thousands of dicts
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def inspect_folder(
    root: str | os.PathLike,
    entries: list[FileEntry],
    workers: int | None = None,
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS,
    max_bytes: int = imaging.DEFAULT_MAX_BYTES,
    progress: Callable[[int, int, float], None] | None = None,
    chunk_size: int = 2000,
) -> pa.Table:
    """Read and inspect every entry, in parallel processes; returns an Arrow table with SCHEMA (bytes included)."""
    workers = workers or os.cpu_count() or 1
    chunks = [
        (str(root), entries[i : i + chunk_size], max_pixels, max_bytes) for i in range(0, len(entries), chunk_size)
    ]
    parts_done: list[pa.Table] = []
    done = 0
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if workers == 1 or len(chunks) <= 1:
            parts = map(_inspect_chunk, chunks)
        else:
            parts = stack.enter_context(ProcessPoolExecutor(max_workers=workers)).map(_inspect_chunk, chunks)
        for part in parts:
            parts_done.append(part)
            done += part.num_rows
            if progress:
                progress(done, len(entries), time.perf_counter() - start)
    return pa.concat_tables(parts_done) if parts_done else SCHEMA.empty_table()
