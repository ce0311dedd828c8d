"""How asset outputs travel: tables staged as Parquet by Dagster's IO manager, never through hand-written paths.

An asset returns a table (pyarrow or pandas), a dict of named tables, or a `StagedTable` it streamed to a file
from `incoming_path()`. `StagedParquetIOManager` writes each materialization to a file of its own,
<data>/staging/<asset>/<run id>[.<name>].parquet (a day partition: <asset>/<day>/<run id>...), records the
file(s) and rows in the materialization, and never writes that path again. A downstream asset gets a
`StagedTable` (path + rows: a big table such as the folder ingest's, which holds every file's bytes, is read in
column subsets or by DuckDB, never loaded whole) for exactly the file a materialization recorded: the upstream's
materialization in the same run when it ran there, else its latest in this Dagster instance. An upstream never
materialized here loads as None where the input allows it, and is a Failure otherwise. Other files in the
folder (another instance's, older versions) are never read, so nothing has to prove a file unchanged.

Old versions are removed when a new one is written: those over a day old, the newest two always kept (a run in
progress, or a catalog built from the previous version, may still read it).
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

from femo_pipeline.files import write_parquet_atomic
from femo_pipeline.folders import SPOOL_PREFIX
from femo_pipeline.resources import FemoStorage

STAGING = "staging"
STAGED = "staged_io_manager"  # resource key of StagedParquetIOManager
ALLOW_MISSING = "femo/allow_missing"  # input metadata: an upstream never materialized loads as None
FILES = "staged_files"  # materialization metadata: {name or "table": path} of the files it wrote
STALE_S = 24 * 3600  # a superseded version, or a file a failed run left in .incoming, is removed after this
KEEP_VERSIONS = 2  # the newest versions of an asset (partition) are kept whatever their age


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


def incoming_path(storage: FemoStorage) -> Path:
    """A fresh file name in the staging folder for an asset that streams its table (moved into place on return).
    Files a failed run left there over a day ago are removed (no run streams for that long), and so are the
    spool folders of folder inspections (folders.SPOOL_PREFIX) that a killed run could not remove."""
    target = storage.path(STAGING, ".incoming", f"{uuid.uuid4().hex}.parquet")
    now = time.time()
    for old in target.parent.glob("*.parquet"):
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > STALE_S:
                old.unlink()
    for old in target.parent.glob(f"{SPOOL_PREFIX}*"):
        with contextlib.suppress(OSError):
            st = old.lstat()
            if stat.S_ISDIR(st.st_mode) and now - st.st_mtime > STALE_S:
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


def remove_old_versions(folder: Path, now: float | None = None) -> list[Path]:
    """Remove the versions (<version>[.<name>].parquet) in `folder` that are over STALE_S old, except the newest
    KEEP_VERSIONS; returns the files removed."""
    versions: dict[str, list[Path]] = {}
    for path in folder.glob("*.parquet"):
        versions.setdefault(path.name.split(".", 1)[0], []).append(path)
    newest = []
    for version, files in versions.items():
        with contextlib.suppress(OSError):  # removed meanwhile by another run's clean-up
            newest.append((max(p.stat().st_mtime for p in files), version))
    newest.sort(reverse=True)
    now = time.time() if now is None else now
    removed = []
    for mtime, version in newest[KEEP_VERSIONS:]:
        if now - mtime > STALE_S:
            for path in versions[version]:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


class StagedParquetIOManager(dg.ConfigurableIOManager):
    """Asset tables as Parquet under <data>/staging, one file per materialization (see the module docstring)."""

    storage: FemoStorage

    def _folder(self, key: dg.AssetKey, partition: str | None = None) -> Path:
        folder = self.storage.root / STAGING / "/".join(key.path)
        return folder / partition if partition else folder

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if _is_partitioned(context) and not context.has_asset_partitions:
            raise dg.Failure(description=f"{context.asset_key.to_user_string()} is partitioned by day: materialize "
                                         "one partition (a day), not the asset as a whole")
        folder = self._folder(context.asset_key, context.asset_partition_key if context.has_asset_partitions else None)
        folder.mkdir(parents=True, exist_ok=True)
        named = obj if isinstance(obj, dict) else {"": obj}
        written, rows = {}, {}
        for name, value in named.items():
            target = folder / (f"{context.run_id}.{name}.parquet" if name else f"{context.run_id}.parquet")
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
            written[name or "table"] = str(target)
        remove_old_versions(folder)
        context.add_output_metadata({
            FILES: dg.MetadataValue.json(written),
            **({"dagster/row_count": rows[""], "staged_file": dg.MetadataValue.path(written["table"])}
               if "" in rows else {"rows": dg.MetadataValue.json(rows)}),
        })

    def load_input(self, context: dg.InputContext):
        key = context.asset_key
        if context.has_asset_partitions:  # a non-partitioned consumer of daily partitions: the days materialized
            return load_partitions(context.instance, key, context.asset_partition_keys, _producing_run(context))
        value = load_recorded(recorded_metadata(context.instance, key, _producing_run(context)), key)
        if value is None and not (context.definition_metadata or {}).get(ALLOW_MISSING):
            raise dg.Failure(description=f"{key.to_user_string()} was never materialized in this Dagster instance "
                                         "(or before outputs were staged): materialize it first")
        if value is None:
            context.log.warning(f"{key.to_user_string()} was never materialized in this instance: loaded as None")
        return value


def _producing_run(context: dg.InputContext) -> str | None:
    """The id of the run whose step made the upstream output, when that step is part of this run (or of the run
    a re-execution came from); for an upstream loaded from earlier runs Dagster gives a placeholder id that no run
    has, so the latest materialization is loaded."""
    try:
        return context.upstream_output.run_id if context.upstream_output is not None else None
    except dg.DagsterInvariantViolationError:
        return None


def _in_run(instance: dg.DagsterInstance, run_id: str | None, key: dg.AssetKey) -> list[dg.EventLogRecord]:
    """This run's materializations of `key`, oldest first ([] outside a run)."""
    if not run_id:
        return []
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return [r for r in records if r.asset_key == key]


def recorded_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, run_id: str | None = None) -> dict | None:
    """The metadata of the materialization to load: the one of run `run_id` if it materialized `key`, else the
    latest in the instance; None when the asset was never materialized (or not by the staged IO manager)."""
    mine = _in_run(instance, run_id, key)
    if mine:
        meta = mine[-1].asset_materialization.metadata
    else:
        event = instance.get_latest_materialization_event(key)
        meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    return meta if FILES in meta else None


def load_recorded(meta: dict | None, key: dg.AssetKey):
    """The staged table(s) a materialization recorded (StagedTable, or {name: StagedTable} for named tables);
    None for None. A recorded file that is gone (removed by hand, or as an old version) is a Failure."""
    if meta is None:
        return None
    out = {}
    for name, path in meta[FILES].value.items():
        path = Path(path)
        again = f"materialize {key.to_user_string()} again"
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            raise dg.Failure(description=f"the staged file of {key.to_user_string()} that its materialization "
                                         f"recorded is gone ({path}): {again}") from None
        if not stat.S_ISREG(mode):  # a FIFO would block the reader; a link could lead out of the data folder
            raise dg.Failure(description=f"the staged file of {key.to_user_string()} ({path}) has been replaced "
                                         f"by something that is not a regular file: {again}")
        try:
            out[name] = StagedTable(path, pq.read_metadata(path).num_rows)
        except (OSError, pa.ArrowException) as exc:
            raise dg.Failure(description=f"the staged file of {key.to_user_string()} ({path}) is not a readable "
                                         f"Parquet table ({str(exc)[:120]}): {again}") from None
    return out["table"] if list(out) == ["table"] else out


def load_partitions(instance: dg.DagsterInstance, key: dg.AssetKey, partitions, run_id: str | None = None) -> dict:
    """{partition: StagedTable} for the partitions this instance materialized: per day, the file of this run's
    materialization if it made one, else of the day's latest."""
    wanted = set(partitions)
    chosen: dict[str, dict] = {r.partition_key: r.asset_materialization.metadata
                               for r in _in_run(instance, run_id, key) if r.partition_key in wanted}
    records = instance.fetch_materializations(  # newest first; Dagster answers at most 10,000 at a time
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=sorted(wanted)), limit=10_000).records
    for record in records:
        if record.partition_key in wanted and record.partition_key not in chosen:
            chosen[record.partition_key] = record.asset_materialization.metadata
    return {day: load_recorded(meta, key) for day, meta in sorted(chosen.items()) if FILES in meta}


def carried_forward(context: dg.AssetExecutionContext, storage: FemoStorage, synthetic: bool):
    """The staged output of this asset's (or this partition's) latest materialization, copied to fresh incoming
    files (StagedTable, or {name: StagedTable}), for an asset whose source is not configured in this run: the
    rows it staged before stay, so a run without a setting (a daemon's environment without an API key or a
    folder path) never empties the warehouse tables built on it. None when there is nothing to keep: never
    materialized, no rows, its files gone, or made under the other profile (`synthetic` differs)."""
    key = context.asset_key
    if context.has_partition_key:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[context.partition_key]), limit=1).records
        meta = records[0].asset_materialization.metadata if records else {}
    else:
        event = context.instance.get_latest_materialization_event(key)
        meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    was_synthetic = meta.get("synthetic")
    if FILES not in meta or bool(was_synthetic.value if was_synthetic is not None else False) != synthetic:
        return None
    try:
        value = load_recorded(meta, key)
    except dg.Failure:
        return None
    named = value if isinstance(value, dict) else {"": value}
    if not any(t.rows for t in named.values()):
        return None
    copies = {}
    for name, table in named.items():
        target = incoming_path(storage)
        # a copy, not a link: a link would share the old file's mtime, and .incoming removes files a day old
        shutil.copyfile(table.path, target)
        copies[name] = StagedTable(target, table.rows)
    return copies if isinstance(value, dict) else copies[""]


def latest_staged(instance: dg.DagsterInstance, asset_name: str):
    """The staged output of an unpartitioned asset's latest materialization, for code outside an asset (the
    sensor): None when never materialized; a Failure when its file is gone."""
    key = dg.AssetKey(asset_name)
    return load_recorded(recorded_metadata(instance, key), key)
