"""`femo factors`: list the cells of the data-factor grid, or train a subset of them (one partition each of the
data_factor_grid job) in this Dagster instance."""

from __future__ import annotations

from femo_pipeline import factor_grid
from femo_pipeline.numerals import whole_number


def run_factors(keys: list[str], prepare) -> int:
    """No keys: list the cells, most informative first, with the ones measured in this instance marked
    "measured" and the ones with a committed record (docs/factors/) "recorded". Keys (or
    "next N"): materialize those partitions in turn and say how each went. `prepare` sets up the environment and
    returns the instance's home (femo_pipeline.cli.prepare_environment)."""
    prepare(None)
    import dagster as dg

    from femo_pipeline.definitions import defs
    from femo_pipeline.defs.model.factors import FACTOR_CELLS, MEASURED

    with dg.DagsterInstance.get() as instance:
        done = set(instance.get_materialized_partitions(dg.AssetKey("data_factors_table")))
        if not keys:
            recorded = {p.stem for p in MEASURED.glob("*.json")}
            for cell in factor_grid.ORDER:
                mark = "measured" if cell.key in done else "recorded" if cell.key in recorded else ""
                print(f"{mark:9}{cell.key}")
            print(f"{len(done)} of {len(FACTOR_CELLS.get_partition_keys())} cells measured in this instance; "
                  f"{len(recorded)} recorded in {MEASURED.relative_to(MEASURED.parents[1])}/ on real FER-2013 "
                  "(a partition takes its record instead of training when its images are the same); "
                  "`femo factors CELL ...` (or `femo factors next N`) trains more")
            return 0
        if keys[0] == "next":
            count = whole_number(keys[1]) if len(keys) > 1 else 1
            if len(keys) > 2 or count is None or count < 1:
                print(f"femo factors: 'next N' takes one whole number of cells of at least 1, not {keys[1:]}")
                return 2
            keys = [c.key for c in factor_grid.ORDER if c.key not in done][:count]
        try:
            cells = factor_grid.cells(keys)
        except ValueError as exc:
            print(f"femo factors: {exc}")
            return 2
        job = defs.resolve_job_def("data_factor_grid")
        failed = []
        for i, cell in enumerate(cells, 1):
            print(f"femo factors: cell {i} of {len(cells)}: {cell.key}", flush=True)
            result = job.execute_in_process(instance=instance, partition_key=cell.key, raise_on_error=False)
            if not result.success:
                failed.append(cell.key)
                reasons = [e.event_specific_data.error.message.strip().splitlines()[0]
                           for e in result.all_events if e.is_step_failure]
                print(f"femo factors: {cell.key} failed: {'; '.join(reasons) or 'see the run in the UI'}")
    print(f"femo factors: {len(cells) - len(failed)} of {len(cells)} cells stored"
          + (f"; failed: {', '.join(failed)}" if failed else "")
          + ". The report draws the cells that exist: materialize benchmark_report.")
    return 1 if failed else 0
