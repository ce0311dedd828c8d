"""Benchmark: HTTP API latency and throughput on loopback.

Starts `python -m femo_pipeline serve` on a free port over a serving snapshot (the demo one, built in a tmp folder
unless --snapshot is given), then for each request - a 50-item page of /images/, one image as PNG, and the gallery
home page - runs:
- an open-loop load at a fixed rate (default 500 requests/s for 10 s); latency is measured from each request's
  scheduled start, so a server that falls behind shows it (no coordinated omission);
- a closed-loop load with 8 connections for 5 s, for the maximum throughput.
The load generator shares the machine's cores with the server. Results go to docs/benchmarks.md ('api' markers)
and docs/benchmarks.json. Goal on 2 cores: >= 1,000 requests/s closed loop for a page of 50, and
p99 <= 20 ms at 500 requests/s open loop.

    .venv/bin/python bench/api.py [--rate 500] [--seconds 10] [--workers 1] [--snapshot PATH]
    .venv/bin/python bench/api.py --tiny     # seconds: a hand-made 120-image snapshot, short loads, writes nothing
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._report import machine, write_records, write_section  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_demo_snapshot(folder: Path) -> Path:
    env = {**os.environ, "FEMO_DATA_DIR": str(folder), "DAGSTER_HOME": str(folder / "dagster_home")}
    subprocess.run([sys.executable, "-m", "femo_pipeline", "demo"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return folder / "serving" / "femo.duckdb"


def build_tiny_snapshot(folder: Path, n: int = 120) -> Path:
    """A snapshot with n drawn 48x48 FER-2013-like images, made directly (no Dagster run): for --tiny."""
    import hashlib

    import cv2
    import duckdb
    import numpy as np

    from femo_pipeline import serving, warehouse

    path = folder / "warehouse" / "femo.duckdb"
    path.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with duckdb.connect(str(path)) as con:
        warehouse.ensure_schema(con)
        warehouse.upsert_data_sources(con, {"fer2013"})
        warehouse.upsert_emotions(con)
        for k in range(n):
            png = cv2.imencode(".png", rng.integers(0, 255, (48, 48), dtype=np.uint8))[1].tobytes()
            split, usage = ("test", "PublicTest") if k % 4 == 0 else ("train", "Training")
            con.execute("INSERT INTO images (id, source_id, emotion_id, split, usage, rel_path, label_raw, height, "
                        "width, aspect_ratio, image_format, color_space, channels, file_size_bytes, content_hash, "
                        "duplicate_count, duplicate_cross_split, duplicate_label_conflict, synthetic) "
                        "VALUES (?, 4, ?, ?, ?, ?, NULL, 48, 48, 1.0, 'PNG', 'Grayscale', 1, ?, ?, 1, FALSE, FALSE, "
                        "TRUE)", [1000 + k, k % 7, split, usage, f"{split}/{k}.png", len(png),
                                  hashlib.sha256(png).hexdigest()])
            con.execute("INSERT INTO image_pixels VALUES (?, ?)", [1000 + k, png])
        serving.publish_snapshot(con, path, folder / "serving" / "femo.duckdb")
    return folder / "serving" / "femo.duckdb"


def get(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response.status


def open_loop(port: int, path: str, rate: float, seconds: float, threads: int = 32) -> dict:
    total = int(rate * seconds)
    start = time.perf_counter() + 0.3
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors = []

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while True:
            with lock:
                i = next(counter)
            if i >= total:
                break
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                status = get(conn, path)
            except OSError as exc:
                errors.append(repr(exc))
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            done = time.perf_counter()
            with lock:
                latencies.append(done - scheduled)
                if status != 200:
                    errors.append(status)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {"requests": len(latencies), "errors": len(errors), "achieved_rps": len(latencies) / elapsed,
            "p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": latencies[-1] * 1000}


def closed_loop(port: int, path: str, seconds: float, connections: int = 8) -> float:
    stop = time.perf_counter() + seconds
    counts = [0] * connections

    def worker(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.perf_counter() < stop:
            get(conn, path)
            counts[k] += 1

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / seconds


def run(snapshot: Path, rate: float, seconds: float, closed_seconds: float, workers: int) -> tuple[list, int]:
    """Start the server over the snapshot and load it with each scenario: [(name, result)], images in it."""
    port = free_port()
    env = {**os.environ, "FEMO_SERVING_DB": str(snapshot)}
    server = subprocess.Popen([sys.executable, "-m", "femo_pipeline", "serve", "--port", str(port),
                               "--workers", str(workers)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/images/?page_size=1")
                first = json.loads(conn.getresponse().read())
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("server did not start")
        image_id = first["images"][0]["id"]
        scenarios = {"page of 50 (`/images/?page=2&page_size=50`)": "/images/?page=2&page_size=50",
                     "one PNG (`/images/{id}.png`)": f"/images/{image_id}.png",
                     "gallery page (`/`, 60 faces)": "/"}
        rows = []
        for name, path in scenarios.items():
            warm = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            for _ in range(50):
                assert get(warm, path) == 200, path
            warm.close()
            result = open_loop(port, path, rate, seconds)
            result["max_rps"] = closed_loop(port, path, closed_seconds)
            rows.append((name, result))
            print(name, {k: round(v, 1) for k, v in result.items()}, flush=True)
        return rows, first["total"]
    finally:
        server.terminate()
        server.wait(timeout=20)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshot", help="serving snapshot to read (default: build the demo one in tmp)")
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--note", default="", help="said beside the figures (e.g. 'CPU shared with a training run')")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="a few seconds on a hand-made snapshot; writes nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            rows, _ = run(build_tiny_snapshot(Path(tmp)), rate=50, seconds=1, closed_seconds=1, workers=1)
            bad = [name for name, r in rows if r["errors"] or not r["requests"]]
            print("tiny run: " + ("errors in " + ", ".join(bad) if bad else "ok, nothing written"))
            raise SystemExit(1 if bad else 0)
        snapshot = Path(args.snapshot) if args.snapshot else build_demo_snapshot(Path(tmp))
        rows, total = run(snapshot, args.rate, args.seconds, 5, args.workers)
    table = "\n".join(
        f"| {name} | {r['requests']} | {r['errors']} | {r['achieved_rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
        f"| {r['max_ms']:.1f} | {r['max_rps']:.0f} |" for name, r in rows)
    today, where = dt.date.today().isoformat(), machine()
    note = f" {args.note}." if args.note else ""
    section = f"""<!-- api:start -->
## HTTP API on loopback (`bench/api.py`)

Measured {today} on {where}; uvicorn with {args.workers} worker process(es) over
{"a serving snapshot given with --snapshot" if args.snapshot else "the demo serving snapshot"} ({total} images), load
generator (Python threads, keep-alive connections) on the same machine.{note}
Open loop: {args.rate:.0f} requests/s for {args.seconds:.0f} s, latency from each request's scheduled start.
Closed loop: 8 connections for 5 s. Answers come from the per-snapshot response cache after the warm-up (50
requests), as they do for any page asked twice. Goal on 2 cores: >= 1,000 requests/s closed loop for a
page of 50, p99 <= 20 ms at 500 requests/s open loop.

| request | requests | errors | achieved req/s | p50 ms | p99 ms | max ms | max req/s (closed loop) |
| --- | --- | --- | --- | --- | --- | --- | --- |
{table}
<!-- api:end -->"""
    print(section)
    if args.no_write:
        return
    records = []
    for name, r in rows:
        short = name.split(" (")[0].replace(" ", "_")
        records += [
            {"name": f"api.{short}.closed_loop_rps", "value": round(r["max_rps"], 1), "unit": "requests/s"},
            {"name": f"api.{short}.open_loop_p99_ms_at_{args.rate:.0f}rps", "value": round(r["p99_ms"], 2), "unit": "ms"},
            {"name": f"api.{short}.open_loop_p50_ms_at_{args.rate:.0f}rps", "value": round(r["p50_ms"], 2), "unit": "ms"},
        ]
    for record in records:
        record.update(machine=where + (f" ({args.note})" if args.note else ""), date=today)
    print(f"written to {write_section('api', section)} and {write_records(records)}")


if __name__ == "__main__":
    main()
