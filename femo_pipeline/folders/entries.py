"""What a scan yields: FileEntry (one entry of a source tree with its split, emotion and, where it cannot be used,
the reason), ScannedEntries (the list, with the root it was found under), what a file's name says (FER-2013's
usage; subject and sequence through a source's name pattern), and the helpers the scan and the reading share.
Pure module (no Dagster)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass

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
    fs_path: str | None = None  # where it is: raw names from the resolved root, '/'-separated (None: rel_path)
    openable: bool = True  # False: the scan decided already (link out of the root, FIFO, ...); never opened


def _usage(name: str) -> str | None:
    prefix = name.split("_", 1)[0]
    return prefix if prefix in _USAGE_PREFIXES else None


class NamePatternError(ValueError):
    """A file-name pattern that is not a regex or has no group named subject."""


@functools.lru_cache(maxsize=8)
def name_pattern(pattern: str) -> re.Pattern:
    """A compiled file-name pattern: a regex with a named group `subject` and optionally `sequence`."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise NamePatternError(f"file-name pattern {pattern!r} is not a regular expression: {exc}") from None
    if "subject" not in compiled.groupindex:
        raise NamePatternError(f"file-name pattern {pattern!r} has no group named subject, (?P<subject>...)")
    unknown = set(compiled.groupindex) - {"subject", "sequence"}
    if unknown:
        raise NamePatternError(f"file-name pattern {pattern!r} names groups other than subject and sequence: "
                               f"{sorted(unknown)}")
    return compiled


def name_fields(rel_path: str, pattern: str | None) -> tuple[str | None, str | None]:
    """(subject, sequence) found by the pattern in the file's name (the last part of rel_path); None where the
    pattern finds nothing, or a group did not take part in the match."""
    if not pattern:
        return None, None
    found = name_pattern(pattern).search(rel_path.rpartition("/")[2])
    if found is None:
        return None, None
    groups = found.groupdict()
    return groups.get("subject") or None, groups.get("sequence") or None


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
    the root resolved again: a root link repointed in between is never followed) and the files met under more
    than one name ({(device, inode): names}; a file with more names than that is refused unread)."""

    real_root: str = ""
    names_met: dict = {}


def _unique(entries: list[FileEntry]) -> list[FileEntry]:
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
                entry.rel_path if entry.openable else None))
        out.append(entry)
    return out
