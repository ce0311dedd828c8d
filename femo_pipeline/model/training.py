"""Training femo's CNN: the optimiser and its learning-rate schedule (linear scaling with the batch, warm-up,
cosine decay by steps or by a time budget), and `train`, which keeps the weights of the best validation epoch
(per head for a multi-task model) and reports what the run measured. Pure module (no Dagster)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from femo_pipeline import devices
from femo_pipeline.model.augment import training_model
from femo_pipeline.model.config import HEADS, N_CLASSES, TrainConfig, keras_module
from femo_pipeline.model.data import (
    _batches,
    _take,
    auto_batch_size,
    class_weights,
    feeder_augments,
    hard_labels,
    stratified_split,
    targets_for,
)
from femo_pipeline.model.network import build_model, split_heads


def peak_learning_rate(config: TrainConfig, batch: int) -> float:
    """The linear scaling rule: `learning_rate` is meant for a batch of 128; smaller batches take proportionally
    smaller steps (measured: at batch 16 the unscaled 0.05 leaves the demo faces at chance, 0.00625 learns them)."""
    return config.learning_rate * batch / 128


def compile_model(model, config: TrainConfig, steps_per_epoch: int, batch: int = 128) -> None:
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
    # XLA off under TensorFlow: on 2 CPU cores Keras' default ("auto" = XLA) trained on one core, about half as
    # fast (docs/benchmarks.md); "auto" elsewhere (JAX compiles the step, torch runs eagerly)
    jit = False if keras.backend.backend() == "tensorflow" else "auto"
    if config.targets == "both":
        model.compile(optimizer=opt, loss={h: loss for h in HEADS}, metrics={h: ["accuracy"] for h in HEADS},
                      jit_compile=jit)
    else:
        model.compile(optimizer=opt, loss=loss, metrics=["accuracy"], jit_compile=jit)


def time_budget_rate(step: int, elapsed: float, warmup_steps: int, warmup_seconds: float, budget_seconds: float,
                     peak: float) -> float:
    """The learning rate of the time-budgeted schedule: linear warm-up over the first `warmup_steps` steps, then
    a cosine from `peak` to zero over the time left after the warm-up ended (at `warmup_seconds`)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(budget_seconds - warmup_seconds, 1e-9)
    done = min(max((elapsed - warmup_seconds) / span, 0.0), 1.0)
    return 0.5 * peak * (1.0 + float(np.cos(np.pi * done)))


CLOCK = time.perf_counter  # the time-budget schedule's clock (a test runs it on a simulated one)


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
            self.start = CLOCK()

        def on_train_batch_begin(self, batch_index, logs=None):
            elapsed = CLOCK() - self.start
            if self.step == warmup_steps:
                self.warmup_end = elapsed
                if warmup_steps:
                    log(f"warm-up done after {elapsed:.0f} s; cosine over the {budget - elapsed:.0f} s left")
            self.model.optimizer.learning_rate = time_budget_rate(
                self.step, elapsed, warmup_steps, self.warmup_end, budget, peak)
            self.step += 1

        def on_train_batch_end(self, batch_index, logs=None):
            if not self.spent and CLOCK() - self.start >= budget:
                self.spent = True
                log(f"time budget of {config.minutes:g} min spent after {self.step} steps")
                self.model.stop_training = True

    return TimeBudget()


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
    # what is fitted: the network, behind the in-graph augmentation unless the feeder augments (or none is asked)
    fitted = training_model(model, config.image_size, config.seed) \
        if config.augment and not feeder_augments(config) else model
    compile_model(fitted, config, len(data), batch)
    start = time.perf_counter()
    monitors = [f"val_{h}_accuracy" for h in HEADS] if config.targets == "both" else ["val_accuracy"]
    best = {m: {"value": -1.0, "epoch": 0, "weights": None} for m in monitors}

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            for m in monitors:
                val = logs.get(m, float("nan"))
                if len(va) and val > best[m]["value"]:
                    best[m].update(value=float(val), epoch=epoch + 1, weights=model.get_weights())
            shown = " ".join(f"{k} {v:.3f}" for k, v in logs.items() if k.endswith("accuracy") or k == "loss")
            of = f" of the {config.minutes:g}-minute budget" if config.minutes else ""
            log(f"epoch {epoch + 1}/{config.epochs}: {shown} ({time.perf_counter() - start:.0f} s{of})")
            newest_best = max(b["epoch"] for b in best.values())
            if config.patience and len(va) and epoch + 1 - newest_best >= config.patience:
                log(f"no better validation epoch in the last {config.patience}: stopped after epoch {epoch + 1}")
                self.model.stop_training = True
            if config.max_minutes and time.perf_counter() - start > config.max_minutes * 60:
                log(f"time budget of {config.max_minutes:g} min reached after epoch {epoch + 1}")
                self.model.stop_training = True

    val_data = (x[va].astype(np.float32), _take(targets, va)) if len(va) else None
    callbacks = [Progress()]
    if config.minutes:
        callbacks.insert(0, _time_budget_callback(keras, config, len(data), batch, log))
    history = fitted.fit(data, validation_data=val_data, epochs=config.epochs, callbacks=callbacks, verbose=0,
                         validation_batch_size=max(batch, 256))
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
             "final_learning_rate": float(keras.ops.convert_to_numpy(fitted.optimizer.learning_rate)),
             "backend": keras.backend.backend(), "device": devices.training_device(keras.backend.backend()),
             "augment_on": config.augment_on if config.augment else "none",
             "parameters": int(next(iter(model.values())).count_params() if isinstance(model, dict)
                               else model.count_params())}
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    return model, hist, facts
