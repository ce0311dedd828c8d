"""Augmentation inside the training graph (Keras ops) against the OpenCV version, and the device records."""

from __future__ import annotations

import sys
import types

import cv2
import numpy as np
import pytest

from femo_pipeline import devices, model
from femo_pipeline.model import augment


def _smooth_faces(n: int, seed: int = 0, gain: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (48, 48 * n)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3).reshape(48, n, 48).transpose(1, 0, 2)
    return np.clip((smooth - 128) * gain + 128, 0, 255).astype(np.uint8)[..., None]


def _as_tensor(values, n):
    ops = model.keras_module().ops
    return ops.convert_to_tensor(np.asarray(values, np.float32).reshape(n, 1, 1))


def test_the_in_graph_warp_is_opencvs_warp_affine():
    """Mirror, scale, rotation and shift per face, bilinear with mirrored edges: the same pixels as
    cv2.warpAffine(getRotationMatrix2D(...) + shift, BORDER_REFLECT_101) up to OpenCV's fixed-point weights."""
    n = 24
    x = _smooth_faces(n)
    rng = np.random.default_rng(1)
    scale, angle = rng.uniform(0.85, 1.15, n), rng.uniform(-15, 15, n)
    shift, mirror = rng.uniform(-4, 4, (n, 2)), rng.random(n) < 0.5
    want = np.empty(x.shape, np.float32)
    for i in range(n):
        m = cv2.getRotationMatrix2D((23.5, 23.5), angle[i], scale[i])
        m[:, 2] += shift[i]
        img = x[i, :, :, 0][:, ::-1] if mirror[i] else x[i, :, :, 0]
        want[i, :, :, 0] = cv2.warpAffine(np.ascontiguousarray(img).astype(np.float32), m, (48, 48),
                                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    ops = model.keras_module().ops
    got = ops.convert_to_numpy(augment.warp(ops.convert_to_tensor(x.astype(np.float32)), _as_tensor(scale, n),
                                            _as_tensor(np.deg2rad(angle), n), _as_tensor(shift[:, 0], n),
                                            _as_tensor(shift[:, 1], n), _as_tensor(np.where(mirror, -1, 1), n), 48))
    assert got.shape == x.shape
    assert np.abs(got - want).max() < 1.0 and np.abs(got - want).mean() < 0.1
    # and the identity is the identity
    ones, zeros = _as_tensor(np.ones(n), n), _as_tensor(np.zeros(n), n)
    same = ops.convert_to_numpy(augment.warp(ops.convert_to_tensor(x.astype(np.float32)), ones, zeros, zeros, zeros,
                                             ones, 48))
    assert np.allclose(same, x, atol=1e-3)


def test_in_graph_augmentation_draws_the_same_distributions_as_the_opencv_version():
    """Both versions on 3,000 copies of one face: the average face, the spread of brightness and contrast, and the
    share of faces with an erased rectangle agree within sampling noise."""
    keras = model.keras_module()
    # a smooth face in float (no flat, saturated or quantised areas): an erased rectangle is then the only run of
    # equal pixels
    noise = np.random.default_rng(3).integers(0, 256, (48, 48)).astype(np.float32)
    face = ((cv2.GaussianBlur(noise, (0, 0), 3) - 128) * 2 + 128)[None, :, :, None]
    batch = np.repeat(face, 3000, axis=0)
    cpu = model.augment_batch(batch, np.random.default_rng(0))
    layer = augment.augment_layer(48, seed=0)
    dev = keras.ops.convert_to_numpy(layer(batch, training=True))
    assert dev.dtype == np.float32 and dev.shape == batch.shape
    assert dev.min() >= 0 and dev.max() <= 255
    for a, b in ((cpu, dev),):
        assert abs(a.mean() - b.mean()) < 1.5
        assert np.abs(a.mean(axis=0) - b.mean(axis=0)).mean() < 3.0  # the average augmented face
        means_a, means_b = a.mean(axis=(1, 2, 3)), b.mean(axis=(1, 2, 3))
        assert abs(means_a.std() - means_b.std()) < 0.1 * means_a.std()  # brightness spread
        stds_a, stds_b = a.std(axis=(1, 2, 3)), b.std(axis=(1, 2, 3))
        assert abs(stds_a.mean() - stds_b.mean()) < 0.05 * stds_a.mean()  # contrast
        assert abs(np.quantile(stds_a, 0.1) - np.quantile(stds_b, 0.1)) < 0.08 * stds_a.mean()

    def erased(x):  # a flat run of >= 5 pixels in >= 3 rows: the grey rectangle
        flat = (np.abs(np.diff(x[..., 0], axis=2)) < 1e-4).sum(axis=2) >= 5
        return (flat.sum(axis=1) >= 3).mean()

    assert abs(erased(cpu) - 0.25) < 0.05 and abs(erased(dev) - 0.25) < 0.05
    # mirrored: the face is not symmetric, so half the copies correlate better with its mirror
    mirror = face[0, :, ::-1, 0].astype(np.float32).ravel()
    plain = face[0, :, :, 0].astype(np.float32).ravel()

    def mirrored_share(x):
        flat = x[..., 0].reshape(len(x), -1)
        return float(np.mean([np.corrcoef(f, mirror)[0, 1] > np.corrcoef(f, plain)[0, 1] for f in flat[:600]]))

    assert abs(mirrored_share(cpu) - mirrored_share(dev)) < 0.1
    # at inference the layer passes faces through untouched, and the same seed gives the same draws
    assert np.array_equal(keras.ops.convert_to_numpy(layer(batch[:4].astype(np.float32), training=False)),
                          batch[:4].astype(np.float32))
    again = keras.ops.convert_to_numpy(augment.augment_layer(48, seed=0)(batch.astype(np.float32), training=True))
    assert np.array_equal(again, dev)


@pytest.mark.slow  # trains a network: outside the quick loop
def test_training_with_in_graph_augmentation_saves_a_plain_network(tmp_path):
    """The fitted model is the network behind the augmentation layer; what train returns (and saves) is the
    network alone, so no model file carries the layer, and the run records where it augmented and its device."""
    x = np.concatenate([_smooth_faces(30, s) for s in range(2)])
    y = np.arange(len(x)) % 7
    for where in ("device", "cpu"):
        net, _, facts = model.train(x, y, model.TrainConfig(epochs=1, width=8, augment_on=where),
                                    log=lambda _: None)
        assert not any("augment" in layer.name for layer in net.layers)
        assert facts["augment_on"] == where
        assert facts["device"] == devices.training_device()
    net, _, facts = model.train(x, y, model.TrainConfig(epochs=1, width=8, augment=False), log=lambda _: None)
    assert facts["augment_on"] == "none"


def test_the_device_is_detected_not_assumed(monkeypatch):
    here = devices.training_device("tensorflow")
    assert here["backend"] == "tensorflow"
    if here["kind"] == "CPU":
        assert here["name"] == devices.cpu_model() and here["count"] == devices.cpu_cores()
        assert devices.describe(here).endswith("(CPU)") and devices.cpu_model() in devices.describe(here)
    # a torch backend that sees two GPUs is described by them, without starting any framework here
    cuda = types.SimpleNamespace(is_available=lambda: True, device_count=lambda: 2,
                                 get_device_name=lambda i: "NVIDIA H200")
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    gpu = devices.training_device("torch")
    assert gpu == {"kind": "GPU", "name": "NVIDIA H200", "count": 2, "backend": "torch"}
    assert devices.describe(gpu) == "2 x NVIDIA H200 (GPU)"
    cuda.is_available = lambda: False
    assert devices.training_device("torch")["kind"] == "CPU"
    # and a precision of "auto" takes bf16 on a GPU
    from femo_pipeline.model import precision

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(devices, "training_device", lambda backend=None: gpu)
    assert model.resolve_precision("auto") == "mixed_bfloat16"


def test_the_benchmarks_name_the_gpus_nvidia_smi_lists(monkeypatch, tmp_path):
    from bench import _report

    monkeypatch.setattr(devices.shutil, "which", lambda name: None)
    assert "no GPU" in _report.machine()
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H200'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(devices.shutil, "which", lambda name: str(fake))
    assert "1 x NVIDIA H200" in _report.machine()
