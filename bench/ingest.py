"""Benchmark: image folder to DuckDB warehouse, on real FER-2013 (35,887 files) or N synthetic face files.

Runs the real assets (fer2013_images -> image_catalog -> data_sources, emotions -> images) with dg.materialize on
a fresh data folder, with the code location's own resources (only `storage` and `duckdb` point at the temporary
folder), and reports images/s end to end, the time of each step, and peak memory (getrusage).

    .venv/bin/python bench/ingest.py [--fer2013 ../shared/datasets/fer2013] [--repeats 3]
    .venv/bin/python bench/ingest.py --synthetic 100000 [--repeats 1]
    .venv/bin/python bench/ingest.py --tiny          # a few hundred synthetic files, seconds, writes nothing

Full modes write docs/benchmarks.md ('ingest' section for FER-2013, 'ingest_scale' for the size table) and
records in docs/benchmarks.json; --tiny and --no-write only print.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import dagster as dg  # noqa: E402
import numpy as np  # noqa: E402

from bench._report import RECORDS, machine, write_records, write_section  # noqa: E402
from femo_pipeline import demo_data  # noqa: E402
from femo_pipeline.definitions import core_resources, defs  # noqa: E402
from femo_pipeline.resources import FemoStorage  # noqa: E402

SELECTION = ["fer2013_images", "kaggle_face_images", "image_catalog", "data_sources", "emotions", "images"]
TINY_FILES = 300


def filesystem(path: Path) -> str:
    """The type of the file system holding `path` (the longest mount point of /proc/mounts above it)."""
    real, best, kind = os.path.realpath(path), "", "unknown"
    with contextlib.suppress(OSError), open("/proc/mounts") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 2 and (real == fields[1] or real.startswith(fields[1].rstrip("/") + "/")) \
                    and len(fields[1]) > len(best):
                best, kind = fields[1], fields[2]
    return kind


def machine_note(source: Path | None = None) -> str:
    """The machine, whether others were using its CPU when the bench started, and the file systems of the
    source folder and of the data folder (tempfile's: TMPDIR) when either is in memory (tmpfs)."""
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    shared = f" (load average {load:.1f} on {cores} cores at start: CPU shared with other work)" if load > 0.5 * cores else ""
    places = {"source folder": filesystem(source) if source else "unknown",
              "data folder": filesystem(Path(tempfile.gettempdir()))}
    if "tmpfs" in places.values():
        shared += "; " + ", ".join(f"{k} on {v}" for k, v in places.items())
    return machine() + shared


def write_synthetic(root: Path, n: int, seed: int = 2013) -> int:
    """N distinct 48x48 grey JPEG faces under root/<train|test>/<emotion>/, written one at a time (nothing kept).

    A few dozen line-drawn faces (femo_pipeline.demo_data) are varied per file: noise and the file's number written
    into its top row, so every file has its own bytes and sha256."""
    rng = np.random.default_rng(seed)
    bases = [(emotion, demo_data.draw_face(emotion, 48, np.random.default_rng([seed, k, i])))
             for k, emotion in enumerate(demo_data.FER_FOLDERS) for i in range(8)]
    made = set()
    for i in range(n):
        emotion, base = bases[i % len(bases)]
        split = "test" if i % 5 == 4 else "train"
        usage = "Training" if split == "train" else ("PublicTest" if i % 2 else "PrivateTest")
        folder = root / split / emotion
        if folder not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        img = base.copy()
        img[1:5, 1:5] = np.clip(img[1:5, 1:5].astype(np.int16) + rng.integers(-20, 21, (4, 4)), 0, 255)
        img[0, :8] = np.frombuffer(i.to_bytes(8, "little"), dtype=np.uint8)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        (folder / f"{usage}_{i:08d}.jpg").write_bytes(buf.tobytes())
    return n


class RssSampler:
    """This process's resident memory every 50 ms (a thread), to find each step's peak."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with open("/proc/self/status") as fh:
                kib = next((int(line.split()[1]) for line in fh if line.startswith("VmRSS")), 0)
            self.samples.append((time.time(), kib // 1024))
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        if os.path.exists("/proc/self/status"):
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def peak(self, start: float, end: float) -> int:
        return max((mib for t, mib in self.samples if start <= t <= end + 0.05), default=0)


def run_once(fer_dir: Path, workers: int) -> tuple[float, dict[str, float], dict[str, int]]:
    """(wall seconds, seconds per step, peak resident MiB of this process per step) of one fresh run."""
    with tempfile.TemporaryDirectory() as tmp:
        storage = FemoStorage(data_dir=tmp, profile="real", fer2013_dir=str(fer_dir))
        resources = {**defs.resources, **core_resources(storage)}
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
        instance = dg.DagsterInstance.ephemeral()
        with RssSampler() as rss:
            start = time.perf_counter()
            result = dg.materialize(
                assets, selection=SELECTION, resources=resources, instance=instance,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}},
                            "ops": {name: {"config": {"workers": workers}}
                                    for name in ("fer2013_images", "kaggle_face_images")}},
            )
            wall = time.perf_counter() - start
        assert result.success
        steps, peaks, began = {}, {}, {}
        for entry in instance.all_logs(result.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.is_step_start:
                began[event.step_key] = entry.timestamp
            elif event.is_step_success:
                steps[event.step_key] = event.event_specific_data.duration_ms / 1000
                peaks[event.step_key] = rss.peak(began.get(event.step_key, entry.timestamp), entry.timestamp)
        return wall, steps, peaks


def warm_up(folder: Path) -> float:
    """Read every file once, so each timed run starts with the files in the page cache as far as the kernel keeps
    them (a run that reads a million small files back from a VM's disk can be I/O-bound several times over)."""
    start = time.perf_counter()
    for dirpath, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as fh:
                while fh.read(1 << 20):
                    pass
    return time.perf_counter() - start


def peak_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest finished child (the inspect workers), MiB."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def scale_section(when: str) -> str:
    """The size table, rebuilt from every ingest record in docs/benchmarks.json."""
    records = json.loads(RECORDS.read_text()) if RECORDS.exists() else []
    rows: dict[str, dict] = {}
    for r in records:
        parts = r["name"].split(".")
        if parts[0] == "ingest" and len(parts) == 3:
            rows.setdefault(parts[1], {})[parts[2]] = r
    lines = []
    for dataset, m in sorted(rows.items(), key=lambda kv: kv[1].get("files", {}).get("value", 0)):
        if "images_per_s" not in m:
            continue
        def get(k: str, fmt: str, m: dict = m) -> str:
            return fmt.format(m[k]["value"]) if k in m else "-"
        lines.append(f"| {dataset} | {get('files', '{:,.0f}')} | {get('seconds', '{:.1f}')} "
                     f"| {get('images_per_s', '{:,.0f}')} | {get('peak_main_mib', '{:,.0f}')} "
                     f"| {get('peak_worker_mib', '{:,.0f}')} | {m['images_per_s']['date']} | {m['images_per_s']['machine']} |")
    return f"""<!-- ingest_scale:start -->
## Ingest at scale: time and memory by size (`bench/ingest.py --synthetic N`)

Folder -> warehouse through the same assets as above, best of the runs at each size. `synthetic_N` folders hold
N distinct 48x48 JPEG line-drawn faces (femo_pipeline.demo_data, varied per file) in the FER-2013 layout,
generated before the timing (and every file read once before the first run). Peak memory from getrusage (main process; largest inspect worker). Goal on 2 cores:
>= 20,000 images/s at every size, peak <= 2 GiB.{"" if "synthetic_1000000" in rows else
" 1,000,000 files has not been run yet (`--synthetic 1000000`)."}
Table rebuilt {when} from docs/benchmarks.json.

| data | files | seconds | images/s | peak main MiB | peak worker MiB | date | machine |
| --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(lines)}
<!-- ingest_scale:end -->"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fer2013", default=str(ROOT.parent / "shared" / "datasets" / "fer2013"))
    parser.add_argument("--synthetic", type=int, default=0, help="generate N synthetic face files and time those")
    parser.add_argument("--tiny", action="store_true", help=f"{TINY_FILES} synthetic files, one run, writes nothing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="inspect processes (0: the asset's default, one per core)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.* alone")
    parser.add_argument("--synthetic-dir", default="",
                        help="keep the synthetic files in this folder (made once per N, reused by later runs)")
    args = parser.parse_args()
    if args.tiny:
        args.synthetic, args.repeats, args.no_write = TINY_FILES, 1, True
    with tempfile.TemporaryDirectory(prefix="femo-bench-ingest-") as gen:
        if args.synthetic:
            base = Path(args.synthetic_dir or gen) / f"synthetic_{args.synthetic}"
            fer_dir, dataset, made = base / "fer2013", f"synthetic_{args.synthetic}", base / ".complete"
            if made.exists():
                n_files = args.synthetic
                print(f"reusing {n_files:,} synthetic files in {fer_dir}", flush=True)
            else:
                t0 = time.perf_counter()
                n_files = write_synthetic(fer_dir, args.synthetic)
                made.touch()
                print(f"generated {n_files:,} synthetic files in {time.perf_counter() - t0:.1f} s", flush=True)
        else:
            fer_dir, dataset = Path(args.fer2013), "fer2013"
            if not (fer_dir / "train").is_dir():
                sys.exit(f"no FER-2013 folder at {fer_dir} (pass --fer2013 PATH, --synthetic N or --tiny)")
            n_files = sum(1 for _ in fer_dir.rglob("*.jpg"))
        warm = warm_up(fer_dir)
        print(f"read every file once before timing (page cache): {warm:.1f} s", flush=True)
        runs = [run_once(fer_dir, args.workers) for _ in range(args.repeats)]
    best_wall, best_steps, best_peaks = min(runs, key=lambda r: r[0])
    median_wall = sorted(r[0] for r in runs)[len(runs) // 2]
    peak_self, peak_children = peak_mib()
    rate_best, rate_median = n_files / best_wall, n_files / median_wall
    today, where = dt.date.today().isoformat(), machine_note(fer_dir)
    step_lines = "\n".join(f"| {k} | {v:.2f} | {best_peaks.get(k, 0):,} |" for k, v in best_steps.items())
    section = f"""<!-- ingest:start -->
## Ingest: FER-2013 folder to warehouse (`bench/ingest.py`)

Measured {today} on {where}.
{n_files:,} JPEG files, read, inspected (format, size, colour space from pixels, sha256), staged, catalogued
with duplicate flags, and loaded into DuckDB with their bytes, through `dg.materialize` of the real assets
(Dagster start-up and event logging included), {args.repeats} run(s) on a fresh data folder each, after one
read of every file ({warm:.1f} s) so the runs start from the page cache.

| measure | value |
| --- | --- |
| end to end, best run | {best_wall:.2f} s = **{rate_best:,.0f} images/s** |
| end to end, median run | {median_wall:.2f} s = {rate_median:,.0f} images/s |
| peak memory, main process | {peak_self:,.0f} MiB |
| peak memory, largest worker process | {peak_children:,.0f} MiB |
| goal | >= 20,000 images/s on 2 cores, peak <= 2 GiB |

Step times of the best run, with the main process's peak resident memory during each (sampled every 50 ms):

| step | s | peak MiB |
| --- | --- | --- |
{step_lines}
<!-- ingest:end -->"""
    print(section.replace("FER-2013 folder", f"{dataset} folder") if dataset != "fer2013" else section)
    print(f"{dataset}: {n_files:,} files, best {best_wall:.2f} s = {rate_best:,.0f} images/s, "
          f"peak {peak_self:,.0f} MiB main / {peak_children:,.0f} MiB worker", flush=True)
    if args.tiny:
        assert set(best_steps) >= set(SELECTION), sorted(best_steps)
        print("tiny run: ok, nothing written")
        return
    if args.no_write:
        return
    base = {"machine": where, "date": today}
    write_records([
        {"name": f"ingest.{dataset}.files", "value": n_files, "unit": "files", **base},
        {"name": f"ingest.{dataset}.seconds", "value": round(best_wall, 2), "unit": "s", **base},
        {"name": f"ingest.{dataset}.images_per_s", "value": round(rate_best), "unit": "images/s", **base},
        {"name": f"ingest.{dataset}.peak_main_mib", "value": round(peak_self), "unit": "MiB", **base},
        {"name": f"ingest.{dataset}.peak_worker_mib", "value": round(peak_children), "unit": "MiB", **base},
        *({"name": f"ingest.{dataset}.step_seconds.{k}", "value": round(v, 2), "unit": "s", **base}
          for k, v in best_steps.items()),
        *({"name": f"ingest.{dataset}.step_peak_mib.{k}", "value": v, "unit": "MiB", **base}
          for k, v in best_peaks.items()),
    ])
    if dataset == "fer2013":
        write_section("ingest", section)
    print(f"written to {write_section('ingest_scale', scale_section(today))} and {RECORDS}")


if __name__ == "__main__":
    main()
