"""The arithmetic a network computes in: the precision names, whether this CPU does bfloat16 natively, "auto"
resolved, and a model re-made in another precision with the same weights (`with_precision`, `_policy`).
Model files are float32 on disk; the precision is chosen where the model runs. Pure module (no Dagster)."""

from __future__ import annotations

import functools
from pathlib import Path

from femo_pipeline.model.config import keras_module

PRECISIONS = ("float32", "mixed_bfloat16", "auto")


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this (Linux) CPU does bfloat16 arithmetic natively (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """"auto" -> mixed_bfloat16 where the network runs on a GPU or on a CPU with native bf16, float32 elsewhere;
    other names are checked."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "mixed_bfloat16" if cpu_has_bf16() or on_gpu() else "float32"
    return precision


def on_gpu() -> bool:
    """Whether the Keras backend computes on a GPU."""
    from femo_pipeline import devices

    return devices.training_device()["kind"] == "GPU"


def with_precision(model, precision: str):
    """The same network (same weights) computing in `precision` (PRECISIONS): every layer but the softmax
    outputs takes that dtype policy. Model files are saved in float32, so one file serves CPUs with and without
    native bf16; the precision is chosen where the model runs."""
    keras = keras_module()
    precision = resolve_precision(precision)
    outputs = set(model.output_names)  # the layers whose outputs are the model's

    def clone(layer):
        config = layer.get_config()
        last = layer.name in outputs
        config["dtype"] = "float32" if last or layer.__class__.__name__ == "InputLayer" else precision
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    return twin


def _policy(model) -> str:
    """The dtype policy of a model's first computing layer ("float32" or "mixed_bfloat16")."""
    for layer in model.layers:
        if layer.__class__.__name__ != "InputLayer":
            return layer.dtype_policy.name
    return "float32"
