"""Errors raised by cxrexplain.

Every error a user can cause is a subclass of :class:`CxrExplainError`, with a message that
names the file, layer or argument at fault and what was expected.

Example:
    >>> import cxrexplain as cx
    >>> try:
    ...     cx.load_image("missing.png")
    ... except cx.CxrExplainError as err:
    ...     print(type(err).__name__)
    ImageLoadError
"""

from __future__ import annotations

__all__ = [
    "CxrExplainError",
    "ImageLoadError",
    "InvalidInputError",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelStructureError",
]


class CxrExplainError(Exception):
    """Base class of every error cxrexplain raises on purpose."""


class ImageLoadError(CxrExplainError, OSError):
    """A file or byte string could not be read or decoded as an image.

    Raised for missing files, folders, empty files, files that are not images and truncated
    images. The message names the file.
    """


class InvalidInputError(CxrExplainError, ValueError):
    """An argument has the wrong type, shape, range or value.

    Raised for arrays with NaN/inf, the wrong number of dimensions or channels, images smaller
    than the minimum size, class-name lists that do not match the model, and the like. The
    message names the argument.
    """


class ModelStructureError(CxrExplainError, ValueError):
    """A model lacks the structure an operation needs.

    Raised, for example, when CAM is asked of a model without a global-average-pooling ->
    Dense head, when a model has no convolutional layer, or when a layer name is unknown.
    """


class ModelLoadError(CxrExplainError, OSError):
    """A file could not be loaded as a Keras model (or a saved :class:`~cxrexplain.Classifier`)."""


class MissingDependencyError(CxrExplainError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it.

    Example:
        ``pip install "cxrexplain[dicom]"`` installs pydicom for DICOM files.
    """
