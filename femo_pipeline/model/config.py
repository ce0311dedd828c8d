"""The training recipe and what every part of the model package shares: the class count, the label-source
heads, `TrainConfig` (every knob of a training run, with the reasons for its defaults) and the late Keras import.
Pure module (no Dagster)."""

from __future__ import annotations

from dataclasses import dataclass

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
    augment: bool = True  # flip, affine (scale, rotation, shift), brightness/contrast, random erasing
    augment_on: str = "device"  # "device": Keras ops inside the training graph (model.augment), on whatever
    # trains the network; "cpu": OpenCV in the batch feeder (model.data.augment_batch). Same distributions
    class_weighting: bool = False
    precision: str = "float32"  # "float32", "mixed_bfloat16" (bf16 arithmetic, float32 weights: faster training
    # and inference on a CPU with AVX512-BF16, figures in docs/benchmarks.md) or
    # "auto" (mixed_bfloat16 where the CPU has native bf16, else float32)
    targets: str = "labels"  # "labels": one class per image; "votes": vote distributions (N x 7) as soft targets;
    # "both": a head for each (y = labels, votes = N x 7 counts passed to train)
    max_minutes: float = 0  # stop after the epoch that passes this training time (0: no limit)
    patience: int = 0  # early stopping: stop once the best validation epoch is this many epochs old (0: never)
    minutes: float = 0  # > 0: a time budget instead of an epoch count: after the warm-up (in steps) the learning
    # rate follows a cosine over the remaining time, reaching zero when the budget is spent, and training stops
    # there (mid-epoch; that epoch is still validated). `epochs` is then only an upper bound. The same recipe thus
    # finishes its schedule on a fast or a slow machine instead of being cut off half-way.

    def __post_init__(self) -> None:
        """Every knob in its range, checked before anything is built: ValueError naming each bad one."""
        checks = {
            "image_size": self.image_size >= 16, "crop": self.crop >= 0,  # a crop >= image_size is none
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 0, "seed": self.seed >= 0,
            "val_fraction": 0 < self.val_fraction < 1, "width": self.width >= 1,
            "block_convs": len(self.block_convs) >= 1 and all(n >= 1 for n in self.block_convs),
            "optimizer": self.optimizer in ("sgd", "adam"), "learning_rate": self.learning_rate > 0,
            "warmup_epochs": self.warmup_epochs >= 0, "weight_decay": self.weight_decay >= 0,
            "label_smoothing": 0 <= self.label_smoothing < 1, "augment_on": self.augment_on in ("device", "cpu"),
            "precision": self.precision in ("float32", "mixed_bfloat16", "auto"),
            "targets": self.targets in ("labels", "votes", "both"), "max_minutes": self.max_minutes >= 0,
            "patience": self.patience >= 0, "minutes": self.minutes >= 0,
        }
        bad = [f"{name}={getattr(self, name)!r}" for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"training settings out of range: {', '.join(bad)} (see TrainConfig for each "
                             "field's meaning: sizes, epochs and rates positive, shares between 0 and 1)")


def keras_module():
    import keras  # imported late: loading a backend takes seconds

    return keras


HEADS = ("fer2013", "ferplus")  # FER-2013's labels; the FER+ crowd's vote distributions
