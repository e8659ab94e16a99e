"""Keras layers the reference builders need that Keras does not ship.

Both layers hold no weights, are registered with
``keras.saving.register_keras_serializable(package="cxrexplain")`` and so reload from a
``.keras`` file with ``safe_mode`` on, once :mod:`cxrexplain` (or :mod:`cxrexplain.models`)
has been imported (:meth:`cxrexplain.Classifier.load` imports it for you).

* :class:`DilatedMaxPooling2D`: PyTorch's ``MaxPool2d(kernel, stride, padding, dilation)``,
  which SaraElwatany's proposed CNN (``five_block_cnn``) uses and ``keras.layers.MaxPooling2D``
  cannot express (Keras max pooling has no dilation, and ``tf.nn.pool`` allows dilation only
  with stride 1).
* :class:`ImagenetPreprocessing`: the input scaling of a Keras Applications backbone
  (``"caffe"``, ``"torch"`` or ``"tf"`` mode) for images in [0, 1], inside the model.

Example:
    >>> import numpy as np
    >>> from cxrexplain.models.layers import DilatedMaxPooling2D
    >>> DilatedMaxPooling2D()(np.zeros((1, 75, 75, 4), np.float32)).shape
    TensorShape([1, 38, 38, 4])
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from cxrexplain.errors import InvalidInputError

__all__ = ["DilatedMaxPooling2D", "ImagenetPreprocessing", "PREPROCESSING_MODES"]

PREPROCESSING_MODES = ("caffe", "torch", "tf")
"""The preprocessing modes of Keras Applications that :class:`ImagenetPreprocessing` covers."""

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


def _pair(value: Any, name: str, *, minimum: int) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        pair = (value[0], value[1])
    else:
        raise InvalidInputError(f"{name}: expected an int or a pair of ints, got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in pair):
        raise InvalidInputError(f"{name}: expected whole numbers >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


@keras.saving.register_keras_serializable(package="cxrexplain")
class DilatedMaxPooling2D(keras.layers.Layer):  # type: ignore[misc]
    """Max pooling with dilation, exactly as PyTorch's ``nn.MaxPool2d`` (``ceil_mode=False``).

    Output position ``i`` takes the maximum of the inputs at ``i * strides - padding + j *
    dilation`` for ``j`` in ``0 .. pool_size - 1`` (per axis), with the padding filled with
    ``-inf`` so it never wins. Output size per axis: ``floor((n + 2 * padding - dilation *
    (pool_size - 1) - 1) / strides) + 1``. That CNN's ``MaxPool2d(kernel_size=2, stride=2,
    padding=1, dilation=2)`` (the defaults here) maps 75 -> 38 and 19 -> 10.

    Args:
        pool_size: Window size (int or pair).
        strides: Step between windows (int or pair).
        padding: Implicit ``-inf`` padding on each side (int or pair); at most half the
            dilated window, as in PyTorch.
        dilation: Spacing between the window's taps (int or pair).
        **kwargs: Standard layer arguments (``name``, ``dtype``).

    Raises:
        InvalidInputError: An argument is not a positive whole number, or the padding is
            more than half the dilated window.

    Example:
        >>> import numpy as np
        >>> layer = DilatedMaxPooling2D(pool_size=2, strides=2, padding=1, dilation=2)
        >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
        >>> np.asarray(layer(x))[0, :, :, 0]
        array([[ 5.,  7.],
               [13., 15.]], dtype=float32)
    """

    def __init__(
        self,
        pool_size: int | tuple[int, int] = 2,
        strides: int | tuple[int, int] = 2,
        padding: int | tuple[int, int] = 1,
        dilation: int | tuple[int, int] = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size, "pool_size", minimum=1)
        self.strides = _pair(strides, "strides", minimum=1)
        self.padding = _pair(padding, "padding", minimum=0)
        self.dilation = _pair(dilation, "dilation", minimum=1)
        for axis in range(2):
            window = self.dilation[axis] * (self.pool_size[axis] - 1) + 1
            if self.padding[axis] > window // 2:
                raise InvalidInputError(
                    f"padding: at most half the dilated window ({window // 2}), got "
                    f"{self.padding[axis]}"
                )

    def _output_length(self, length: int | None, axis: int) -> int | None:
        if length is None:
            return None
        span = self.dilation[axis] * (self.pool_size[axis] - 1) + 1
        return (length + 2 * self.padding[axis] - span) // self.strides[axis] + 1

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """``(batch, out_h, out_w, channels)`` for an ``(batch, h, w, channels)`` input."""
        rows = self._output_length(input_shape[1], 0)
        cols = self._output_length(input_shape[2], 1)
        for name, value, given in (("height", rows, input_shape[1]),
                                   ("width", cols, input_shape[2])):
            if value is not None and value < 1:
                raise InvalidInputError(
                    f"input: a {name} of {given} is too small for {self.name} "
                    f"(pool {self.pool_size}, dilation {self.dilation})"
                )
        return (input_shape[0], rows, cols, input_shape[3])

    def call(self, inputs: Any) -> Any:
        """Pool ``(batch, h, w, channels)`` inputs."""
        pad_h, pad_w = self.padding
        padded = ops.pad(
            inputs,
            [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]],
            constant_values=float("-inf"),
        )
        rows = self._output_length(inputs.shape[1], 0)
        cols = self._output_length(inputs.shape[2], 1)
        if rows is None or cols is None:
            raise InvalidInputError(f"input: {self.name} needs a known height and width")
        step_h, step_w = self.strides
        result: Any = None
        for a in range(self.pool_size[0]):
            top = a * self.dilation[0]
            for b in range(self.pool_size[1]):
                left = b * self.dilation[1]
                tap = padded[
                    :,
                    top : top + step_h * (rows - 1) + 1 : step_h,
                    left : left + step_w * (cols - 1) + 1 : step_w,
                    :,
                ]
                result = tap if result is None else ops.maximum(result, tap)
        return result

    def get_config(self) -> dict[str, Any]:
        """The layer's constructor arguments."""
        config: dict[str, Any] = super().get_config()
        config.update(
            pool_size=self.pool_size,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation,
        )
        return config


@keras.saving.register_keras_serializable(package="cxrexplain")
class ImagenetPreprocessing(keras.layers.Layer):  # type: ignore[misc]
    """The input preprocessing of a Keras Applications backbone, for RGB images in [0, 1].

    It equals ``keras.applications.<family>.preprocess_input(255 * x)``:

    * ``"caffe"`` (VGG16, VGG19, ResNet50): RGB -> BGR, times 255, minus the ImageNet channel
      means ``(103.939, 116.779, 123.68)``;
    * ``"torch"`` (DenseNet121): minus ``(0.485, 0.456, 0.406)``, divided by
      ``(0.229, 0.224, 0.225)``;
    * ``"tf"`` (MobileNetV2): scaled to [-1, 1].

    Args:
        mode: ``"caffe"``, ``"torch"`` or ``"tf"``.
        **kwargs: Standard layer arguments (``name``, ``dtype``).

    Raises:
        InvalidInputError: An unknown mode.

    Example:
        >>> import numpy as np
        >>> float(np.asarray(ImagenetPreprocessing("tf")(np.ones((1, 2, 2, 3), np.float32))).max())
        1.0
    """

    def __init__(self, mode: str = "caffe", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise InvalidInputError(
                f"mode: expected one of {', '.join(PREPROCESSING_MODES)}, got {mode!r}"
            )
        self.mode = mode

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Same as the input shape."""
        return tuple(input_shape)

    def call(self, inputs: Any) -> Any:
        """Scale a batch of RGB images in [0, 1] the way the backbone was trained."""
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=self.compute_dtype)
            return ops.flip(x, axis=-1) * 255.0 - mean
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=self.compute_dtype)
            return (x - mean) / std
        return x * 2.0 - 1.0

    def get_config(self) -> dict[str, Any]:
        """The layer's constructor arguments."""
        config: dict[str, Any] = super().get_config()
        config.update(mode=self.mode)
        return config
