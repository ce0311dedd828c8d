"""The scan of a labelled image folder: every entry of the tree, inside the resolved source root, as a FileEntry
(a usable file, or one to quarantine with its reason). Pure module (no Dagster)."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import gc
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    collection it set off walked every object of the process (Dagster's included), which doubled the time of a
    FER-2013 scan with the pipeline loaded. Reference counting still frees everything as usual."""
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
