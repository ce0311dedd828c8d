"""Training-time augmentation inside the training graph, written with Keras ops only, so it runs on whatever
device trains the network (a GPU is then never starved by one CPU core preparing batches).

It draws the same distributions as `augment_batch` (the OpenCV version in femo_pipeline.model.data): a mirror
with probability 1/2, one affine warp per face (scale 0.85-1.15, rotation +-15 degrees, shift +-4 px; bilinear,
mirrored edges as OpenCV's BORDER_REFLECT_101), contrast 0.7-1.3 and brightness +-25 about the face's mean,
and with probability 1/4 one rectangle of 5-20 % of the face (aspect 1/2 to 2) filled with one random grey.
The warp is one batched gather per corner: per-face ops and Keras' stock image layers, which loop or pad per
call, are what made device-side augmentation slow. Pure module (no Dagster).
"""

from __future__ import annotations

import functools
import math

from femo_pipeline.model.config import keras_module

SCALE = (0.85, 1.15)
DEGREES = 15.0
SHIFT = 4.0
CONTRAST = (0.7, 1.3)
BRIGHTNESS = 25.0
ERASE_P, ERASE_AREA, ERASE_ASPECT = 0.25, (0.05, 0.2), (0.5, 2.0)


def augment_tensor(x, seed, size: int):
    """Augmented copy of a batch x (N x size x size x 1, float32 in 0-255) drawn with `seed` (a Keras
    SeedGenerator); float32 in 0-255."""
    keras = keras_module()
    ops, rnd = keras.ops, keras.random
    n = ops.shape(x)[0]

    def uniform(shape, low, high):
        return rnd.uniform(shape, minval=low, maxval=high, dtype="float32", seed=seed)

    x = ops.cast(x, "float32")
    scale = uniform((n, 1, 1), *SCALE)
    angle = uniform((n, 1, 1), -DEGREES, DEGREES) * (math.pi / 180.0)
    shift_x = uniform((n, 1, 1), -SHIFT, SHIFT)
    shift_y = uniform((n, 1, 1), -SHIFT, SHIFT)
    mirror = ops.where(uniform((n, 1, 1), 0.0, 1.0) < 0.5, -1.0, 1.0)
    x = warp(x, scale, angle, shift_x, shift_y, mirror, size)
    # contrast and brightness about each face's own mean
    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
    contrast = uniform((n, 1, 1, 1), *CONTRAST)
    brightness = uniform((n, 1, 1, 1), -BRIGHTNESS, BRIGHTNESS)
    x = (x - mean) * contrast + mean + brightness
    # random erasing: one grey rectangle on a quarter of the faces
    area = uniform((n, 1, 1, 1), *ERASE_AREA) * float(size * size)
    aspect = ops.exp(uniform((n, 1, 1, 1), math.log(ERASE_ASPECT[0]), math.log(ERASE_ASPECT[1])))
    h = ops.minimum(ops.round(ops.sqrt(area * aspect)), float(size))
    w = ops.minimum(ops.round(ops.sqrt(area / aspect)), float(size))
    top = ops.floor(uniform((n, 1, 1, 1), 0.0, 1.0) * (size - h + 1))
    left = ops.floor(uniform((n, 1, 1, 1), 0.0, 1.0) * (size - w + 1))
    rows = ops.reshape(ops.arange(size, dtype="float32"), (1, size, 1, 1))
    cols = ops.reshape(ops.arange(size, dtype="float32"), (1, 1, size, 1))
    erase = uniform((n, 1, 1, 1), 0.0, 1.0) < ERASE_P
    inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w) & erase
    x = ops.where(inside, uniform((n, 1, 1, 1), 0.0, 255.0), x)
    return ops.clip(x, 0.0, 255.0)


def warp(x, scale, angle, shift_x, shift_y, mirror, size: int):
    """Each face of x (N x S x S x 1) mirrored (mirror -1) or not (+1), then scaled, rotated by `angle` radians
    (counter-clockwise) about its centre and shifted, as OpenCV's warpAffine with getRotationMatrix2D(centre,
    degrees, scale) plus the shift, bilinear with BORDER_REFLECT_101; every parameter N x 1 x 1."""
    ops = keras_module().ops
    # the output pixel p comes from the source point c + A^-1 (p - c - t), A = scale x rotation; the mirror then
    # flips that point about the centre
    centre = (size - 1) / 2.0
    grid = ops.arange(size, dtype="float32") - centre
    dx = ops.reshape(grid, (1, 1, size)) - shift_x
    dy = ops.reshape(grid, (1, size, 1)) - shift_y
    cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
    src_x = centre + mirror * (cos * dx - sin * dy)
    src_y = centre + (sin * dx + cos * dy)
    return _bilinear(ops, x, src_x, src_y, size)


def _reflect101(ops, i, size: int):
    """Integer coordinates mirrored into 0..size-1 without repeating the edge (OpenCV's BORDER_REFLECT_101)."""
    last = size - 1
    i = ops.abs(i)  # -k -> k
    i = last - ops.abs(last - i)  # last + k -> last - k
    return ops.clip(i, 0, last)


def _bilinear(ops, x, src_x, src_y, size: int):
    """x (N x S x S x 1) sampled at the source points (N x S x S) with bilinear weights."""
    n = ops.shape(x)[0]
    x0, y0 = ops.floor(src_x), ops.floor(src_y)
    fx, fy = src_x - x0, src_y - y0
    x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
    xs = [_reflect101(ops, x0, size), _reflect101(ops, x0 + 1, size)]
    ys = [_reflect101(ops, y0, size), _reflect101(ops, y0 + 1, size)]
    base = ops.reshape(ops.arange(n, dtype="int32") * (size * size), (-1, 1, 1))
    flat = ops.reshape(x, (-1,))

    def at(yy, xx):
        return ops.take(flat, base + yy * size + xx)

    top = at(ys[0], xs[0]) * (1.0 - fx) + at(ys[0], xs[1]) * fx
    bottom = at(ys[1], xs[0]) * (1.0 - fx) + at(ys[1], xs[1]) * fx
    return ops.expand_dims(top * (1.0 - fy) + bottom * fy, -1)


@functools.cache
def _layer_class():
    keras = keras_module()

    class FaceAugment(keras.layers.Layer):
        """Augments faces while training; passes them through unchanged otherwise (validation, prediction)."""

        def __init__(self, size: int, seed: int | None = None, **kwargs):
            super().__init__(**kwargs)
            self.size, self.seed = size, seed
            self.generator = keras.random.SeedGenerator(seed)

        def call(self, x, training=None):
            if not training:
                return x
            return augment_tensor(x, self.generator, self.size)

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "size": self.size, "seed": self.seed}

    return FaceAugment


def augment_layer(size: int, seed: int | None = None):
    """A Keras layer that augments while training (float32 in and out; identity at inference)."""
    return _layer_class()(size, seed, dtype="float32", name="face_augment")


def training_model(net, size: int, seed: int | None = None):
    """`net` behind the augmentation layer: the model that is fitted. Its weights are `net`'s, so checkpoints,
    saving and inference use `net` alone and no saved model carries the augmentation."""
    keras = keras_module()
    inputs = keras.Input((size, size, 1), name="face")
    return keras.Model(inputs, net(augment_layer(size, seed)(inputs)), name="femo_cnn_training")
