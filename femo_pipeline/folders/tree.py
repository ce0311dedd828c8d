"""Opening folders and files of a source tree relative to the descriptor of its resolved root, one name at a time,
never following a symbolic link (`openat` with O_NOFOLLOW, and O_DIRECTORY for folders, at every level). A folder
swapped for a link after the scan is refused where it stands instead of being followed out of the root. Pure
module (no Dagster)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
FILE_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | os.O_NOFOLLOW | _CLOEXEC
LINK_APPEARED = "symbolic link appeared since the scan, not followed"


class LinkInTheWay(OSError):
    """A symbolic link stands where the scan saw a folder or a file."""

    def __init__(self, name: str):
        super().__init__(errno.ELOOP, LINK_APPEARED, name)


class TreeFds:
    """Descriptors of the folders of one tree, opened from its root's descriptor without following links.

    The folders of the last path asked for stay open (at most `keep` of them; deeper ones are opened from the
    deepest kept and closed again), so files of one folder, asked for in order, cost one `openat` each. A
    descriptor returned by `folder` is valid until the next call; close the whole with `close` (or `with`).
    """

    def __init__(self, real_root: str, keep: int = 64):
        self.root = os.open(real_root, DIR_FLAGS)
        self.keep = keep
        self._chain: list[tuple[str, int]] = []  # (name, descriptor) of the folders last walked, from the root
        self._tail: int | None = None  # a descriptor past `keep` levels, closed on the next call

    def __enter__(self) -> TreeFds:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._drop(0)
        os.close(self.root)

    def _drop(self, depth: int) -> None:
        for _, fd in self._chain[depth:]:
            os.close(fd)
        del self._chain[depth:]
        if self._tail is not None:
            os.close(self._tail)
            self._tail = None

    def folder(self, parts: Sequence[str]) -> int:
        """The descriptor of the folder at `parts` (names from the root). Raises LinkInTheWay when one of them is
        a symbolic link now, OSError for anything else that cannot be opened."""
        chain = self._chain
        same = 0
        while same < len(chain) and same < len(parts) and chain[same][0] == parts[same]:
            same += 1
        self._drop(same)
        parent = chain[-1][1] if chain else self.root
        for name in parts[same:]:
            try:
                fd = os.open(name, DIR_FLAGS, dir_fd=parent)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(name, parent):
                    raise LinkInTheWay(name) from None
                raise
            if self._tail is None and len(chain) < self.keep:
                chain.append((name, fd))
            else:
                if self._tail is not None:
                    os.close(self._tail)
                self._tail = fd
            parent = fd
        return parent

    def open_file(self, parts: Sequence[str]) -> int:
        """A new descriptor (the caller closes it) of the entry at `parts`, opened read-only, non-blocking and
        without following a link."""
        fd = self.folder(parts[:-1])
        try:
            return os.open(parts[-1], FILE_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LinkInTheWay(parts[-1]) from None
            raise

    def lstat(self, parts: Sequence[str]) -> os.stat_result:
        """The status of the entry at `parts` itself; LinkInTheWay when it (or a folder on the way) is a link."""
        if not parts:
            return os.fstat(self.root)
        st = os.stat(parts[-1], dir_fd=self.folder(parts[:-1]), follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise LinkInTheWay(parts[-1])
        return st


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def split(path: str) -> tuple[str, ...]:
    """A '/'-separated path relative to the root as names ('' is the root itself)."""
    return tuple(path.split("/")) if path else ()
