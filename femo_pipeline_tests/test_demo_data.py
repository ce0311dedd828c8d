"""Pure functions: the demo profile's generated data."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from femo_pipeline import demo_data


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_generation_is_deterministic_and_marked_synthetic(tmp_path, demo_inputs):
    spec = demo_data.DemoSpec(fer_train_per_class=3, fer_test_per_class=2, kaggle_per_class=2, survey_rows=50)
    a = demo_data.generate(tmp_path / "a", spec)
    demo_data.generate(tmp_path / "b", spec)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    demo_data.generate(tmp_path / "a", spec)  # regenerating in place gives the same files
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert "SYNTHETIC" in (tmp_path / "a" / "SYNTHETIC.txt").read_text()
    assert a["fer2013_files"] == 7 * 5 + 2
    other = demo_data.generate(tmp_path / "c", demo_data.DemoSpec(seed=7, fer_train_per_class=3, fer_test_per_class=2,
                                                                  kaggle_per_class=2, survey_rows=50))
    assert other["fer2013_files"] == a["fer2013_files"] and _digest(tmp_path / "c") != _digest(tmp_path / "a")


def test_default_demo_has_every_class_with_enough_images(demo_inputs):
    for folder in demo_data.FER_FOLDERS:
        files = list((demo_inputs / "fer2013" / "train" / folder).glob("*.jpg"))
        files += list((demo_inputs / "fer2013" / "test" / folder).glob("*.jpg"))
        assert len(files) >= 50, folder
    for folder in demo_data.KAGGLE_FOLDERS:
        assert len(list((demo_inputs / "kaggle" / folder).glob(f"{folder}_*.png"))) == 30


def _load(root, split):
    xs, ys = [], []
    for label, folder in enumerate(demo_data.FER_FOLDERS):
        for path in sorted((root / "fer2013" / split / folder).glob("*.jpg")):
            img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float32)
            edges = np.abs(cv2.Sobel(img, cv2.CV_32F, 0, 1))  # expression lives in the lines, not in the lighting
            xs.append((edges / (edges.max() + 1e-6)).ravel())
            ys.append(label)
    return np.array(xs), np.array(ys)


def test_classes_differ_by_expression_geometry(demo_inputs):
    """A nearest-centroid classifier on edge maps must beat chance (1/7) by far on held-out demo faces."""
    x_train, y_train = _load(demo_inputs, "train")
    x_test, y_test = _load(demo_inputs, "test")
    centroids = np.stack([x_train[y_train == c].mean(axis=0) for c in range(7)])
    pred = np.argmin(((x_test[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (pred == y_test).mean()
    assert accuracy > 0.4, accuracy
