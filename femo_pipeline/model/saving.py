"""Model files: `save` writes the network in float32 (whatever it trained in) with its history and config
beside it, atomically; `load` reads one back computing in the precision asked for. Pure module (no Dagster)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from femo_pipeline.files import atomic_path, write_text_atomic
from femo_pipeline.model.config import TrainConfig, keras_module
from femo_pipeline.model.precision import policy, resolve_precision, with_precision


def save(model, folder: Path, history: dict, config: TrainConfig, facts: dict) -> Path:
    path = folder / "emotion_model.keras"
    with atomic_path(path) as tmp:  # float32 on disk whatever the training precision: one file for every CPU
        (model if policy(model) == "float32" else with_precision(model, "float32")).save(tmp)
    write_text_atomic(json.dumps(history, indent=1), folder / "history.json")
    write_text_atomic(json.dumps({**asdict(config), **facts}, indent=1, default=str), folder / "config.json")
    return path


def load(path: Path, precision: str = "float32"):
    """A saved model, computing in `precision` ("auto": bf16 where the CPU does it natively)."""
    net = keras_module().models.load_model(path, compile=False)
    return net if resolve_precision(precision) == "float32" and policy(net) == "float32" else \
        with_precision(net, precision)
