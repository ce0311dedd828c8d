"""The scan of a labelled image folder: every entry of the tree, inside the resolved source root, as a FileEntry
(a usable file, or one to quarantine with its reason). Pure module (no Dagster)."""

from __future__ import annotations

import array
import contextlib
import errno
import operator
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from femo_pipeline.folders.entries import (
    SPLITS,
    FileEntry,
    FolderLayoutError,
    ScannedEntries,
    _gc_paused,
    _kind,
    _unique,
    shown_name,
)
from femo_pipeline.folders.tree import LINK_APPEARED, LinkInTheWay, TreeFds
from femo_pipeline.vocab import emotion_id


@dataclass(frozen=True)
class _Place:
    """What an entry of a folder is, by where the folder sits in the layout."""

    role: str  # 'root_splits' | 'root_sets' | 'top' (root without splits, a split or a set folder) | 'class' | 'other'
    split: str | None = None
    label: str | None = None
    emotion: int | None = None
    problem: str | None = None


class _Scanner:
    """The walk: every folder listed through a descriptor opened from the root's (tree.TreeFds), so a folder
    swapped for a link meanwhile is refused, never followed. A folder is named by its parts (raw names from
    the resolved root)."""

    def __init__(self, root: Path):
        self.real_root = os.path.realpath(root)
        self._prefix = self.real_root.rstrip(os.sep) + os.sep
        self.tree = TreeFds(self.real_root)
        self.entries: list[FileEntry] = []
        self.read_dirs: set[tuple[int, int]] = set()  # (device, inode) of every folder listed
        self.linked_dirs: list[tuple[tuple, str, tuple, _Place]] = []  # links to folders, followed after the tree
        self._pending: list[tuple[tuple, str, _Place]] = []  # folders still to list
        # (device, inode) of every regular file met under its own name: a file with more names than were met
        # has one elsewhere (a hard link from outside the root), which inspection refuses
        self.devices, self.inodes = array.array("Q"), array.array("Q")

    def inside(self, real: str) -> bool:
        return real == self.real_root or real.startswith(self._prefix)

    def parts_of(self, real: str) -> tuple[str, ...]:
        return () if real == self.real_root else tuple(real[len(self._prefix):].split(os.sep))

    def outcome(self, rel: str, place: _Place, reason: str) -> None:
        self.entries.append(FileEntry(rel, place.split, place.label, place.emotion, reason, None, openable=False))

    def listing(self, parts: tuple) -> tuple[os.stat_result, list[tuple]]:
        """The folder's status and its entries, sorted by name, as (name, is_link, is_dir, is_file, mode, inode,
        error): all read while the folder's descriptor is open."""
        fd = self.tree.folder(parts)
        st = os.fstat(fd)
        children = []
        with os.scandir(fd) as it:
            for entry in it:
                try:
                    is_link = entry.is_symlink()
                    is_dir = not is_link and entry.is_dir(follow_symlinks=False)
                    is_file = not is_link and entry.is_file(follow_symlinks=False)
                    mode = None if (is_link or is_dir or is_file) else entry.stat(follow_symlinks=False).st_mode
                    children.append((entry.name, is_link, is_dir, is_file, mode, entry.inode(), None))
                except OSError as exc:
                    children.append((entry.name, False, False, False, None, 0, exc))
        children.sort(key=operator.itemgetter(0))
        return st, children

    def folder(self, parts: tuple, rel_dir: str, place: _Place) -> None:
        """Give every entry of a folder (inside the root) and of its subfolders its outcome.

        Iterative (a stack, not recursion), so however deep a hostile tree goes the scan cannot overflow.
        """
        self._pending.append((parts, rel_dir, place))
        while self._pending:
            parts, rel_dir, place = self._pending.pop()
            try:
                st, children = self.listing(parts)
            except LinkInTheWay:
                self.outcome(rel_dir, place, f"folder replaced by a {LINK_APPEARED}")
                continue
            except OSError as exc:
                self.outcome(rel_dir, place, f"unreadable folder: {exc.strerror or type(exc).__name__}")
                continue
            self.read_dirs.add((st.st_dev, st.st_ino))
            for child in children:
                self.child(parts, rel_dir, child, place, st.st_dev)

    def child(self, parts: tuple, rel_dir: str, child: tuple, place: _Place, device: int) -> None:
        raw, is_link, is_dir, is_file, mode, inode, error = child
        name = shown_name(raw)
        rel = f"{rel_dir}/{name}" if rel_dir else name
        if error is not None:
            self.outcome(rel, self.file_place(place, name), f"unreadable entry: {error.strerror or type(error).__name__}")
            return
        target = (*parts, raw)
        if is_link:
            found = self.link_target(target, rel, place, name)
            if found is None:
                return
            target, st = found
            is_dir, is_file = stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode)
            mode = None if (is_dir or is_file) else st.st_mode
        if raw.startswith("."):
            self.outcome(rel, self.file_place(place, name), "hidden folder, not read" if is_dir else "hidden file, not read")
        elif is_dir:
            sub = self.dir_place(place, raw, name)
            if is_link:
                self.linked_dirs.append((target, rel, parts, sub))
            else:
                self._pending.append((target, rel, sub))
        elif is_file:
            p = self.file_place(place, name)
            # the path is kept only where it is not rel_path (links, names that are not UTF-8): at a million
            # files a second copy of every path was 150 MB
            fs = "/".join(target)
            self.entries.append(FileEntry(rel, p.split, p.label, p.emotion, p.problem, None if fs == rel else fs))
            if not is_link:
                self.devices.append(device)
                self.inodes.append(inode)
        else:
            self.outcome(rel, self.file_place(place, name), f"not a regular file ({_kind(mode)}), not read")

    def link_target(self, parts: tuple, rel: str, place: _Place, name: str) -> tuple[tuple, os.stat_result] | None:
        """Where a symbolic link leads, as parts inside the root with its status, or None once its outcome is given
        (dangling, a loop, outside the root). The target is checked by walking to it without following links."""
        try:
            target = os.path.realpath(self._prefix + os.sep.join(parts), strict=True)
        except FileNotFoundError:
            self.outcome(rel, self.file_place(place, name), "dangling symbolic link")
            return None
        except (OSError, RuntimeError) as exc:
            reason = "symlink loop" if getattr(exc, "errno", errno.ELOOP) == errno.ELOOP else (
                f"unreadable symbolic link: {exc.strerror or type(exc).__name__}")
            self.outcome(rel, self.file_place(place, name), reason)
            return None
        if not self.inside(target):
            self.outcome(rel, self.file_place(place, name), "outside the source root (symbolic link), not read")
            return None
        target_parts = self.parts_of(target)
        try:
            return target_parts, self.tree.lstat(target_parts)
        except OSError as exc:
            reason = LINK_APPEARED if isinstance(exc, LinkInTheWay) else (
                f"unreadable entry: {exc.strerror or type(exc).__name__}")
            self.outcome(rel, self.file_place(place, name), reason)
            return None

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
        if place.role == "root_sets":  # every folder of the root is a labelled set, named by its folder
            return _Place("top", split=name)
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
                st = self.tree.lstat(target)
            except OSError as exc:
                reason = LINK_APPEARED if isinstance(exc, LinkInTheWay) else (
                    f"unreadable folder: {exc.strerror or type(exc).__name__}")
                self.outcome(rel, place, reason)
                continue
            if link_dir[: len(target)] == target:
                self.outcome(rel, place, "symlink loop: links to a folder that contains it")
            elif (st.st_dev, st.st_ino) in self.read_dirs:
                self.outcome(rel, place, f"link to a folder already read ('{shown_name('/'.join(target))}'), not read twice")
            else:
                self.folder(target, rel, place)

    def names_met(self) -> dict[tuple[int, int], int]:
        """{(device, inode): names met} of the regular files met under more than one name in the tree."""
        if len(self.inodes) < 2:
            return {}
        devices = np.frombuffer(self.devices, np.uint64)
        inodes = np.frombuffer(self.inodes, np.uint64)
        order = np.lexsort((inodes, devices))
        devices, inodes = devices[order], inodes[order]
        same = (devices[1:] == devices[:-1]) & (inodes[1:] == inodes[:-1])
        if not same.any():
            return {}
        met: dict[tuple[int, int], int] = {}
        for i in np.flatnonzero(same):
            key = (int(devices[i]), int(inodes[i]))
            met[key] = met.get(key, 1) + 1
        return met


def _top_dirs(scanner: _Scanner) -> list[tuple[str, str]]:
    """(raw name, shown name) of the folders directly in the root (links to folders inside it included)."""
    out = []
    for raw, is_link, is_dir, *_ in scanner.listing(())[1]:
        if raw.startswith("."):
            continue
        if is_link:
            with contextlib.suppress(OSError):
                real = os.path.realpath(scanner._prefix + raw)
                is_dir = scanner.inside(real) and os.path.isdir(real)
        if is_dir:
            out.append((raw, shown_name(raw)))
    return out


def scan_folder(root: str | os.PathLike, with_splits: bool, sets: bool = False) -> list[FileEntry]:
    """List every entry of a labelled folder tree with its split, emotion and, where it cannot be used, the reason.
    Layouts: <root>/<train|test>/<emotion>/ (with_splits), <root>/<set>/<emotion>/ (sets: the set's folder name
    is the entry's split), else <root>/<emotion>/."""
    if with_splits and sets:
        raise ValueError("a folder has splits or sets, not both")
    root = Path(root)
    if not root.exists():
        raise FolderLayoutError(f"folder does not exist: {root}")
    if not root.is_dir():
        raise FolderLayoutError(f"not a folder: {root}")
    with _gc_paused():
        return _scan(root, with_splits, sets)


def _scan(root: Path, with_splits: bool, sets: bool) -> list[FileEntry]:
    try:
        scanner = _Scanner(root)
    except OSError as exc:
        raise FolderLayoutError(f"cannot read folder {root}: {exc.strerror or exc}") from exc
    try:
        return _walk(scanner, root, with_splits, sets)
    finally:
        scanner.tree.close()


def _walk(scanner: _Scanner, root: Path, with_splits: bool, sets: bool) -> list[FileEntry]:
    try:
        tops = _top_dirs(scanner)
    except OSError as exc:
        raise FolderLayoutError(f"cannot read folder {root}: {exc.strerror or exc}") from exc
    if with_splits:
        if not any(raw in SPLITS for raw, _ in tops):
            raise FolderLayoutError(
                f"{root} has no 'train' or 'test' folder (expected <root>/<train|test>/<emotion>/*.jpg); "
                f"found {[shown for _, shown in tops]}"
            )
        scanner.folder((), "", _Place("root_splits"))
    elif sets:
        if not tops or all(emotion_id(raw) is not None for raw, _ in tops):
            found = f"emotion folders {[shown for _, shown in tops]} directly in it" if tops else "no folder"
            raise FolderLayoutError(
                f"{root} should hold one folder per labelled set, each with emotion folders (expected "
                f"<root>/<set>/<emotion>/*.png, e.g. posed/happiness/); found {found}: put them in a folder named "
                "after the set"
            )
        scanner.folder((), "", _Place("root_sets"))
    else:
        if not any(emotion_id(raw) is not None for raw, _ in tops):
            raise FolderLayoutError(
                f"{root} has no emotion folders (expected <root>/<emotion>/*.png, e.g. anger/, happiness/); "
                f"found {[shown for _, shown in tops]}"
            )
        scanner.folder((), "", _Place("top"))
    scanner.follow_links()
    entries = ScannedEntries(_unique(scanner.entries))
    entries.real_root = scanner.real_root
    entries.names_met = scanner.names_met()
    return entries
