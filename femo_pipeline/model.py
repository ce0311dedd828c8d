"""The emotion CNN: built, trained and used with Keras 3 only (no `import tensorflow`), on numpy arrays.

So the same code trains under TensorFlow on CPU here and under KERAS_BACKEND=jax or torch on a GPU machine.
Classes are the study's emotion ids 0-6 (Anger, Disgust, Fear, Happiness, Sadness, Surprise, Neutral), which is
also FER-2013's and the `fer` package's order. Pure module (no Dagster).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

N_CLASSES = 7


@dataclass(frozen=True)
class TrainConfig:
    image_size: int = 48
    epochs: int = 15
    batch_size: int = 0  # 0: automatic, about 100 steps per epoch, between 16 and 128
    seed: int = 2013
    val_fraction: float = 0.1
    width: int = 32  # filters of the first block; doubles per block
    learning_rate: float = 1e-3
    augment: bool = True  # flip, small affine (shift, rotation, zoom), random erasing
    class_weighting: bool = True
    max_minutes: float = 0  # stop after the epoch that passes this training time (0: no limit)


def keras_module():
    import keras  # imported late: loading a backend takes seconds

    return keras


def build_model(config: TrainConfig, n_classes: int = N_CLASSES):
    """A VGG-style CNN: four blocks of two 3x3 convolutions with batch norm, then global pooling and a head."""
    keras = keras_module()
    layers = keras.layers
    inputs = keras.Input((config.image_size, config.image_size, 1), name="face")
    x = layers.Rescaling(1 / 255.0)(inputs)
    if config.augment:  # active in training only
        x = layers.RandomFlip("horizontal", seed=config.seed)(x)
        x = layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=config.seed)(x)
        x = layers.RandomRotation(0.05, fill_mode="nearest", seed=config.seed)(x)
        x = layers.RandomZoom(0.1, fill_mode="nearest", seed=config.seed)(x)
        x = layers.RandomErasing(factor=0.5, scale=(0.02, 0.15), value_range=(0, 1), seed=config.seed)(x)
    for block in range(4):
        filters = config.width * 2**block
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)  # moving statistics settle within a few hundred steps
            x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(0.1 + 0.05 * block)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(8 * config.width, activation="relu")(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="emotion")(x)
    model = keras.Model(inputs, outputs, name="femo_cnn")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): `fraction` of each class, drawn with a seed."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        val.extend(idx[: max(1, int(round(len(idx) * fraction)))] if len(idx) > 1 else [])
    val = np.sort(np.array(val, dtype=int))
    train = np.setdiff1d(np.arange(len(labels)), val)
    return train, val


def auto_batch_size(n_train: int) -> int:
    """About 100 steps per epoch, between 16 and 128: small sets still get enough updates (and settled batch-norm
    statistics), large ones the efficient batch size."""
    return int(min(128, max(16, 2 ** round(np.log2(max(n_train, 1) / 100)))))


def class_weights(labels: np.ndarray, n_classes: int = N_CLASSES) -> dict[int, float]:
    """Inverse-frequency weights: every present class carries the same total weight (n / classes), so rare
    classes (disgust) count as much as common ones; the weights sum to n over the samples."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights) if present[i]}


def train(x: np.ndarray, y: np.ndarray, config: TrainConfig,
          log: Callable[[str], None] = print) -> tuple[object, dict, dict]:
    """Train on (x: N x S x S x 1 uint8, y: N ids); validation carved from these by a stratified split.

    Returns (model, history per epoch, facts: sizes, seconds, images/s, backend)."""
    keras = keras_module()
    keras.utils.set_random_seed(config.seed)
    tr, va = stratified_split(y, config.val_fraction, config.seed)
    model = build_model(config)
    weights = class_weights(y[tr]) if config.class_weighting else None
    batch = config.batch_size or auto_batch_size(len(tr))

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(f"epoch {epoch + 1}/{config.epochs}: loss {logs.get('loss', float('nan')):.3f} "
                f"acc {logs.get('accuracy', float('nan')):.3f} val_acc {logs.get('val_accuracy', float('nan')):.3f}")

    start = time.perf_counter()

    class Budget(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if config.max_minutes and time.perf_counter() - start > config.max_minutes * 60:
                log(f"time budget of {config.max_minutes:g} min reached after epoch {epoch + 1}")
                self.model.stop_training = True

    callbacks = [Progress(), Budget(),
                 keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-5)]
    history = model.fit(x[tr], y[tr], validation_data=(x[va], y[va]) if len(va) else None, epochs=config.epochs,
                        batch_size=batch, class_weight=weights, callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - start
    facts = {"epochs_run": len(history.history.get("loss", [])), "batch_size_used": batch, "train_images": int(len(tr)), "validation_images": int(len(va)), "seconds": round(seconds, 1),
             "train_images_per_second": round(len(tr) * len(history.history.get("loss", [])) / seconds, 1),
             "backend": keras.backend.backend(), "parameters": int(model.count_params())}
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    return model, hist, facts


def predict(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


def save(model, folder: Path, history: dict, config: TrainConfig, facts: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "emotion_model.keras"
    tmp = folder / "emotion_model.tmp.keras"
    model.save(tmp)
    tmp.replace(path)
    (folder / "history.json").write_text(json.dumps(history, indent=1))
    (folder / "config.json").write_text(json.dumps({**asdict(config), **facts}, indent=1))
    return path


def load(path: Path):
    return keras_module().models.load_model(path, compile=False)


def deepface_emotion_model(weights_path: str | Path):
    """DeepFace's facial-expression CNN loaded from its published weights file (Keras 2 HDF5 layout). The deepface
    package itself is not needed (it pulls tf-keras and more)."""
    model = deepface_architecture()
    model.load_weights(str(weights_path))
    return model


def deepface_architecture():
    """DeepFace's facial-expression CNN (serengil/deepface, models/demography/Emotion.py: 48x48x1 grey input
    scaled to 0-1, labels angry, disgust, fear, happy, sad, surprise, neutral = the study's ids 0-6), rebuilt
    layer for layer in Keras 3, with fresh weights."""
    keras = keras_module()
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((48, 48, 1)),
        layers.Conv2D(64, (5, 5), activation="relu"),
        layers.MaxPooling2D(pool_size=(5, 5), strides=(2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.AveragePooling2D(pool_size=(3, 3), strides=(2, 2)),
        layers.Conv2D(128, (3, 3), activation="relu"),
        layers.Conv2D(128, (3, 3), activation="relu"),
        layers.AveragePooling2D(pool_size=(3, 3), strides=(2, 2)),
        layers.Flatten(),
        layers.Dense(1024, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(1024, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(N_CLASSES, activation="softmax"),
    ])
    return model
