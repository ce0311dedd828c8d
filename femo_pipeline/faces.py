"""Face detection and cropping with OpenCV's Haar cascade. Pure module (no Dagster).

Detection runs on a grey copy shrunk so its longer side is at most `detect_max_side` (several times faster on
photos), boxes are scaled back, and the crop is cut from the original pixels with a margin. Every image gets an
outcome: 'ok' (one face), 'multiple_faces' (the largest is kept), 'no_face', or 'unreadable', with a reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from femo_pipeline import imaging

CASCADE_PATH = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")


@dataclass(frozen=True)
class FaceParams:
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_face: int = 30  # smallest face side, in pixels of the original image
    min_face_fraction: float = 0.05  # ... and as a share of the image's shorter side
    detect_max_side: int = 640  # 0: detect at full resolution
    margin: float = 0.2  # added on each side, as a share of the face box


_DETECTORS: dict[int, cv2.CascadeClassifier] = {}


def detector() -> cv2.CascadeClassifier:
    """One cascade per process (CascadeClassifier objects must not be shared across processes)."""
    pid = os.getpid()
    if pid not in _DETECTORS:
        cascade = cv2.CascadeClassifier(CASCADE_PATH)
        if cascade.empty():
            raise RuntimeError(f"cannot load the Haar cascade at {CASCADE_PATH} (opencv-python-headless 4.x ships it)")
        _DETECTORS[pid] = cascade
    return _DETECTORS[pid]


def to_gray(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return pixels
    if pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)


def detect_faces(pixels: np.ndarray, params: FaceParams = FaceParams()) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in the original image's coordinates, largest first."""
    gray = to_gray(pixels)
    h, w = gray.shape
    scale = 1.0
    if params.detect_max_side and max(h, w) > params.detect_max_side:
        scale = params.detect_max_side / max(h, w)
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    min_side = max(params.min_face, params.min_face_fraction * min(h, w))
    min_scaled = max(1, int(min_side * scale))
    found = detector().detectMultiScale(gray, scaleFactor=params.scale_factor, minNeighbors=params.min_neighbors,
                                        minSize=(min_scaled, min_scaled))
    boxes = [tuple(int(round(v / scale)) for v in box) for box in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)


def crop(pixels: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
    x, y, w, h = box
    dx, dy = int(w * margin), int(h * margin)
    top, left = max(0, y - dy), max(0, x - dx)
    bottom, right = min(pixels.shape[0], y + h + dy), min(pixels.shape[1], x + w + dx)
    return pixels[top:bottom, left:right]


def face_crop(data: bytes, params: FaceParams = FaceParams()) -> dict:
    """Outcome for one image file's bytes: status, reason, number of faces, box, and the crop as PNG bytes."""
    out = {"status": None, "reason": None, "n_faces": 0, "box_x": None, "box_y": None, "box_w": None, "box_h": None,
           "crop_png": None}
    pixels = imaging.decode(data)
    if pixels is None:
        out.update(status="unreadable", reason="cannot decode the image")
        return out
    boxes = detect_faces(pixels, params)
    out["n_faces"] = len(boxes)
    if not boxes:
        out.update(status="no_face", reason=f"no face of at least {params.min_face} px found")
        return out
    out.update(status="ok" if len(boxes) == 1 else "multiple_faces",
               reason=None if len(boxes) == 1 else f"{len(boxes)} faces found; the largest is kept")
    out.update(zip(("box_x", "box_y", "box_w", "box_h"), boxes[0]))
    out["crop_png"] = cv2.imencode(".png", crop(pixels, boxes[0], params.margin))[1].tobytes()
    return out


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter) if inter else 0.0
