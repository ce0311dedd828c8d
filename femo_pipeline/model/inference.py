"""Predicting with a trained network: class probabilities averaged over test-time views (the face, its
mirror, and both zoomed out and in: TTA_MODES). Pure module (no Dagster)."""

from __future__ import annotations

import cv2
import numpy as np

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
