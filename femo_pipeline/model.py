"""The emotion CNN: built, trained and used with Keras 3 only (no `import tensorflow`), on numpy arrays.

So the same code trains under TensorFlow on CPU here and under KERAS_BACKEND=jax or torch on a GPU machine.
Classes are the study's emotion ids 0-6 (Anger, Disgust, Fear, Happiness, Sadness, Surprise, Neutral), which is
also FER-2013's and the `fer` package's order. Pure module (no Dagster).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from femo_pipeline.files import atomic_path, write_text_atomic

N_CLASSES = 7


@dataclass(frozen=True)
class TrainConfig:
    image_size: int = 48
    crop: int = 44  # the network sees the centre crop of this side; augmentation shifts what lands in it (0: none)
    epochs: int = 26
    batch_size: int = 0  # 0: automatic, about 100 steps per epoch, between 16 and 128
    seed: int = 2013
    val_fraction: float = 0.1
    width: int = 32  # filters of the first block; doubles per block
    block_convs: tuple[int, ...] = (2, 2, 2, 2)  # 3x3 convolutions in each of the four blocks. The shipped
    # recipe (bench/train.py) uses 1-2-2-2: 19 % fewer multiply-adds at the same validation accuracy on FER-2013;
    # on small sets (the demo) 2-2-2-2 learns faster, so it stays the default
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum 0.9) or "adam"
    learning_rate: float = 0.05  # peak rate for a batch of 128 (scaled linearly with the batch size), reached
    # after the warm-up, then cosine decay to zero
    warmup_epochs: float = 1.0
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    augment: bool = True  # flip, affine (scale, rotation, shift), brightness/contrast, random erasing (numpy/OpenCV)
    class_weighting: bool = False
    precision: str = "float32"  # "float32", "mixed_bfloat16" (bf16 arithmetic, float32 weights: 1.4x faster
    # training and 1.5x faster inference on a CPU with AVX512-BF16, measured 2026-12-02, docs/benchmarks.md) or
    # "auto" (mixed_bfloat16 where the CPU has native bf16, else float32)
    targets: str = "labels"  # "labels": one class per image; "votes": vote distributions (N x 7) as soft targets;
    # "both": a head for each (y = labels, votes = N x 7 counts passed to train)
    max_minutes: float = 0  # stop after the epoch that passes this training time (0: no limit)
    minutes: float = 0  # > 0: a time budget instead of an epoch count: after the warm-up (in steps) the learning
    # rate follows a cosine over the remaining time, reaching zero when the budget is spent, and training stops
    # there (mid-epoch; that epoch is still validated). `epochs` is then only an upper bound. The same recipe thus
    # finishes its schedule on a fast or a slow machine instead of being cut off half-way.


def keras_module():
    import keras  # imported late: loading a backend takes seconds

    return keras


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
    """"auto" -> mixed_bfloat16 where the CPU has native bf16, float32 elsewhere; other names are checked."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "mixed_bfloat16" if cpu_has_bf16() else "float32"
    return precision


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


HEADS = ("fer2013", "ferplus")  # FER-2013's labels; the FER+ crowd's vote distributions


def split_heads(model) -> dict:
    """{label source: single-output model}; a multi-task model gives one model per head (sharing the trunk)."""
    keras = keras_module()
    if isinstance(model.output, dict):
        return {name: keras.Model(model.input, model.output[name], name=f"femo_cnn_{name}") for name in HEADS}
    return {"model": model}


def peak_learning_rate(config: TrainConfig, batch: int) -> float:
    """The linear scaling rule: `learning_rate` is meant for a batch of 128; smaller batches take proportionally
    smaller steps (measured: at batch 16 the unscaled 0.05 leaves the demo faces at chance, 0.00625 learns them)."""
    return config.learning_rate * batch / 128


def _compile(model, config: TrainConfig, steps_per_epoch: int, batch: int = 128) -> None:
    keras = keras_module()
    total = max(1, steps_per_epoch * config.epochs)
    warmup = int(min(total - 1, round(config.warmup_epochs * steps_per_epoch)))
    peak = peak_learning_rate(config, batch)
    if config.minutes:  # the TimeBudget callback sets the rate before every step
        schedule = 0.0
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else peak, decay_steps=max(1, total - warmup), alpha=0.0,
            warmup_target=peak if warmup else None, warmup_steps=warmup)
    if config.optimizer == "sgd":
        opt = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    elif config.optimizer == "adam":
        opt = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r} (sgd or adam)")
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    # XLA off: on the 2-core CPU, Keras' default ("auto" = XLA under TensorFlow) trained at 124 images/s on one
    # core; without it 228 images/s on both (measured 2026-11-25, width 32, docs/benchmarks.md)
    if config.targets == "both":
        model.compile(optimizer=opt, loss={h: loss for h in HEADS}, metrics={h: ["accuracy"] for h in HEADS},
                      jit_compile=False)
    else:
        model.compile(optimizer=opt, loss=loss, metrics=["accuracy"], jit_compile=False)


def time_budget_rate(step: int, elapsed: float, warmup_steps: int, warmup_seconds: float, budget_seconds: float,
                     peak: float) -> float:
    """The learning rate of the time-budgeted schedule: linear warm-up over the first `warmup_steps` steps, then
    a cosine from `peak` to zero over the time left after the warm-up ended (at `warmup_seconds`)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(budget_seconds - warmup_seconds, 1e-9)
    done = min(max((elapsed - warmup_seconds) / span, 0.0), 1.0)
    return 0.5 * peak * (1.0 + float(np.cos(np.pi * done)))


def _time_budget_callback(keras, config: TrainConfig, steps_per_epoch: int, batch: int, log):
    """Drives the learning rate by elapsed training time and stops training when `config.minutes` are spent."""
    budget = config.minutes * 60.0
    warmup_steps = int(round(config.warmup_epochs * steps_per_epoch))
    peak = peak_learning_rate(config, batch)

    class TimeBudget(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step, self.start, self.warmup_end, self.spent = 0, None, 0.0, False

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_begin(self, batch_index, logs=None):
            elapsed = time.perf_counter() - self.start
            if self.step == warmup_steps:
                self.warmup_end = elapsed
                if warmup_steps:
                    log(f"warm-up done after {elapsed:.0f} s; cosine over the {budget - elapsed:.0f} s left")
            self.model.optimizer.learning_rate = time_budget_rate(
                self.step, elapsed, warmup_steps, self.warmup_end, budget, peak)
            self.step += 1

        def on_train_batch_end(self, batch_index, logs=None):
            if not self.spent and time.perf_counter() - self.start >= budget:
                self.spent = True
                log(f"time budget of {config.minutes:g} min spent after {self.step} steps")
                self.model.stop_training = True

    return TimeBudget()


def augment_batch(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flip, scale (0.85-1.15), rotation (+-15 deg), shift (+-4 px), brightness/contrast and erasing of a
    batch of N x S x S x 1 uint8 faces; returns float32 in 0-255. Cheap (OpenCV, about 10 us an image), so it runs
    on the CPU beside training rather than in the model graph."""
    n, size = x.shape[0], x.shape[1]
    out = np.empty(x.shape, np.float32)
    centre = (size - 1) / 2.0
    scale = rng.uniform(0.85, 1.15, n)
    angle = rng.uniform(-15, 15, n)
    shift = rng.uniform(-4, 4, (n, 2))
    flip = rng.random(n) < 0.5
    for i in range(n):
        m = cv2.getRotationMatrix2D((centre, centre), angle[i], scale[i])
        m[:, 2] += shift[i]
        img = x[i, :, :, 0]
        if flip[i]:
            img = img[:, ::-1]
        out[i, :, :, 0] = cv2.warpAffine(np.ascontiguousarray(img), m, (size, size), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT_101)
    # float32 factors: float64 ones made the whole batch float64 (twice the memory, and a cast in the model)
    contrast = rng.uniform(0.7, 1.3, (n, 1, 1, 1)).astype(np.float32)
    brightness = rng.uniform(-25, 25, (n, 1, 1, 1)).astype(np.float32)
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    out = (out - mean) * contrast + mean + brightness
    erase = np.flatnonzero(rng.random(n) < 0.25)  # one grey rectangle of 5-20 % of the face
    for i in erase:
        area = rng.uniform(0.05, 0.2) * size * size
        aspect = np.exp(rng.uniform(np.log(0.5), np.log(2)))
        h = int(min(size, round(np.sqrt(area * aspect))))
        w = int(min(size, round(np.sqrt(area / aspect))))
        top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        out[i, top:top + h, left:left + w, 0] = rng.uniform(0, 255)
    return np.clip(out, 0, 255, out=out)


def targets_for(y: np.ndarray, config: TrainConfig, n_classes: int = N_CLASSES) -> np.ndarray:
    """N x classes float targets: one-hot class ids, or vote counts normalised per image."""
    if config.targets == "labels":
        return np.eye(n_classes, dtype=np.float32)[np.asarray(y, dtype=int)]
    if config.targets == "votes":
        votes = np.asarray(y, dtype=np.float32)
        if votes.ndim != 2 or votes.shape[1] != n_classes or (votes.sum(axis=1) <= 0).any():
            raise ValueError(f"vote targets must be N x {n_classes} counts with at least one vote per image")
        return votes / votes.sum(axis=1, keepdims=True)
    raise ValueError(f"unknown targets {config.targets!r} (labels, votes or both)")


def _take(t, idx):
    return {k: v[idx] for k, v in t.items()} if isinstance(t, dict) else t[idx]


def _batches(keras, x, t, w, batch, config: TrainConfig):
    """An epoch-shuffled, augmented keras PyDataset (works under every backend)."""

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False, max_queue_size=8)
            self.rng = np.random.default_rng(config.seed)
            self.order = self.rng.permutation(len(x))

        def __len__(self):
            return int(np.ceil(len(x) / batch))

        def __getitem__(self, i):
            idx = np.sort(self.order[i * batch:(i + 1) * batch])
            xb = augment_batch(x[idx], self.rng) if config.augment else x[idx].astype(np.float32)
            return (xb, _take(t, idx)) if w is None else (xb, _take(t, idx), w[idx])

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(x))

    return Batches()


def hard_labels(y: np.ndarray) -> np.ndarray:
    """Class ids from labels or from vote counts (their plurality; first class on ties)."""
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 else y.astype(int)


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
          log: Callable[[str], None] = print, votes: np.ndarray | None = None) -> tuple[object, dict, dict]:
    """Train on (x: N x S x S x 1 uint8, y: N class ids, or N x 7 vote counts with targets="votes").

    Validation is carved from these by a stratified split (on the plurality for votes); the weights kept are
    those of the epoch with the best validation accuracy (the checkpoint is chosen on validation only).
    With targets="both" (labels in y, vote counts in `votes`) the model is a dict {head: single-output model},
    each with the weights of its own best validation epoch.
    Returns (model, history per epoch, facts: sizes, seconds, images/s, backend, best epoch)."""
    keras = keras_module()
    keras.utils.set_random_seed(config.seed)
    labels = hard_labels(y)
    tr, va = stratified_split(labels, config.val_fraction, config.seed)
    if config.targets == "both":
        if votes is None or len(votes) != len(y):
            raise ValueError("targets='both' needs the vote counts (N x 7) beside the labels")
        has_votes = np.asarray(votes).sum(axis=1) > 0  # images nobody voted an emotion for keep their label
        soft = np.where(has_votes[:, None], np.asarray(votes, np.float32), np.eye(N_CLASSES)[labels])
        one = TrainConfig(targets="labels")
        targets = {"fer2013": targets_for(labels, one), "ferplus": targets_for(soft, replace(one, targets="votes"))}
    else:
        targets = targets_for(y, config)
    batch = config.batch_size or auto_batch_size(len(tr))
    weights = None
    if config.class_weighting:
        cw = class_weights(labels[tr])
        weights = np.array([cw.get(int(c), 0.0) for c in labels], np.float32)
    data = _batches(keras, x[tr], _take(targets, tr), None if weights is None else weights[tr], batch, config)
    model = build_model(config)
    _compile(model, config, len(data), batch)
    start = time.perf_counter()
    monitors = [f"val_{h}_accuracy" for h in HEADS] if config.targets == "both" else ["val_accuracy"]
    best = {m: {"value": -1.0, "epoch": 0, "weights": None} for m in monitors}

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            for m in monitors:
                val = logs.get(m, float("nan"))
                if len(va) and val > best[m]["value"]:
                    best[m].update(value=float(val), epoch=epoch + 1, weights=self.model.get_weights())
            shown = " ".join(f"{k} {v:.3f}" for k, v in logs.items() if k.endswith("accuracy") or k == "loss")
            of = f" of the {config.minutes:g}-minute budget" if config.minutes else ""
            log(f"epoch {epoch + 1}/{config.epochs}: {shown} ({time.perf_counter() - start:.0f} s{of})")
            if config.max_minutes and time.perf_counter() - start > config.max_minutes * 60:
                log(f"time budget of {config.max_minutes:g} min reached after epoch {epoch + 1}")
                self.model.stop_training = True

    val_data = (x[va].astype(np.float32), _take(targets, va)) if len(va) else None
    callbacks = [Progress()]
    if config.minutes:
        callbacks.insert(0, _time_budget_callback(keras, config, len(data), batch, log))
    history = model.fit(data, validation_data=val_data, epochs=config.epochs, callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - start
    epochs_run = len(history.history.get("loss", []))
    chosen = {}
    if config.targets == "both":  # each head keeps the weights of its own best validation epoch
        heads = split_heads(model)
        for h, m in zip(HEADS, monitors):
            if best[m]["weights"] is not None:
                model.set_weights(best[m]["weights"])
                heads[h] = keras.models.clone_model(heads[h])
                heads[h].set_weights(keras.Model(model.input, model.output[h]).get_weights())
            chosen[h] = {"best_epoch": best[m]["epoch"] or epochs_run,
                         "best_validation_accuracy": round(best[m]["value"], 4) if len(va) else None}
        model = heads
    elif best[monitors[0]]["weights"] is not None:
        model.set_weights(best[monitors[0]]["weights"])
    first = best[monitors[0]]
    facts = {"epochs_run": epochs_run, "best_epoch": first["epoch"] or epochs_run,
             "best_validation_accuracy": round(first["value"], 4) if len(va) else None,
             **({"heads": chosen} if chosen else {}),
             "batch_size_used": batch, "schedule": "time" if config.minutes else "epochs", "train_images": int(len(tr)), "validation_images": int(len(va)),
             "seconds": round(seconds, 1),
             "train_images_per_second": round(len(tr) * epochs_run / seconds, 1),
             "backend": keras.backend.backend(),
             "parameters": int(next(iter(model.values())).count_params() if isinstance(model, dict)
                               else model.count_params())}
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    return model, hist, facts


TTA_MODES = ("none", "flip", "flip_scale")  # test-time augmentation, cheapest first: 1, 2 and 6 views


def _rescaled(x: np.ndarray, factor: float) -> np.ndarray:
    """The faces zoomed by `factor` about their centre (edges mirrored), same size."""
    size = x.shape[1]
    m = cv2.getRotationMatrix2D(((size - 1) / 2.0, (size - 1) / 2.0), 0, factor)
    out = np.empty_like(x)
    for i in range(len(x)):
        out[i, :, :, 0] = cv2.warpAffine(x[i, :, :, 0], m, (size, size), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT_101)
    return out


def tta_views(x: np.ndarray, mode: str) -> list[np.ndarray]:
    """The views a prediction averages over: the face; + its mirror ("flip"); + the face and its mirror zoomed
    out and in by 8 % ("flip_scale", for faces cropped tighter or looser than FER-2013's)."""
    if mode not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation {mode!r}; known: {', '.join(TTA_MODES)}")
    views = [x]
    if mode in ("flip", "flip_scale"):
        views.append(x[:, :, ::-1])
    if mode == "flip_scale":
        for factor in (0.92, 1.08):
            zoomed = _rescaled(x, factor)
            views += [zoomed, zoomed[:, :, ::-1]]
    return views


def predict(model, x: np.ndarray, batch_size: int = 512, flip_tta: bool = False, tta: str | None = None) -> np.ndarray:
    """Class probabilities (N x 7), averaged over the test-time views of `tta` (TTA_MODES; flip_tta=True is
    "flip"; default none)."""
    x = np.asarray(x, np.float32)
    views = tta_views(x, tta or ("flip" if flip_tta else "none"))
    probs = [np.asarray(model.predict(np.ascontiguousarray(v), batch_size=batch_size, verbose=0)) for v in views]
    return np.mean(probs, axis=0) if len(probs) > 1 else probs[0]


def save(model, folder: Path, history: dict, config: TrainConfig, facts: dict) -> Path:
    path = folder / "emotion_model.keras"
    with atomic_path(path) as tmp:  # float32 on disk whatever the training precision: one file for every CPU
        (model if _policy(model) == "float32" else with_precision(model, "float32")).save(tmp)
    write_text_atomic(json.dumps(history, indent=1), folder / "history.json")
    write_text_atomic(json.dumps({**asdict(config), **facts}, indent=1, default=str), folder / "config.json")
    return path


def with_precision(model, precision: str):
    """The same network (same weights) computing in `precision` (PRECISIONS): every layer but the softmax
    outputs takes that dtype policy. Model files are saved in float32, so one file serves CPUs with and without
    native bf16; the precision is chosen where the model runs."""
    keras = keras_module()
    precision = resolve_precision(precision)
    outputs = {t.name for t in (model.outputs if isinstance(model.outputs, list) else [model.outputs])}

    def clone(layer):
        config = layer.get_config()
        last = any(node.outputs and node.outputs[0].name in outputs for node in getattr(layer, "_inbound_nodes", []))
        config["dtype"] = "float32" if last or layer.__class__.__name__ == "InputLayer" else precision
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    return twin


def load(path: Path, precision: str = "float32"):
    """A saved model, computing in `precision` ("auto": bf16 where the CPU does it natively)."""
    net = keras_module().models.load_model(path, compile=False)
    return net if resolve_precision(precision) == "float32" and _policy(net) == "float32" else \
        with_precision(net, precision)


def _policy(model) -> str:
    """The dtype policy of a model's first computing layer ("float32" or "mixed_bfloat16")."""
    for layer in model.layers:
        if layer.__class__.__name__ != "InputLayer":
            return layer.dtype_policy.name
    return "float32"


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


SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
SHIPPED = {
    "fer2013": SHIPPED_DIR / "femo_cnn_fer2013.keras",  # trained on FER-2013's labels
    "ferplus": SHIPPED_DIR / "femo_cnn_ferplus.keras",  # trained on the FER+ crowd's vote distributions
}


def shipped_path(kind: str = "fer2013") -> Path | None:
    """The model file committed with the package for this label source, or None when it is not there."""
    path = SHIPPED.get(kind)
    if path is None:
        raise ValueError(f"unknown shipped model {kind!r}; known: {sorted(SHIPPED)}")
    return path if path.is_file() else None
