"""Reading the serving snapshot: `SnapshotReader`, a read-only DuckDB connection to the snapshot link that
reopens when serving.publish_snapshot switches it, reference counted so a retired snapshot closes as soon as the
last request using it ends. Pure module (no Dagster)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
from fastapi import HTTPException

NO_SNAPSHOT = "no serving snapshot available: materialize serving_snapshot first"
log = logging.getLogger("femo_pipeline.api")


class _Snapshot:
    """One open read-only connection and the number of requests using it."""

    def __init__(self, real: str, key: tuple[str, int]):
        self.key = key
        self.con = duckdb.connect(real, read_only=True)
        self.users = 0
        self.retired = False


class SnapshotReader:
    """Read-only connection to the serving snapshot, reopened when a new snapshot is published.

    `path` is the link that serving.publish_snapshot switches atomically (a plain file works too). Connections
    are reference counted: when a newer snapshot appears the old connection is retired and closed as soon as
    the last request using it finishes, so only the current snapshot stays open.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._retired: list[_Snapshot] = []

    def _acquire(self) -> _Snapshot:
        real = os.path.realpath(self.path)
        try:
            key = (real, os.stat(real).st_mtime_ns)
        except FileNotFoundError:
            log.warning("no serving snapshot at %s", self.path)
            raise HTTPException(503, NO_SNAPSHOT) from None
        with self._lock:
            if self._snapshot is None or self._snapshot.key != key:
                try:
                    fresh = _Snapshot(real, key)
                except duckdb.Error as exc:
                    log.warning("serving snapshot %s not readable: %s", real, exc)
                    raise HTTPException(503, NO_SNAPSHOT) from None
                if self._snapshot is not None:
                    self._retire(self._snapshot)
                self._snapshot = fresh
            self._snapshot.users += 1
            return self._snapshot

    def _retire(self, snapshot: _Snapshot) -> None:  # under the lock
        snapshot.retired = True
        if snapshot.users == 0:
            snapshot.con.close()
        else:
            self._retired.append(snapshot)

    def _release(self, snapshot: _Snapshot) -> None:
        with self._lock:
            snapshot.users -= 1
            if snapshot.retired and snapshot.users == 0:
                snapshot.con.close()
                self._retired.remove(snapshot)

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the current snapshot; the snapshot stays open until the block ends."""
        snapshot = self._acquire()
        try:
            cur = snapshot.con.cursor()
            try:
                yield cur
            finally:
                cur.close()
        finally:
            self._release(snapshot)

    def key(self) -> tuple[str, int] | None:
        """Which snapshot file is being served (path, mtime), for caches."""
        with self._lock:
            return self._snapshot.key if self._snapshot else None

    def open_connections(self) -> int:
        with self._lock:
            return (self._snapshot is not None) + len(self._retired)

    def close(self) -> None:
        with self._lock:
            if self._snapshot is not None:
                self._retire(self._snapshot)
                self._snapshot = None

    def query(self, sql: str, params: list | None = None) -> list[dict]:
        with self.connection() as cur:
            result = cur.execute(sql, params or [])
            names = [d[0] for d in result.description]
            return [dict(zip(names, row)) for row in result.fetchall()]
