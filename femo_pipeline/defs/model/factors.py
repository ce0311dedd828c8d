"""What affects the model (the study's question) as a grid of partitions: one cell per training-set share, label
source, label noise, duplicates kept or removed, and seed (femo_pipeline.factor_grid). Each partition trains its
cell (or takes the record of that cell measured earlier on the same data, on any machine) and the table partition
writes its rows; the report aggregates the cells that exist."""

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from femo_pipeline import factor_grid
from femo_pipeline import warehouse as wh
from femo_pipeline.defs._meta import md_table, warehouse_tables
from femo_pipeline.defs.model._bench import GROUP, MODEL_WRITER
from femo_pipeline.files import InputFileError, read_input_file, write_text_atomic
from femo_pipeline.resources import PROJECT_ROOT, FemoStorage

FACTOR_CELLS = dg.StaticPartitionsDefinition(factor_grid.KEYS)
MEASURED = PROJECT_ROOT / "docs" / "factors"  # cells measured on real FER-2013 and committed (bench/grid.py)
TINY = {"epochs": 1, "width": 8, "patience": 0}
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a cell record holds its predictions on the test images: tens of KB


class DataFactorsConfig(dg.Config):
    reuse: bool = Field(default=True, description=(
        "Take a cell's record when one exists for the same cell and the same Training and test images (by content "
        "hash and label), from this warehouse's cell folder or the cells committed in docs/factors/, instead of "
        "training it again. Off: always train."))
    tiny_in_demo: bool = Field(default=True, description="Demo profile: 1 epoch at width 8 (synthetic faces).")


def find_record(folders: list[Path], key: str, train_fp: str, test_fp: str,
                warn: Callable[[str], None] = lambda _: None) -> dict | None:
    """A record of this cell measured on the same images, from the first folder that has one; a file there
    that cannot be read, is not a record of this cell or is malformed is passed over with `warn` saying why."""
    for folder in folders:
        path = folder / f"{key}.json"
        if not path.exists():
            continue
        try:
            record = json.loads(read_input_file(path, MAX_RECORD_BYTES))
        except (InputFileError, ValueError, RecursionError) as exc:
            warn(f"cell record {path.name} in {folder.name}/ passed over: not readable JSON ({str(exc)[:120]})")
            continue
        if (problem := factor_grid.record_problem(record, key)) is not None:
            warn(f"cell record {path.name} in {folder.name}/ passed over: {problem}")
            continue
        if record.get("training_fingerprint") == train_fp and record.get("test_fingerprint") == test_fp:
            return record
    return None


@dg.asset(partitions_def=FACTOR_CELLS, group_name=GROUP, kinds={"keras"})
def data_factors(context: dg.AssetExecutionContext, config: DataFactorsConfig, training_images: dict,
                 evaluation_images: dict, storage: FemoStorage) -> dg.Output:
    """One cell of the data-factor grid: femo's shipped network trained on a share of Training with one label
    source, label noise, duplicates kept or removed and a seed, scored on the leak-free test against both
    references; no pool held (data_factors_table writes it)."""
    cell = factor_grid.Cell.parse(context.partition_key)
    train = {"frame": training_images["frame"], "x": training_images["x"]}
    test = {"frame": evaluation_images["frame"], "x": evaluation_images["x"]}
    if train["frame"].empty or test["frame"].empty:
        raise dg.Failure(description="data_factors needs FER-2013 Training and test images in the warehouse")
    train_fp, test_fp = (factor_grid.content_fingerprint(train["frame"]),
                         factor_grid.content_fingerprint(test["frame"]))
    own = storage.path("factors")  # this warehouse's cell folder
    folders = [own.parent / own.name] + ([MEASURED] if not storage.is_demo else [])
    record = find_record(folders, cell.key, train_fp, test_fp, context.log.warning) if config.reuse else None
    how = "taken from an earlier measurement of the same cell on the same images"
    if record is None:
        overrides = TINY if storage.is_demo and config.tiny_in_demo else {}
        config_text = ", ".join(f"{k} {v}" for k, v in factor_grid.train_config(cell, len(train["frame"]),
                                                                               **overrides).__dict__.items()
                                if k in ("epochs", "batch_size", "width", "patience"))
        context.log.info(f"data_factors {cell.key}: training ({config_text}); progress every epoch")
        record = factor_grid.run_cell(cell, train, test, log=context.log.info, **overrides)
        record["synthetic"] = storage.is_demo
        write_text_atomic(json.dumps(record) + "\n", storage.path("factors", f"{cell.key}.json"))
        how = "trained in this run"
    scores = pd.DataFrame(record["scores"])
    return dg.Output(record, metadata={
        "cell": cell.key, "how": how, "device": record.get("device_text", "unknown"),
        "train_images": record["train_images"], "epochs_run": f"{record['epochs_run']} of {record['epochs']}",
        "train_seconds": record["train_seconds"], "scores": md_table(scores),
        "synthetic": bool(record.get("synthetic", storage.is_demo)),
    })


@dg.asset(partitions_def=FACTOR_CELLS, kinds={"duckdb"}, metadata=warehouse_tables("data_factors"), **MODEL_WRITER)
def data_factors_table(context: dg.AssetExecutionContext, data_factors: dict, duckdb: DuckDBResource,
                       storage: FemoStorage) -> dg.MaterializeResult:
    """One cell's scores as rows of the warehouse table `data_factors` (that cell's rows replaced; a short pooled
    write); the report draws the curves from whatever cells the table holds."""
    rows = factor_grid.score_rows([data_factors]).assign(
        synthetic=bool(data_factors.get("synthetic", storage.is_demo)),
        created=pd.Timestamp.now(tz="UTC").tz_localize(None))
    with duckdb.get_connection() as con:
        wh.ensure_schema(con)
        columns = [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = "
                                             "'data_factors' AND schema_name = 'main' ORDER BY column_index").fetchall()]
        with wh.transaction(con):
            if data_factors.get("cell") != context.partition_key:  # a record replaces its own partition's rows only
                raise dg.Failure(description=f"the record of partition {context.partition_key} names cell "
                                             f"{str(data_factors.get('cell'))[:80]!r}; nothing written")
            con.execute("DELETE FROM data_factors WHERE cell = ?", [context.partition_key])
            con.register("_cell_rows", rows.reindex(columns=columns))
            con.execute("INSERT INTO data_factors SELECT * FROM _cell_rows")
            con.unregister("_cell_rows")
        n = con.execute("SELECT count(DISTINCT cell) FROM data_factors").fetchone()[0]
    return dg.MaterializeResult(metadata={"cell": data_factors["cell"], "rows": len(rows), "cells_in_table": n,
                                          "synthetic": bool(rows["synthetic"].any())})


factors_job = dg.define_asset_job(
    # not named after the asset: a job and an op of one name conflict in the code location
    "data_factor_grid", selection=[data_factors, data_factors_table], partitions_def=FACTOR_CELLS,
    description="Train (or take the earlier record of) one cell of the data-factor grid and store its scores: "
                "launch a partition per cell, from the UI's partition launcher or `femo factors --cells ...`.")
