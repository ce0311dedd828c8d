"""Serving snapshots: a consistent read-only copy of the warehouse for the HTTP API. Pure module (no Dagster).

The pipeline's DuckDB file is locked by whichever asset writes it; the API never opens it. Instead the warehouse
is CHECKPOINTed (WAL folded into the file), copied to a new uniquely named file under snapshots/, checked, and
published by atomically replacing the symbolic link `target` so that it points at the new copy. Readers resolve
the link: requests in flight finish on the old copy, new requests open the new one. (A unique name per copy
matters: DuckDB caches open databases by path within a process, so reusing one name would keep serving the old
file.) The newest `keep` copies are kept.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import duckdb

SNAPSHOT_TABLES = ("images", "image_pixels", "data_sources", "emotions", "facs_single_units", "survey_responses")


def publish_snapshot(
    con: duckdb.DuckDBPyConnection, warehouse_path: str | os.PathLike, target: str | os.PathLike, keep: int = 2
) -> dict:
    """CHECKPOINT the warehouse open on `con`, copy it, and point the link `target` at the copy.

    Returns the copy's row counts per table and its path.
    """
    warehouse_path, target = Path(warehouse_path), Path(target)
    folder = target.parent / "snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    con.execute("CHECKPOINT")
    copy = folder / f"{target.stem}-{time.time_ns()}{target.suffix}"
    tmp = copy.with_name("." + copy.name + ".tmp")
    try:
        shutil.copyfile(warehouse_path, tmp)
        with duckdb.connect(str(tmp), read_only=True) as check:
            counts = {t: check.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in SNAPSHOT_TABLES}
        os.replace(tmp, copy)
    finally:
        tmp.unlink(missing_ok=True)
    link_tmp = target.with_name("." + target.name + f".{os.getpid()}.link")
    link_tmp.unlink(missing_ok=True)
    link_tmp.symlink_to(os.path.relpath(copy, target.parent))
    os.replace(link_tmp, target)  # atomic switch for readers
    for old in sorted(folder.glob(f"{target.stem}-*{target.suffix}"))[:-keep]:
        old.unlink(missing_ok=True)  # readers still on it keep their open file
    return {**counts, "path": str(copy)}
