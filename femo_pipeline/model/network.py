"""femo's CNN itself: `build_model` (a VGG-style network from a TrainConfig, crop and scaling inside, one head
or a head per label source) and `split_heads` (a multi-task model as one single-output model per head).
Pure module (no Dagster)."""

from __future__ import annotations

from femo_pipeline.model.config import HEADS, N_CLASSES, TrainConfig, keras_module
from femo_pipeline.model.precision import resolve_precision


def build_model(config: TrainConfig, n_classes: int = N_CLASSES):
    """A VGG-style CNN: a centre crop, four blocks of 3x3 convolutions (block_convs) with batch norm, global
    pooling, a head.

    Takes image_size x image_size x 1 uint8-range input, so callers never crop or scale themselves. With
    precision mixed_bfloat16 every layer but the softmax computes in bf16 (weights stay float32)."""
    keras = keras_module()
    layers = keras.layers
    dtype = resolve_precision(config.precision)
    inputs = keras.Input((config.image_size, config.image_size, 1), name="face")
    x = layers.Rescaling(1 / 255.0, dtype=dtype)(inputs)
    if config.crop and config.crop < config.image_size:
        x = layers.CenterCrop(config.crop, config.crop, dtype=dtype)(x)
    for block, convs in enumerate(config.block_convs):
        filters = config.width * 2**block
        for _ in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=dtype)(x)
            x = layers.BatchNormalization(momentum=0.9, dtype=dtype)(x)
            x = layers.Activation("relu", dtype=dtype)(x)
        x = layers.MaxPooling2D(dtype=dtype)(x)
        x = layers.Dropout(0.1 * block, dtype=dtype)(x)
    x = layers.GlobalAveragePooling2D(dtype=dtype)(x)
    x = layers.Dense(8 * config.width, use_bias=False, dtype=dtype)(x)
    x = layers.BatchNormalization(momentum=0.9, dtype=dtype)(x)
    x = layers.Activation("relu", dtype=dtype)(x)
    x = layers.Dropout(0.4, dtype=dtype)(x)
    if config.targets == "both":  # one trunk, a head per label source (multi-task)
        outputs = {name: layers.Dense(n_classes, activation="softmax", name=name, dtype="float32")(x)
                   for name in HEADS}
    else:
        outputs = layers.Dense(n_classes, activation="softmax", name="emotion", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="femo_cnn")


def split_heads(model) -> dict:
    """{label source: single-output model}; a multi-task model gives one model per head (sharing the trunk)."""
    keras = keras_module()
    if isinstance(model.output, dict):
        return {name: keras.Model(model.input, model.output[name], name=f"femo_cnn_{name}") for name in HEADS}
    return {"model": model}
