"""The small Keras models (and random inputs for them) that the tests classify and explain.

A plain module, imported as ``from tiny_models import ...`` (pytest puts ``tests/`` on
``sys.path``, as for ``api_snapshot``). Every builder seeds Keras itself, so a model's weights
depend only on its arguments; the numbers the tests assert were computed with these seeds.
Models whose architecture is the point of one test (a Lambda layer, two outputs, no conv
layer, ...) are written in that test instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from cxrexplain import models

TWO_LOGICAL_CPUS = """\
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""
"""The start of a script run in a fresh interpreter for a ``MirroredStrategy`` over two logical
CPUs (logical devices must be configured before TensorFlow starts)."""


def random_images(n: int, size: int = 16, channels: int = 1, seed: int = 0) -> np.ndarray:
    """``n`` float32 images of uniform noise in [0, 1), shape ``(n, size, size, channels)``."""
    return np.random.default_rng(seed).random((n, size, size, channels)).astype(np.float32)


def conv_gap_dense(
    units: int = 2,
    activation: str | None = "softmax",
    *,
    size: int = 24,
    channels: int = 1,
    filters: Sequence[int] = (4,),
    padding: str = "valid",
    pool: bool = False,
    last_conv: str | None = None,
    dropout: float = 0.0,
    head_dtype: str | None = None,
    seed: int = 0,
) -> keras.Sequential:
    """Input -> one ReLU ``Conv2D(f, 3)`` per entry of ``filters`` (``MaxPooling2D`` between
    them if ``pool``; the last one named ``last_conv`` if given) -> GlobalAveragePooling2D
    [-> Dropout] -> ``Dense(units, activation)``: the head CAM needs."""
    keras.utils.set_random_seed(seed)
    layers: list[Any] = [keras.Input((size, size, channels))]
    for i, count in enumerate(filters):
        if i and pool:
            layers.append(keras.layers.MaxPooling2D())
        name = last_conv if i == len(filters) - 1 else None
        layers.append(keras.layers.Conv2D(count, 3, padding=padding, activation="relu",
                                          name=name))
    layers.append(keras.layers.GlobalAveragePooling2D())
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(units, activation=activation, dtype=head_dtype))
    return keras.Sequential(layers)


def cam_model(units: int = 3, activation: str | None = "softmax", *, size: int = 16,
              channels: int = 1, head_dtype: str | None = None) -> keras.Sequential:
    """Conv 6 -> MaxPool -> Conv 8 ``last_conv`` -> GAP -> Dropout 0.3 -> Dense (random seed 4)."""
    return conv_gap_dense(units, activation, size=size, channels=channels, filters=(6, 8),
                          padding="same", pool=True, last_conv="last_conv", dropout=0.3,
                          head_dtype=head_dtype, seed=4)


def two_conv_model(units: int = 3, activation: str = "softmax", size: int = 16) -> keras.Model:
    """Input -> conv ``target`` -> ``pool`` -> conv ``after`` -> ``gap`` -> Dense ``head``
    (random seed 3): the gradients at ``target`` vary over space."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="target")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", activation="tanh", name="after")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(units, activation=activation, name="head")(x)
    return keras.Model(inputs, outputs)


def nested_vgg16() -> keras.Sequential:
    """VGG16 (``weights=None``, 32x32x3) as one layer ``vgg16`` of a Sequential, GAP, Dense 2.

    Not seeded: the caller seeds when the weights matter."""
    backbone = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    return keras.Sequential([keras.Input((32, 32, 3)), backbone,
                             keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(2, activation="softmax")])


def functional_with_backbone() -> keras.Model:
    """Gray 16x16 input tripled to RGB inside the model -> functional ``backbone``
    (``b_conv1``, ``b_conv2``) -> GAP -> Dropout -> Dense 3. Not seeded."""
    inner_in = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="b_conv1")(inner_in)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="b_conv2")(h)
    backbone = keras.Model(inner_in, h, name="backbone")
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Concatenate()([inputs, inputs, inputs])  # gray -> RGB inside the model
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


class TinySubclassed(keras.Model):
    """conv1 (4) -> conv2 (6) -> GAP -> Dense 3, as a subclassed model (no layer graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = keras.layers.Conv2D(4, 3, padding="same", activation="relu")
        self.conv2 = keras.layers.Conv2D(6, 3, padding="same", activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(3, activation="softmax")

    def call(self, x: Any) -> Any:
        return self.head(self.pool(self.conv2(self.conv1(x))))


def subclassed() -> TinySubclassed:
    """A :class:`TinySubclassed` built on a 16x16x1 input. Not seeded."""
    model = TinySubclassed()
    model(np.zeros((1, 16, 16, 1), np.float32))
    return model


def adapted_backbone() -> keras.Sequential:
    """16x16x1 -> 1x1 conv ``adapt`` (3 maps) -> functional ``backbone`` (``b_conv1`` 4 maps,
    ``b_conv2`` 6, valid padding, no activation) -> ``gap`` -> Dense ``head`` 2. Not seeded."""
    backbone_in = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="b_conv1")(backbone_in)
    x = keras.layers.Conv2D(6, 3, name="b_conv2")(x)
    backbone = keras.Model(backbone_in, x, name="backbone")
    return keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            keras.layers.Conv2D(3, 1, name="adapt"),
            backbone,
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(2, activation="softmax", name="head"),
        ]
    )


def small_cam_cnn(num_classes: int = 2, *, size: int = 24, dropout: float = 0.0
                  ) -> keras.Model:
    """cxrexplain's own ``cam_cnn``, filters (8, 16), ``size`` x ``size`` x 1 (random seed 1)."""
    keras.utils.set_random_seed(1)
    return models.build("cam_cnn", input_shape=(size, size, 1), num_classes=num_classes,
                        filters=(8, 16), dropout=dropout)


# ------------------------------------------------- a planted shortcut (swap test, audit)
PLANTED_SIZE = 32
PLANTED_CORNER = (slice(0, 4), slice(0, 4))
"""Where the shortcut marker lies: the top-left 4 x 4 pixels, far outside the lungs."""
PLANTED_CENTER = (slice(14, 18), slice(14, 18))
"""The patch the honest model reads: the middle 4 x 4 pixels, inside every lung mask."""


def patch_model(rows: slice, cols: slice, size: int = PLANTED_SIZE) -> keras.Model:
    """Two-class softmax on the mean of one patch: class 1 when the mean is above 0.5.

    Standard layers only: Cropping2D to the patch, GlobalAveragePooling2D, a Dense(2) whose
    logits are ``(-20 m + 10, 20 m - 10)``.
    """
    inputs = keras.Input((size, size, 1))
    x = keras.layers.Cropping2D(((rows.start, size - rows.stop), (cols.start, size - cols.stop))
                                )(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(2, activation="softmax")
    outputs = dense(x)
    dense.set_weights([np.array([[-20.0, 20.0]], np.float32), np.array([10.0, -10.0], np.float32)])
    return keras.Model(inputs, outputs, name="patch")


def planted(count: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Films, labels (0, 1, 0, 1, ...) and lung masks: class-1 films carry a bright corner
    marker and a bright center; background noise stays below 0.4."""
    rng = np.random.default_rng(seed)
    films = (rng.random((count, PLANTED_SIZE, PLANTED_SIZE, 1)) * 0.4).astype(np.float32)
    labels = np.arange(count) % 2
    films[labels == 1, PLANTED_CORNER[0], PLANTED_CORNER[1]] = 1.0
    films[labels == 1, PLANTED_CENTER[0], PLANTED_CENTER[1]] = 1.0
    lungs = np.zeros((count, PLANTED_SIZE, PLANTED_SIZE), bool)
    lungs[:, 8:26, 6:27] = True
    return films, labels, lungs


def fixed_mask_segmenter(mask: np.ndarray, channels: int = 1) -> Any:
    """A lung segmenter that returns ``mask`` (``(h, w)`` bool) for every film."""
    import cxrexplain as cx

    height, width = mask.shape
    inputs = keras.Input((height, width, channels))
    x = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(height * width)
    x = dense(x)
    x = keras.layers.Reshape((height, width, 1))(x)
    outputs = keras.layers.Activation("sigmoid")(x)
    dense.set_weights([np.zeros((height * width * channels, height * width), np.float32),
                       np.where(mask.ravel(), 20.0, -20.0).astype(np.float32)])
    return cx.lungs.LungSegmenter(keras.Model(inputs, outputs, name="fixed_mask"))


class ClassToken(keras.layers.Layer):
    """Prepends one learned class token to ``(N, T, D)`` tokens: ``(N, T + 1, D)``."""

    def build(self, input_shape: Any) -> None:
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), initializer="random_normal",
                                     name="token")

    def call(self, tokens: Any) -> Any:
        batch = keras.ops.shape(tokens)[0]
        token = keras.ops.broadcast_to(keras.ops.cast(self.token, tokens.dtype),
                                       (batch, 1, keras.ops.shape(tokens)[-1]))
        return keras.ops.concatenate([token, tokens], axis=1)


class PositionEmbedding(keras.layers.Layer):
    """Adds a learned ``(T, D)`` position embedding to ``(N, T, D)`` tokens."""

    def build(self, input_shape: Any) -> None:
        self.position = self.add_weight(shape=tuple(input_shape[1:]),
                                        initializer="random_normal", name="position")

    def call(self, tokens: Any) -> Any:
        return tokens + keras.ops.cast(self.position, tokens.dtype)[None]


class FirstToken(keras.layers.Layer):
    """``(N, T, D)`` -> ``(N, D)``: the class token."""

    def call(self, tokens: Any) -> Any:
        return tokens[:, 0, :]


def tiny_vit(units: int = 2, activation: str | None = "softmax", *, size: int = 32,
             channels: int = 1, patch: int = 8, dim: int = 16, heads: int = 2,
             depth: int = 2, class_token: bool = True, seed: int = 0) -> keras.Model:
    """A small vision transformer of Keras layers: ``Conv2D(dim, patch, strides=patch)``
    patch embedding -> ``(N, n, dim)`` tokens (n = (size / patch)^2, row-major) -> a learned
    class token prepended -> position embedding -> ``depth`` blocks of LayerNorm ``norm1_i``,
    MultiHeadAttention ``attention_i``, residual, LayerNorm, MLP, residual -> LayerNorm ->
    the class token (or, without one, the tokens' mean) -> ``Dense(units, activation)``."""
    keras.utils.set_random_seed(seed)
    side = size // patch
    inputs = keras.Input((size, size, channels))
    x = keras.layers.Conv2D(dim, patch, strides=patch, name="patch_embedding")(inputs)
    x = keras.layers.Reshape((side * side, dim), name="tokens")(x)
    if class_token:
        x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="position")(x)
    for i in range(depth):
        y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"norm1_{i}")(x)
        y = keras.layers.MultiHeadAttention(heads, dim // heads, name=f"attention_{i}")(y, y)
        x = keras.layers.Add(name=f"residual1_{i}")([x, y])
        y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"norm2_{i}")(x)
        y = keras.layers.Dense(2 * dim, activation="gelu", name=f"mlp1_{i}")(y)
        y = keras.layers.Dense(dim, name=f"mlp2_{i}")(y)
        x = keras.layers.Add(name=f"residual2_{i}")([x, y])
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    pooled = (FirstToken(name="cls") if class_token
              else keras.layers.GlobalAveragePooling1D(name="mean"))(x)
    outputs = keras.layers.Dense(units, activation=activation, name="head")(pooled)
    return keras.Model(inputs, outputs, name="tiny_vit")
