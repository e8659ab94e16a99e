"""Lung focus: a classifier that sees only the lungs, with its segmenter inside the model.

:func:`with_lung_focus` wraps a classifier ``model`` and a lung segmenter into one new Keras
model: image -> :class:`~cxrexplain.lungs.focus.LungFocus` (segment, dilate, fill what lies
outside) -> ``model``. The layer, its fills and modes live with the other lung rules in
:mod:`cxrexplain.lungs.focus` (the margin in :mod:`cxrexplain.lungs.geometry`); this module
composes the model, and keeps their old import paths (``from cxrexplain.models.lung_focus
import LungFocus, DEFAULT_MARGIN, dilation_disc`` still works).

Example:
    >>> import keras, numpy as np
    >>> import cxrexplain as cx
    >>> seg = cx.lungs.LungSegmenter(
    ...     cx.models.build("lung_unet", input_shape=(32, 32, 1), filters=(4, 8)))
    >>> model = keras.Sequential([keras.Input((48, 48, 1)),
    ...     keras.layers.Conv2D(4, 3, activation="relu", name="last_conv"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")],
    ...     name="classifier")
    >>> focused = cx.models.with_lung_focus(model, seg)
    >>> focused.input_shape, focused.output_shape
    ((None, 48, 48, 1), (None, 2))
    >>> cx.GradCAM(focused).explain(np.zeros((2, 48, 48, 1), np.float32)).layer
    'classifier/last_conv'
"""

from __future__ import annotations

import keras

from cxrexplain._checks import check_choice, check_number, describe
from cxrexplain._keras_utils import input_spec
from cxrexplain.errors import InvalidInputError
from cxrexplain.lungs.focus import BLUR_SIGMA, DEFAULT_FILL, FILLS, MODES, LungFocus
from cxrexplain.lungs.geometry import DEFAULT_MARGIN, MAX_MARGIN, dilation_disc
from cxrexplain.lungs.segmenter import LungSegmenter, check_segmenter

__all__ = [
    "BLUR_SIGMA",
    "DEFAULT_FILL",
    "DEFAULT_MARGIN",
    "FILLS",
    "MODES",
    "LungFocus",
    "SegmenterLike",
    "dilation_disc",
    "with_lung_focus",
]

SegmenterLike = LungSegmenter
"""Deprecated alias of :class:`cxrexplain.lungs.LungSegmenter` (the lung focus used to read a
segmenter by duck typing, when ``lungs/`` lay above ``models/``)."""


def with_lung_focus(
    model: keras.Model,
    segmenter: LungSegmenter,
    *,
    mode: str = "mask",
    margin: float = DEFAULT_MARGIN,
    fill: str = DEFAULT_FILL,
) -> keras.Model:
    """A new model that hides what lies outside the lungs before ``model`` sees the film.

    ``film -> LungFocus (segment, dilate, fill or crop) -> model``: the new functional model takes
    the same input as ``model`` and gives the same outputs, so a
    :class:`~cxrexplain.Classifier`, ``predict``, training and every explainer use it
    unchanged. Explanations are in the film's own pixels (boxes and masks apply as they are),
    and the default target layer is ``model``'s last convolutional layer, never one of the
    segmenter's. It shares its weights with ``model`` (training it trains ``model``) and holds
    a frozen copy of the segmenter's inference graph
    (:func:`~cxrexplain.lungs.focus.inference_copy`: architecture and weights, without the
    segmenter's compiled loss, metrics or optimizer, so a segmenter trained in the same
    process works): no gradient reaches it and training leaves it unchanged. It saves as one
    ``.keras`` file with :meth:`cxrexplain.Classifier.save` and reloads with safe_mode on.

    Fills: ``"mean"`` (the default) paints the outside with the film's own mean grey (per
    channel). It is flat, so no texture or shape from outside the lungs survives, and it sits
    at the film's own intensity, so the classifier's inputs (and its BatchNorm statistics)
    stay close to whole films. ``"zero"`` hides as much but draws a hard, high-contrast
    outline of the lungs on every film, an edge a network readily learns, and moves the input
    far from the films' intensities. ``"blur"`` keeps the outside's low frequencies: large
    burnt-in labels, collimation edges and body shape survive a blur, and shortcuts with
    them. The mean leaks one number per film from outside the lungs (their share of the
    average), a far weaker signal than either.

    Modes: ``"mask"`` (the default) keeps the lungs and fills the rest as above.
    ``"inverse"`` keeps only what lies outside the grown lungs and fills the lungs, for the
    shortcut-strength check: train the same architecture on the inverse, and a score far
    above chance means the data set carries a shortcut outside the lungs. In this mode the
    fill comes from the visible part alone, so that nothing from inside the lungs leaks in:
    ``"mean"`` is the mean of the visible pixels (per channel), ``"blur"`` a Gaussian blur of
    the visible pixels normalised by the blurred visible mask (the visible mean where none is
    within the kernel's reach), ``"zero"`` black.

    ``"crop"`` hides nothing: each film's grown lung mask gives a bounding box (its first and
    last rows and columns with a lung pixel; the whole frame for a film without lungs), and
    that box is resized to the film's size (bilinear, ``tf.image.crop_and_resize``'s sampling;
    the fill is not used), so the classifier sees the lungs at a fixed position and size and
    cannot read the patient's position or build from where and how large the lungs lie. The
    classifier's layers then see the crop, not the film; the explainers map their maps back
    to the film (:meth:`LungFocus.to_film`: 0 outside the box), so explanations stay in the
    film's pixels in this mode too.

    Args:
        model: A Keras classifier with one fixed-size image input ``(H, W, C)``, C = 1 or 3.
        segmenter: A :class:`cxrexplain.lungs.LungSegmenter` (its model, input size, channels
            and threshold are used; its clean-up is not, see the module notes).
        mode: ``"mask"`` (the default): replace what lies outside the grown lung mask;
            ``"inverse"``: replace what lies inside it; ``"crop"``: resize its bounding box
            to the whole frame (see :data:`MODES`).
        margin: Dilation of the lung mask before masking, a share of the film's larger side
            in [0, 0.5], with a disc (:data:`DEFAULT_MARGIN`: 0.03, the audit's margin).
        fill: ``"mean"``, ``"zero"`` or ``"blur"`` (see above and :data:`FILLS`); the
            ``"crop"`` mode fills nothing.

    Returns:
        The functional model ``<model.name>_lung_focus``: layers ``image``, ``lung_focus``
        (a :class:`LungFocus`) and ``model``.

    Raises:
        InvalidInputError: ``model`` is not a Keras model or has no fixed-size image input,
            ``segmenter`` is not a lung segmenter or its channels cannot be matched to the
            model's (only 1 <-> 3 convert), an unknown ``mode`` or ``fill``, a ``margin``
            outside [0, 0.5].

    Example:
        >>> seg  # an untrained 32 x 32 lung U-Net
        LungSegmenter(model='lung_unet', input_size=(32, 32), channels=1, threshold=0.5)
        >>> focused = cx.models.with_lung_focus(model, seg, margin=0.05, fill="zero")
        >>> [layer.name for layer in focused.layers]
        ['image', 'lung_focus', 'cam_cnn']
        >>> clf = cx.Classifier(focused, class_names=["NORMAL", "PNEUMONIA"])
        >>> clf.save("focused.keras")
        PosixPath('focused.keras')
        >>> cx.GradCAM(cx.Classifier.load("focused.keras")).explain(batch).layer
        'cam_cnn/block2_relu'
        >>> cropped = cx.models.with_lung_focus(model, seg, mode="crop")
        >>> cx.GradCAM(cropped).explain(batch).heatmaps.shape  # in the films' pixels
        (4, 32, 32)
    """
    if not isinstance(model, keras.Model):
        raise InvalidInputError(
            f"model: expected a keras.Model (the classifier), got {describe(model)}"
        )
    check_segmenter(segmenter, "segmenter")
    mode = str(check_choice(mode, "mode", MODES))
    margin = check_number(margin, "margin", low=0.0, high=MAX_MARGIN)
    fill = str(check_choice(fill, "fill", FILLS))
    spec = input_spec(model)
    if spec is None or spec[0] is None or spec[1] is None or spec[2] is None:
        raise InvalidInputError(
            f"model: '{model.name}' needs a fixed-size image input (batch, H, W, C) for a "
            f"lung focus, got {spec}"
        )
    height, width, channels = int(spec[0]), int(spec[1]), int(spec[2])
    wanted = int(segmenter.channels)
    if channels != wanted and not (channels in (1, 3) and wanted in (1, 3)):
        raise InvalidInputError(
            f"segmenter: takes {wanted}-channel images and '{model.name}' takes {channels}; "
            f"only 1 <-> 3 channels can be converted"
        )
    focus = LungFocus(segmenter.model, threshold=segmenter.threshold, margin=margin, fill=fill,
                      mode=mode, name="lung_focus")
    inputs = keras.Input((height, width, channels), name="image")
    return keras.Model(inputs, model(focus(inputs)), name=f"{model.name}_lung_focus")


