"""Benchmark: where the 2 cores' training time goes - training and inference speed of femo's CNN variants, A/B.

Training speed on a shared 2-core machine is not steady: the CPU available to one process changes over minutes
(measured here: the same epoch ran on 1.9 cores, then on 1.0, at half the speed). So variants are compared
*interleaved*: every variant trains one epoch in turn, for several rounds, on the same augmented images, and each
epoch's speed is reported with the CPU it got (process CPU seconds / wall seconds). Compare variants by the rounds
in which they had the same CPU. Inference: batched (512) images/s of each variant's network on decoded 48x48 faces.

    .venv/bin/python bench/train_speed.py [--images 5120] [--rounds 4]
    .venv/bin/python bench/train_speed.py --tiny     # seconds: tiny networks, a few faces, writes nothing

Writes docs/benchmarks.md ('train_speed' section) and records in docs/benchmarks.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._report import machine, write_records, write_section  # noqa: E402
from femo_pipeline import demo_data, modeldata  # noqa: E402
from femo_pipeline import model as femo_model  # noqa: E402
from femo_pipeline.model.training import _compile  # noqa: E402
from femo_pipeline.vocab import FER2013_CLASSES  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets" / "fer2013"
BASE = femo_model.TrainConfig(batch_size=128, width=32, targets="labels", block_convs=(2, 2, 2, 2))
# (name, config, XLA) - Keras' default under TensorFlow is XLA ("auto"); femo compiles without it
VARIANTS = [
    ("w32 2-2-2-2, XLA (Keras default)", BASE, True),
    ("w32 2-2-2-2", BASE, False),
    ("w32 1-2-2-2", replace(BASE, block_convs=(1, 2, 2, 2)), False),
    ("w32 1-2-2-2, crop 40", replace(BASE, block_convs=(1, 2, 2, 2), crop=40), False),
    ("w16 2-2-2-2", replace(BASE, width=16), False),
]


def faces(n: int, tiny: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """n FER-2013 Training faces (a seeded draw) with labels, or line-drawn demo faces without ../shared; and
    what they are, in words."""
    rng = np.random.default_rng(2013)
    if not tiny and SHARED.is_dir():
        files = [(p, k) for k, name in enumerate(FER2013_CLASSES) for p in sorted((SHARED / "train" / name).glob("*.jpg"))]
        pick = rng.choice(len(files), min(n, len(files)), replace=False)
        x = np.stack([modeldata.to_gray_square(files[i][0].read_bytes(), 48) for i in pick])
        return x[..., None], np.array([files[i][1] for i in pick]), "FER-2013 Training faces (a seeded draw)"
    labels = rng.integers(0, 7, n)
    x = np.stack([demo_data.draw_face(demo_data.FER_FOLDERS[k], 48, np.random.default_rng([i, k]))
                  for i, k in enumerate(labels)])
    return x[..., None], labels, "synthetic line-drawn faces (tiny mode or no ../shared)"


def build(config: femo_model.TrainConfig, xla: bool, steps: int):
    net = femo_model.build_model(config)
    _compile(net, config, steps, config.batch_size)
    net.compile(optimizer=net.optimizer, loss=net.loss, metrics=["accuracy"], jit_compile=xla)
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5120)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tiny", action="store_true", help="width 4, 256 demo faces, 1 round; writes nothing")
    args = parser.parse_args()
    n, rounds = (256, 1) if args.tiny else (args.images, args.rounds)
    x, y, what = faces(n, args.tiny)
    variants = [(name, replace(c, width=4) if args.tiny else c, xla) for name, c, xla in VARIANTS]  # tiny: narrow
    targets = femo_model.targets_for(y, BASE)
    steps = int(np.ceil(len(x) / BASE.batch_size))
    nets = {name: build(c, xla, steps) for name, c, xla in variants}
    rng = np.random.default_rng(0)
    speed: dict[str, list[tuple[float, float]]] = {name: [] for name in nets}
    for r in range(rounds + 1):  # round 0 compiles (and XLA traces); not counted
        for name, net in nets.items():
            xa = femo_model.augment_batch(x, rng)
            start, cpu = time.perf_counter(), time.process_time()
            net.fit(xa, targets, batch_size=BASE.batch_size, epochs=r + 1, initial_epoch=r, verbose=0, shuffle=True)
            wall = time.perf_counter() - start
            if r:
                speed[name].append((len(x) / wall, (time.process_time() - cpu) / wall))
                print(f"round {r} {name}: {len(x) / wall:.0f} images/s on {speed[name][-1][1]:.2f} cores", flush=True)
    infer = {}
    for name, net in nets.items():
        xf = np.repeat(x, max(1, 4096 // len(x)), axis=0).astype(np.float32)
        net.predict(xf[:512], batch_size=512, verbose=0)
        best = 0.0
        for _ in range(3):
            start = time.perf_counter()
            net.predict(xf, batch_size=512, verbose=0)
            best = max(best, len(xf) / (time.perf_counter() - start))
        infer[name] = best
    today, where = dt.date.today().isoformat(), machine()
    rows = []
    for name in nets:
        per_round = ", ".join(f"{s:.0f} ({k:.1f})" for s, k in speed[name])
        rows.append(f"| {name} | {nets[name].count_params():,} | {statistics.median(s for s, _ in speed[name]):.0f} "
                    f"| {per_round} | {infer[name]:,.0f} |")
    section = f"""<!-- train_speed:start -->
## Where the training time goes: CNN variants A/B (`bench/train_speed.py`)

Measured {today} on {where}, Keras on the {femo_model.keras_module().backend.backend()} backend, CPU. {len(x):,}
{what}, batch {BASE.batch_size}, femo's augmentation (numpy/OpenCV, included in the time), one
label head; every variant trains one epoch in turn for {rounds} rounds after a compiling round. Per round:
images/s (cores the process got). Inference: best of 3 batched passes (batch 512, decoded 48x48).

| variant | parameters | training images/s (median) | per round: images/s (cores) | inference images/s |
| --- | --- | --- | --- | --- |
{chr(10).join(rows)}
<!-- train_speed:end -->"""
    print(section)
    if args.tiny:
        return
    slug = {name: name.split(" (")[0].replace(" ", "_").replace(",", "").replace("-", "") for name, _, _ in variants}
    records = []
    for name in nets:
        records.append({"name": f"train_speed.{slug[name]}.train_images_per_s",
                        "value": round(statistics.median(s for s, _ in speed[name]), 1), "unit": "images/s",
                        "machine": where, "date": today})
        records.append({"name": f"train_speed.{slug[name]}.inference_images_per_s", "value": round(infer[name], 1),
                        "unit": "images/s", "machine": where, "date": today})
    write_records(records)
    print(f"written to {write_section('train_speed', section)}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
