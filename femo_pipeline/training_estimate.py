"""How long training femo's CNN will take on this machine, said before it starts: the number of FER-2013
Training images, the epochs (or the time budget) of the run's config, and this machine's speed measured on a
short trial of the same network on random images. Pure module (no Dagster)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from femo_pipeline.sources import SOURCES

TRIAL_IMAGES = 640  # trial set: an epoch of it takes a few seconds on 2 cores
VALIDATION_SHARE = 0.1


def training_images(fer2013_train: Path | None, warehouse: Path | None, demo_per_class: int) -> int:
    """FER-2013 Training images the run will train on: the folder's files (real profile), else the warehouse's
    (read-only; a warehouse in use is skipped), else the demo's generated count."""
    if fer2013_train is not None and fer2013_train.is_dir():
        return sum(1 for p in fer2013_train.rglob("*") if p.is_file() and not p.name.startswith("."))
    if warehouse is not None and warehouse.is_file():
        try:
            import duckdb

            with duckdb.connect(str(warehouse), read_only=True) as con:
                n = con.execute("SELECT count(*) FROM images WHERE source_id = ? AND split = 'train'",
                                [SOURCES["fer2013"].id]).fetchone()[0]
            if n:
                return int(n)
        except Exception:  # noqa: BLE001 - locked, older schema: fall through to the demo's count
            pass
    return demo_per_class * 7


def measure_speed(config, trial_images: int = TRIAL_IMAGES) -> float:
    """Training images per second of `config`'s network on this machine: the second of two epochs on random
    images (the first pays for compiling)."""
    from femo_pipeline import model as femo_model

    rng = np.random.default_rng(0)
    side = config.image_size
    x = rng.integers(0, 256, (trial_images, side, side, 1), dtype=np.uint8)
    y = np.arange(trial_images) % 7
    marks: list[float] = [time.perf_counter()]
    trial = dataclasses.replace(config, epochs=2, minutes=0, max_minutes=0, targets="labels")
    femo_model.train(x, y, trial, log=lambda message: marks.append(time.perf_counter())
                     if message.startswith("epoch ") else None)
    # the second epoch; were fewer epoch lines logged, the whole trial (compiling included) over its two epochs
    epoch = marks[-1] - marks[-2] if len(marks) >= 3 else (time.perf_counter() - marks[0]) / 2
    return trial_images * (1 - VALIDATION_SHARE) / max(epoch, 1e-3)


def estimate_seconds(images: int, config, speed: float) -> float:
    """Wall time of training `images` images with `config` at `speed` (validation passes included)."""
    if config.minutes:
        return config.minutes * 60.0
    seconds = images * (1 - config.val_fraction) * config.epochs / speed * 1.1  # + validation, checkpoints
    return min(seconds, config.max_minutes * 60.0) if config.max_minutes else seconds
