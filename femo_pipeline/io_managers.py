"""How asset outputs travel: tables staged as Parquet by Dagster's IO manager, never through hand-written paths.

An asset returns a table (pyarrow or pandas), a dict of named tables, or a `StagedTable` it streamed to a file
from `incoming_path()`; `StagedParquetIOManager` puts it under <data>/staging/ (atomically), records the file,
its row count and an identity stamp in the materialization, and hands downstream assets a `StagedTable` (path
+ rows: a big table such as the folder ingest's, which holds every file's bytes, is read in column subsets or
by DuckDB, never loaded whole). Loading checks the stamp against the upstream's latest materialization, so an
asset reads exactly its upstream's output: a leftover or replaced file is refused with the reason, and an
upstream never materialized in this instance loads as None (the consumer says what it left out).
Daily-partitioned outputs go to <asset>/<partition>.parquet and load as {partition: StagedTable}.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from femo_pipeline.files import stamp, write_parquet_atomic
from femo_pipeline.folders import SPOOL_PREFIX
from femo_pipeline.resources import FemoStorage

STAGING = "staging"
STAGED = "staged_io_manager"  # resource key of StagedParquetIOManager
ALLOW_MISSING = "femo/allow_missing"  # input metadata: an upstream never materialized loads as None


@dataclass(frozen=True)
class StagedTable:
    """A staged Parquet table: read what you need (columns), or hand the path to DuckDB's read_parquet."""

    path: Path
    rows: int

    def read(self, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.path, columns=columns)

    def to_pandas(self, columns: list[str] | None = None) -> pd.DataFrame:
        return self.read(columns).to_pandas()

    @property
    def schema(self) -> pa.Schema:
        return pq.read_schema(self.path)


STALE_INCOMING_S = 24 * 3600


def incoming_path(storage: FemoStorage) -> Path:
    """A fresh file name in the staging folder for an asset that streams its table (moved into place on return).
    Files a failed run left there over a day ago are removed (no run streams for that long), and so are the
    spool folders of folder inspections (folders.SPOOL_PREFIX) that a killed run could not remove."""
    target = storage.path(STAGING, ".incoming", f"{uuid.uuid4().hex}.parquet")
    now = time.time()
    for old in target.parent.glob("*.parquet"):
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > STALE_INCOMING_S:
                old.unlink()
    for old in target.parent.glob(f"{SPOOL_PREFIX}*"):
        with contextlib.suppress(OSError):
            st = old.lstat()
            if stat.S_ISDIR(st.st_mode) and now - st.st_mtime > STALE_INCOMING_S:
                shutil.rmtree(old, ignore_errors=True)
    return target


def _as_arrow(value) -> pa.Table:
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pd.DataFrame):
        return pa.Table.from_pandas(value, preserve_index=False)
    raise dg.Failure(description=f"the staged IO manager stores tables, not {type(value).__name__}")


def _is_partitioned(context: dg.OutputContext) -> bool:
    try:
        return context.asset_partitions_def is not None
    except dg.DagsterInvariantViolationError:  # raised for an asset without partitions
        return False


class StagedParquetIOManager(dg.ConfigurableIOManager):
    """Asset tables as Parquet under <data>/staging (see the module docstring)."""

    storage: FemoStorage

    def _base(self, key: dg.AssetKey, partition: str | None) -> Path:
        name = "/".join(key.path)
        return self.storage.root / STAGING / (f"{name}/{partition}" if partition else name)

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if _is_partitioned(context) and not context.has_asset_partitions:
            raise dg.Failure(description=f"{context.asset_key.to_user_string()} is partitioned by day: materialize "
                                         "one partition (a day), not the asset as a whole")
        partition = context.asset_partition_key if context.has_asset_partitions else None
        base = self._base(context.asset_key, partition)
        base.parent.mkdir(parents=True, exist_ok=True)
        named = obj if isinstance(obj, dict) else {"": obj}
        written, rows = {}, {}
        for name, value in named.items():
            target = base.with_name(f"{base.name}.{name}.parquet" if name else f"{base.name}.parquet")
            if isinstance(value, StagedTable):
                if value.path.parent.name != ".incoming":
                    raise dg.Failure(description="a StagedTable output must be a file from incoming_path() (an "
                                                 "upstream's staged file is never moved)")
                os.replace(value.path, target)  # streamed by the asset: moved into place whole
                rows[name] = value.rows
            else:
                table = _as_arrow(value)
                write_parquet_atomic(table, target)
                rows[name] = table.num_rows
            written[name] = target
        stamps = {name: stamp(path) for name, path in written.items()}
        context.add_output_metadata({
            "staged_files": dg.MetadataValue.json({n or "table": str(p) for n, p in written.items()}),
            "staged_stamp": dg.MetadataValue.json(stamps),
            **({"dagster/row_count": rows[""]} if "" in rows else
               {"rows": dg.MetadataValue.json(rows)}),
        })

    def load_input(self, context: dg.InputContext):
        key = context.asset_key
        if context.has_asset_partitions:  # a non-partitioned consumer of daily partitions: the days materialized
            return load_partitions(context.instance, key, self._base(key, None), context.asset_partition_keys)
        value = load_latest(context.instance, key, self._base(key, None))
        if value is None and not (context.definition_metadata or {}).get(ALLOW_MISSING):
            raise dg.Failure(description=f"{key.to_user_string()} was never materialized in this Dagster instance "
                                         "(or before outputs were staged): materialize it first")
        if value is None:
            context.log.warning(f"{key.to_user_string()} was never materialized in this instance: loaded as None")
        return value


def load_partitions(instance: dg.DagsterInstance, key: dg.AssetKey, folder: Path, partitions) -> dict:
    """{partition: StagedTable} for the partitions this instance materialized, each checked against the stamp of
    its own latest materialization (a day's file from elsewhere, or replaced since, is refused)."""
    wanted = set(partitions)
    latest: dict[str, dict] = {}
    records = instance.fetch_materializations(  # newest first; Dagster answers at most 10,000 at a time
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=sorted(wanted)), limit=10_000).records
    for record in records:
        if record.partition_key in wanted and record.partition_key not in latest:  # newest first
            latest[record.partition_key] = record.asset_materialization.metadata
    out = {}
    for partition, meta in sorted(latest.items()):
        if "staged_stamp" not in meta:
            continue
        out[partition] = load_latest_from(meta, key, folder / partition)
    return out


def latest_staged(instance: dg.DagsterInstance, storage: FemoStorage, asset_name: str):
    """The staged output of an unpartitioned asset's latest materialization, for code outside an asset (the
    sensor): None when never materialized; a Failure when the file is not that output."""
    return load_latest(instance, dg.AssetKey(asset_name), storage.root / STAGING / asset_name)


def load_latest(instance: dg.DagsterInstance, key: dg.AssetKey, base: Path):
    """The staged output of the asset's latest materialization (StagedTable, or a dict of them for named
    tables), None if the asset was never materialized here; a Failure if the file is not that output."""
    attempt = 0
    while True:
        event = instance.get_latest_materialization_event(key)
        meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
        if "staged_stamp" not in meta:
            return None
        try:
            return load_latest_from(meta, key, base)
        except StagedFileReplaced:
            # another run may have just replaced the file and not yet recorded its materialization: look again
            # shortly; a file that still differs from the latest materialization is refused
            attempt += 1
            if attempt > REPLACED_RETRIES:
                raise
            time.sleep(REPLACED_WAIT_S)


REPLACED_RETRIES, REPLACED_WAIT_S = 3, 0.5


class StagedFileReplaced(dg.Failure):
    """The staged file is not the one the asset's latest materialization recorded."""


def load_latest_from(meta: dict, key: dg.AssetKey, base: Path):
    """The staged table(s) a materialization's metadata records, checked against the files' stamps now."""
    name = key.to_user_string()
    stamps = meta["staged_stamp"].value
    out = {}
    for part, expected in stamps.items():
        path = base.with_name(f"{base.name}.parquet" if part == "" else f"{base.name}.{part}.parquet")
        found = stamp(path) if path.exists() else "missing"
        if found != expected:
            raise StagedFileReplaced(description=(
                f"the staged output of {name} is not the one its latest materialization wrote (file "
                f"{'missing' if found == 'missing' else 'replaced since'}): materialize {name} again"))
        out[part] = StagedTable(path, pq.read_metadata(path).num_rows)
    return out[""] if list(out) == [""] else out
