"""What training feeds the network: augmentation of uint8 face batches (OpenCV, on the CPU beside training),
targets from labels or vote counts, the stratified validation split, the automatic batch size, class weights
and the epoch-shuffled batches (a Keras PyDataset). Pure module (no Dagster)."""

from __future__ import annotations

import cv2
import numpy as np

from femo_pipeline.model.config import N_CLASSES, TrainConfig


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
            xb = augment_batch(x[idx], self.rng) if feeder_augments(config) else x[idx].astype(np.float32)
            return (xb, _take(t, idx)) if w is None else (xb, _take(t, idx), w[idx])

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(x))

    return Batches()


def feeder_augments(config: TrainConfig) -> bool:
    """Whether the batch feeder augments (OpenCV on the CPU) rather than the training graph."""
    if config.augment_on not in ("device", "cpu"):
        raise ValueError(f"unknown augment_on {config.augment_on!r} (device or cpu)")
    return config.augment and config.augment_on == "cpu"


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
