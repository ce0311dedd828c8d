"""Benchmark: the data-factor grid (femo_pipeline.factor_grid) on real FER-2013, outside Dagster.

Trains the chosen cells (default: every cell, most informative first), each in turn in one of `--workers`
processes, and writes each cell's record to DIR/<cell key>.json as soon as it is done: a cell whose record exists
is not trained again (resumable), and records made on other machines can be copied in. `--report` turns the
records in DIR into docs/benchmarks.md ('factors' markers) and one record per cell, reference and metric in
docs/benchmarks.json (factor_cell_<key>_<reference>_<metric>). The pipeline's
data_factors asset runs the same cells one partition each and takes a record from its cell folder when one for the
same data exists.

    .venv/bin/python bench/grid.py --dir docs/factors --cells fer2013-s010-n00-kept-seed0   # one cell
    KERAS_BACKEND=torch python bench/grid.py --pack fer2013.npz --workers 6 --minutes 4      # a GPU machine
    .venv/bin/python bench/grid.py --dir docs/factors --report                              # the curves
    .venv/bin/python bench/grid.py --tiny                                                   # seconds, writes nothing
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import _fer2013  # noqa: E402
from bench._report import machine, tune_convolutions, write_records, write_section  # noqa: E402
from femo_pipeline import factor_grid as grid  # noqa: E402

_DATA: dict = {}


def _worker(queue, done, out: str, deadline: float, overrides: dict) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    train, test = _DATA["train"], _DATA["test"]
    tune_convolutions()
    while time.time() < deadline:
        try:
            key = queue.get_nowait()
        except Exception:  # queue.Empty: nothing left
            return
        path = Path(out) / f"{key}.json"
        if path.exists():
            continue
        try:
            record = grid.run_cell(grid.Cell.parse(key), train, test, log=lambda m: print(m, flush=True),
                                   **overrides)
        except Exception as exc:  # one failed cell is reported, the others go on
            print(f"cell {key} failed: {type(exc).__name__}: {exc}", flush=True)
            continue
        record["measured"] = dt.date.today().isoformat()
        record["machine"] = machine()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record) + "\n")
        tmp.replace(path)
        done.put(key)


def run(keys: list[str], out: Path, workers: int, minutes: float, overrides: dict) -> list[str]:
    """Train the cells in `keys` that have no record in `out` yet, at most `minutes` of starting new cells."""
    out.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("fork")  # the decoded faces are shared with the workers, no framework loaded yet
    queue, done = ctx.Queue(), ctx.Queue()
    todo = [k for k in keys if not (out / f"{k}.json").exists()]
    for k in todo:
        queue.put(k)
    print(f"{len(todo)} of {len(keys)} cells to train, {workers} worker(s)", flush=True)
    deadline = time.time() + (minutes * 60 if minutes else 1e9)
    procs = [ctx.Process(target=_worker, args=(queue, done, str(out), deadline, overrides))
             for _ in range(max(1, workers))]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    finished = []
    while not done.empty():
        finished.append(done.get())
    return finished


def records(folder: Path) -> list[dict]:
    """The cell records of a folder; one that is not a record of the cell its file names stops the report."""
    found = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if (problem := grid.record_problem(record, path.stem)) is not None:
            raise SystemExit(f"{path}: {problem}")
        found.append(record)
    return found


def cell_records(recs: list[dict]) -> list[dict]:
    """One benchmark record per measured cell, reference and metric (value with its 95 % CI), named by the cell,
    with the machine and the device it trained on."""
    return [{"name": f"factor_cell_{r['cell']}_{s['reference']}_{s['metric']}", "value": round(s["value"], 4),
             "ci_low": round(s["ci_low"], 4), "ci_high": round(s["ci_high"], 4), "unit": "fraction",
             "test_images": s["test_images"], "train_images": r["train_images"], "train_seconds": r["train_seconds"],
             "machine": r["machine"], "device": r["device_text"], "date": r["measured"]}
            for r in recs for s in r["scores"]]


def report(folder: Path) -> str:
    recs = records(folder)
    curves, missing = grid.aggregate(recs)
    today = dt.date.today().isoformat()
    devices = sorted({r["device_text"] for r in recs})
    per_cell = sorted({(r["device_text"], r["share"], r["labels"]): r["train_seconds"] for r in recs}.items())

    def fmt(rows, metric, reference):
        sub = rows[(rows["metric"] == metric) & (rows["reference"] == reference)]
        return "\n".join(
            f"| {r.curve} | {r.labels} | {r.x} | {100 * r['mean']:.1f} | "
            f"{'-' if r.n < 2 else f'{100 * r.sd:.1f}'} | {100 * r['min']:.1f}-{100 * r['max']:.1f} | {r.n} |"
            for _, r in sub.iterrows())

    head = "| curve | labels | x | mean % | sd (seeds) | range | seeds |\n| --- | --- | --- | --- | --- | --- | --- |"
    unfinished = [f"{r['cell']} (validation {100 * r['best_validation_accuracy']:.1f} % at epoch {r['best_epoch']})"
                  for r in recs if r["best_epoch"] >= r["epochs_run"]]
    costs = "\n".join(f"| {d} | {s} % | {lab} | {sec:.0f} s |" for (d, s, lab), sec in per_cell)
    section = f"""<!-- factors:start -->
## What affects the model: the data-factor grid (`bench/grid.py`)

{len(recs)} of {len(grid.GRID)} cells measured, {len(missing)} missing (records in `docs/factors/`, written
{today}). Trained on: {'; '.join(devices)}. Each cell: femo's shipped network (width 32, 1-2-2-2),
{grid.EPOCHS_AT_FULL} epochs at 100 % of Training and {grid.EPOCHS_AT_FULL} / sqrt(share) below (at most
{grid.MAX_EPOCHS}), best validation checkpoint, early stopping on validation; duplicates removed train as many steps
as kept. Scored on the leak-free test images with FER+ votes, one view. x: share of Training (size), share of
labels replaced at random (noise), duplicates removed = 1 (duplicates). Mean over seeds, sample sd, range.
Cells whose best validation epoch was their last (still improving when their epochs ran out; every record is
kept as measured): {'; '.join(unfinished) or 'none'}.

Against the FER+ crowd (leave one out), accuracy:

{head}
{fmt(curves, "accuracy", "ferplus")}

Against the FER-2013 labels, accuracy:

{head}
{fmt(curves, "accuracy", "fer2013")}

Class-balanced recall against the crowd:

{head}
{fmt(curves, "balanced_recall", "ferplus")}

Training time per cell (one cell, as measured; several cells shared the device where workers > 1):

| device | share | labels | seconds |
| --- | --- | --- | --- |
{costs}
<!-- factors:end -->"""
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=str(ROOT / "docs" / "factors"), help="cell records (read and written)")
    parser.add_argument("--pack", default="", help="FER-2013 pack (bench/_fer2013.py pack); default: the folder")
    parser.add_argument("--cells", nargs="*", help="cell keys (default: the whole grid, most informative first)")
    parser.add_argument("--workers", type=int, default=1, help="cells trained at once (processes)")
    parser.add_argument("--minutes", type=float, default=0, help="start no new cell after this long (0: no limit)")
    parser.add_argument("--report", action="store_true", help="write the curves of the records in --dir to docs/")
    parser.add_argument("--tiny", action="store_true", help="two cells on a few hundred faces, 1 epoch; writes nothing")
    args = parser.parse_args()
    folder = Path(args.dir)
    if args.report:
        section = report(folder)
        print(section)
        print(f"written to {write_section('factors', section)} and {write_records(cell_records(records(folder)))}")
        return
    keys = [c.key for c in grid.cells(args.cells or None)]
    overrides = {}
    if args.tiny:
        keys, overrides = keys[:2], {"epochs": 1, "width": 8, "patience": 0}
        folder = Path(tempfile.mkdtemp(prefix="femo-grid-"))
    start = time.perf_counter()
    train, test = _fer2013.load(args.pack or None, limit=40 if args.tiny else 0)
    _DATA.update(train=train, test=test)
    print(f"loaded {len(train['x']):,} training and {len(test['x']):,} test faces in "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    finished = run(keys, folder, args.workers, args.minutes, overrides)
    print(f"{len(finished)} cell(s) trained in {time.perf_counter() - start:.0f} s; records in {folder}")
    if args.tiny and len(finished) != len(keys):
        sys.exit(f"tiny grid: {len(finished)} of {len(keys)} cells finished")


if __name__ == "__main__":
    main()
