"""Benchmark: HTTP API latency and throughput on loopback.

Starts `python -m femo_pipeline serve` on a free port over a serving snapshot (the demo one, built in a tmp folder
unless --snapshot is given), then for two requests - a 50-item page of /images/ and one image as PNG - runs:
- an open-loop load at a fixed rate (default 200 requests/s for 10 s); latency is measured from each request's
  scheduled start, so a server that falls behind shows it (no coordinated omission);
- a closed-loop load with 8 connections for 5 s, for the maximum throughput.
The load generator shares the machine's cores with the server. Results go to docs/benchmarks.md ('api' markers).

    .venv/bin/python bench/api.py [--rate 200] [--seconds 10] [--workers 2]
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
from bench._report import machine, write_section  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_demo_snapshot(folder: Path) -> Path:
    env = {**os.environ, "FEMO_DATA_DIR": str(folder), "DAGSTER_HOME": str(folder / "dagster_home")}
    subprocess.run([sys.executable, "-m", "femo_pipeline", "demo"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshot", help="serving snapshot to read (default: build the demo one in tmp)")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(args.snapshot) if args.snapshot else build_demo_snapshot(Path(tmp))
        port = free_port()
        env = {**os.environ, "FEMO_SERVING_DB": str(snapshot)}
        server = subprocess.Popen([sys.executable, "-m", "femo_pipeline", "serve", "--port", str(port),
                                   "--workers", str(args.workers)], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            for _ in range(200):
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
                         "one PNG (`/images/{id}.png`, 48x48 JPEG transcoded)": f"/images/{image_id}.png"}
            rows = []
            for name, path in scenarios.items():
                warm = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                for _ in range(50):
                    get(warm, path)
                warm.close()
                result = open_loop(port, path, args.rate, args.seconds)
                result["max_rps"] = closed_loop(port, path, 5)
                rows.append((name, result))
                print(name, result, flush=True)
        finally:
            server.terminate()
            server.wait(timeout=20)
    table = "\n".join(
        f"| {name} | {r['requests']} | {r['errors']} | {r['achieved_rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
        f"| {r['max_ms']:.1f} | {r['max_rps']:.0f} |" for name, r in rows)
    section = f"""<!-- api:start -->
## HTTP API on loopback (`bench/api.py`)

Measured {dt.date.today().isoformat()} on {machine()}; uvicorn with {args.workers} worker process(es) over the
demo serving snapshot, load generator (Python threads, keep-alive connections) on the same machine.
Open loop: {args.rate:.0f} requests/s for {args.seconds:.0f} s, latency from each request's scheduled start.
Closed loop: 8 connections for 5 s. Goal: p99 <= 20 ms at 200 requests/s on 2 cores.

| request | requests | errors | achieved req/s | p50 ms | p99 ms | max ms | max req/s (closed loop) |
| --- | --- | --- | --- | --- | --- | --- | --- |
{table}
<!-- api:end -->"""
    print(section)
    if args.no_write:
        return
    print(f"written to {write_section('api', section)}")


if __name__ == "__main__":
    main()
