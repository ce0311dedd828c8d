"""The emotion CNN: built, trained and used with Keras 3 only (no `import tensorflow`), on numpy arrays.

So the same code trains under TensorFlow on CPU here and under KERAS_BACKEND=jax or torch on a GPU machine.
Classes are the study's emotion ids 0-6 (Anger, Disgust, Fear, Happiness, Sadness, Surprise, Neutral), which is
also FER-2013's and the `fer` package's order. Pure module (no Dagster).

The package re-exports every name callers use (`from femo_pipeline import model as femo_model;
femo_model.train(...)`); the code lives in: config (TrainConfig, N_CLASSES, HEADS, keras_module), precision
(float32 / mixed bf16), network (femo's CNN), augment (augmentation inside the training graph), data (OpenCV
augmentation, targets, splits, batches), training (schedule, train), inference (test-time views, predict), saving
(save, load) and shipped (the committed models, their declared mix and
the other seeds' predictions). A test that patches a name patches it where it is used: `cpu_has_bf16` in
femo_pipeline.model.precision; `SHIPPED` is one dict shared by the package and femo_pipeline.model.shipped.
"""

from femo_pipeline.model.augment import augment_layer, training_model
from femo_pipeline.model.config import HEADS, N_CLASSES, TrainConfig, keras_module
from femo_pipeline.model.data import (
    augment_batch,
    auto_batch_size,
    class_weights,
    hard_labels,
    stratified_split,
    targets_for,
)
from femo_pipeline.model.inference import TTA_MODES, predict, tta_views
from femo_pipeline.model.network import build_model, split_heads
from femo_pipeline.model.precision import PRECISIONS, cpu_has_bf16, policy, resolve_precision, with_precision
from femo_pipeline.model.saving import load, save
from femo_pipeline.model.shipped import (
    DECLARED,
    SEEDS_DIR,
    SHIPPED,
    SHIPPED_DIR,
    ShippedFileError,
    declared_mix,
    package_json,
    seed_records,
    shipped_path,
)
from femo_pipeline.model.training import compile_model, peak_learning_rate, time_budget_rate, train

__all__ = [
    "DECLARED", "HEADS", "N_CLASSES", "PRECISIONS", "SEEDS_DIR", "SHIPPED", "SHIPPED_DIR", "TTA_MODES",
    "ShippedFileError", "TrainConfig",
    "augment_batch", "augment_layer", "auto_batch_size", "build_model", "class_weights", "compile_model",
    "cpu_has_bf16", "declared_mix", "hard_labels", "keras_module",
    "load", "package_json", "peak_learning_rate", "policy", "predict", "resolve_precision", "save", "seed_records", "shipped_path",
    "split_heads", "stratified_split", "targets_for", "time_budget_rate", "train", "training_model", "tta_views",
    "with_precision",
]
