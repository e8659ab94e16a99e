"""The :class:`LungSegmenter`: a trained lung U-Net with its input size, saved as one file.

Segmenting runs the model on batches resized to its input size and brings each probability
map back to the image's own size (bilinear), then thresholds it and cleans it
(:func:`~cxrexplain.lungs.postprocess.clean_mask`: the two largest regions, holes filled).

Example:
    >>> import cxrexplain as cx
    >>> seg = cx.lungs.LungSegmenter(cx.models.build("lung_unet", input_shape=(32, 32, 1)))
    >>> seg.segment(np.zeros((2, 48, 40, 1), np.float32)).shape
    (2, 48, 40)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np

from cxrexplain._checks import check_int, check_number, check_size, describe, first_line
from cxrexplain._model_file import read_model_file, write_model_file
from cxrexplain._version import __version__
from cxrexplain.errors import CxrExplainError, InvalidInputError, ModelLoadError
from cxrexplain.io import ImageSource, iter_chunks, load_image, load_images
from cxrexplain.lungs.postprocess import clean_mask

__all__ = ["LungSegmenter", "check_segmenter"]

KIND = "lung_segmenter"
"""The ``kind`` entry in a saved segmenter's metadata."""


class LungSegmenter:
    """A Keras model that maps a chest film to a lung mask, with what it needs to run.

    Args:
        model: A model with one image input ``(batch, h, w, C)`` (C = 1 or 3) and a sigmoid
            output ``(batch, h, w, 1)``, such as ``cx.models.build("lung_unet", ...)``
            trained with :func:`cxrexplain.lungs.train`.
        threshold: Probability above which a pixel is lung.
        clean: Keep the two largest regions and fill holes (see the module docs).

    Raises:
        InvalidInputError: The model is not a Keras model with a fixed-size image input and a
            one-channel map output, or a bad threshold.

    Example:
        >>> seg = cx.lungs.LungSegmenter(cx.models.build("lung_unet", input_shape=(32, 32, 1)))
        >>> seg.input_size, seg.channels
        ((32, 32), 1)
    """

    def __init__(self, model: keras.Model, *, threshold: float = 0.5, clean: bool = True
                 ) -> None:
        if not isinstance(model, keras.Model):
            raise InvalidInputError(
                f"model: expected a keras.Model (a lung U-Net), got {type(model).__name__}"
            )
        shape = _input_shape(model)
        output = _output_shape(model)
        if len(output) != 4 or output[-1] != 1:
            raise InvalidInputError(
                f"model: a lung segmenter outputs one mask channel (batch, h, w, 1); "
                f"'{model.name}' outputs {tuple(output)}"
            )
        self.model = model
        self.input_size: tuple[int, int] = (int(shape[1]), int(shape[2]))
        self.channels: int = int(shape[3])
        self.threshold = check_number(threshold, "threshold", low=0.0, high=1.0,
                                      low_open=True, high_open=True)
        if not isinstance(clean, bool):
            raise InvalidInputError(f"clean: expected True or False, got {clean!r}")
        self.clean = clean
        self._predict: Any = None

    def __repr__(self) -> str:
        return (f"LungSegmenter(model={self.model.name!r}, input_size={self.input_size}, "
                f"channels={self.channels}, threshold={self.threshold})")

    # -------------------------------------------------------------- segmenting
    def probabilities(
        self, images: ImageSource | Iterable[ImageSource], *, batch_size: int = 16
    ) -> np.ndarray:
        """The model's lung probability per pixel at its input size: ``(N, h, w)`` float32.

        Example:
            >>> seg.probabilities(np.zeros((1, 32, 32, 1), np.float32)).shape
            (1, 32, 32)
        """
        check_int(batch_size, "batch_size")
        parts = [self._run(load_images(chunk, size=self.input_size, channels=self.channels))
                 for chunk in iter_chunks(images, batch_size)]
        return np.concatenate(parts)

    def segment(
        self,
        images: ImageSource | Iterable[ImageSource],
        *,
        size: int | tuple[int, int] | None = None,
        batch_size: int = 16,
    ) -> np.ndarray | list[np.ndarray]:
        """Lung masks, one per image, at each image's loaded size (or ``size``).

        Images go through :func:`cxrexplain.load_image` (8-bit, 16-bit and DICOM files,
        arrays) and run through the model in batches of ``batch_size``.

        Args:
            images: Anything :func:`cxrexplain.load_images` accepts.
            size: Output size (int or ``(height, width)``); None: each image's own size.
            batch_size: Images per model call; memory stays flat over long lists.

        Returns:
            ``(N, H, W)`` bool when the masks share one size (always with ``size=`` or an
            array input); a list of ``(H_i, W_i)`` bool arrays when the images differ in
            size.

        Raises:
            ImageLoadError: A file cannot be read.
            InvalidInputError: Bad ``size`` or ``batch_size``, or no images.

        Example:
            >>> seg.segment([np.zeros((40, 40)), np.zeros((50, 30))], size=64).shape
            (2, 64, 64)
        """
        target = None if size is None else check_size(size, "size")
        check_int(batch_size, "batch_size")
        masks: list[np.ndarray] = []
        for chunk in iter_chunks(images, batch_size):
            if isinstance(chunk, np.ndarray):
                native = [load_image(image, channels=self.channels) for image in chunk]
            else:
                native = [load_image(item, channels=self.channels) for item in chunk]
            masks.extend(self.segment_loaded(native, size=target))
        shapes = {m.shape for m in masks}
        if len(shapes) == 1:
            return np.stack(masks)
        return masks

    def segment_loaded(self, images: list[np.ndarray], *,
                       size: tuple[int, int] | None = None) -> list[np.ndarray]:
        """Masks of images already loaded (``(H, W, C)`` float32 arrays), one model call.

        Used by :meth:`segment` and the audit, which loads each film once for both models.

        Example:
            >>> [m.shape for m in seg.segment_loaded([np.zeros((40, 36, 1), np.float32)])]
            [(40, 36)]
        """
        batch = load_images(images, size=self.input_size, channels=self.channels)
        probabilities = self._run(batch)
        masks = []
        for image, probability in zip(images, probabilities, strict=True):
            height, width = size if size is not None else image.shape[:2]
            resized = probability if probability.shape == (height, width) else cv2.resize(
                probability, (width, height), interpolation=cv2.INTER_LINEAR)
            mask = resized > self.threshold
            masks.append(clean_mask(mask) if self.clean else mask)
        return masks

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._predict is None:
            self._predict = _compiled(self.model)
        try:
            out = np.asarray(self._predict(batch))
        except Exception as err:
            raise InvalidInputError(
                f"images: the segmenter '{self.model.name}' cannot run on a batch of shape "
                f"{batch.shape} ({type(err).__name__}: {first_line(err)})"
            ) from err
        return out[..., 0].astype(np.float32, copy=False)

    # ------------------------------------------------------------- file
    def metadata(self) -> dict[str, Any]:
        """What :meth:`save` stores beside the model."""
        return {"kind": KIND, "cxrexplain_version": __version__,
                "input_size": list(self.input_size), "channels": self.channels,
                "threshold": self.threshold, "clean": self.clean}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the model and its settings in one ``.keras`` file (written atomically).

        Example:
            >>> seg.save("lungs.keras")
            PosixPath('lungs.keras')
        """
        return write_model_file(path, self.model, self.metadata())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LungSegmenter:
        """Load a segmenter saved with :meth:`save` (Keras ``safe_mode`` stays on).

        A plain ``.keras`` mask model without metadata loads with the defaults.

        Raises:
            ModelLoadError: The file is missing, not a Keras model, a classifier, or not a
                one-channel mask model.

        Example:
            >>> LungSegmenter.load("lungs.keras").input_size
            (32, 32)
        """
        model, meta = read_model_file(path)
        source = Path(os.fspath(path))
        if meta and meta.get("kind") != KIND:
            raise ModelLoadError(
                f"model file '{source}': holds a {meta.get('kind', 'classifier')}, not a lung "
                "segmenter (train one with cx.lungs.train or `cxrexplain lungs train`)"
            )
        try:
            return cls(model, threshold=float(meta.get("threshold", 0.5)),
                       clean=bool(meta.get("clean", True)))
        except CxrExplainError as err:
            raise ModelLoadError(f"model file '{source}': {err}") from err


def check_segmenter(segmenter: Any, name: str) -> LungSegmenter:
    """``segmenter`` itself when it is a :class:`LungSegmenter`; else an error naming ``name``.

    Example:
        >>> check_segmenter("lungs.keras", "--lungs")
        Traceback (most recent call last):
        ...
        cxrexplain.errors.InvalidInputError: --lungs: expected a cx.lungs.LungSegmenter (...
    """
    if not isinstance(segmenter, LungSegmenter):
        raise InvalidInputError(
            f"{name}: expected a cx.lungs.LungSegmenter (cx.lungs.train or "
            f"cx.lungs.LungSegmenter.load), got {describe(segmenter)}"
        )
    return segmenter


def _input_shape(model: keras.Model) -> tuple[Any, ...]:
    shapes = model.inputs if getattr(model, "inputs", None) else None
    if not shapes or len(shapes) != 1:
        raise InvalidInputError(
            f"model: a lung segmenter takes one image input; '{model.name}' has "
            f"{0 if not shapes else len(shapes)}"
        )
    shape = tuple(shapes[0].shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None or shape[3] not in (1, 3):
        raise InvalidInputError(
            f"model: a lung segmenter needs a fixed input (batch, h, w, 1 or 3); "
            f"'{model.name}' takes {shape}"
        )
    return shape


def _output_shape(model: keras.Model) -> tuple[Any, ...]:
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        raise InvalidInputError(f"model: '{model.name}' must have one output (the mask)")
    return tuple(outputs[0].shape)


def _compiled(model: keras.Model) -> Any:
    import tensorflow as tf

    def run(batch: tf.Tensor) -> tf.Tensor:
        return tf.cast(model(batch, training=False), tf.float32)

    return tf.function(run, reduce_retracing=True)
