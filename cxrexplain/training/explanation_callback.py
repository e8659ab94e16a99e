"""``ExplanationCallback``: explain the same films at the end of training epochs.

Watch a shortcut appear (or vanish) while a model trains: at the end of every ``every``-th
epoch the callback explains a fixed set of films with the model being trained, in one batched
compiled pass, and

* writes the overlays as one grid picture (:func:`cxrexplain.drawing.overlay_grid`),
  ``out_dir/epoch_003.png`` (the 1-based epoch), atomically;
* writes the same grid to TensorBoard (``tf.summary.image("explanations", ...)``, step = the
  0-based epoch, as Keras' own ``TensorBoard`` callback counts), with the scalars below;
* with lung ``masks``, logs the mean **lung share** (the heatmaps' mass inside the lungs, grown
  by 3% of the image side, exactly as :func:`cxrexplain.audit` measures it: the masks are read
  by the same rule and measured by :func:`cxrexplain.lungs.shares.measure`), and with lesion
  ``boxes`` the **pointing game** hit rate (:func:`cxrexplain.metrics.pointing_game`), as
  TensorBoard scalars ``explanation/lung_share`` and ``explanation/pointing_game`` and in the
  epoch's ``logs`` as ``expl_lung_share`` and ``expl_pointing_game``, so ``History``,
  ``CSVLogger`` and the progress bar show them (put the callback before a ``CSVLogger`` of
  your own; :func:`cxrexplain.training.fit` runs the callbacks it is given before its own).
  Epochs that are not explained log NaN, so every list in ``History`` has one value per epoch.
* under a guided :func:`~cxrexplain.training.fit` (``guide=``), explains the classifier being
  guided and writes the guide's terms of the epoch (``lung_outside``, ``box_outside`` and their
  ``val_`` twins, :data:`GUIDE_LOGS`) in the picture's header and as TensorBoard scalars
  ``guide/...``.

The explainer is built on ``self.model``, the model Keras trains: under
:func:`cxrexplain.training.fit` with mixed precision or a ``tf.distribute`` strategy that is the
copy built under them, and nested backbones (a Keras Applications model inside a
``Sequential``) are searched for the target layer as everywhere in cxrexplain. The compiled
pass is traced once per model and reads the variables, so every later epoch reuses it with the
new weights.

TensorBoard output needs the ``tensorboard`` package (TensorFlow 2.21 no longer installs it):
``pip install "cxrexplain[tensorboard]"``.

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2,
    ...                         filters=(4, 8))
    >>> watch = cx.training.ExplanationCallback(batch, out_dir="explanations", masks=lungs,
    ...                                         class_names=["NORMAL", "PNEUMONIA"])
    >>> history = cx.training.fit(model, train, val, epochs=2, verbose=0, callbacks=[watch])
    >>> sorted(p.name for p in Path("explanations").iterdir())
    ['epoch_001.png', 'epoch_002.png']
    >>> len(history.history["expl_lung_share"]), watch.last_explanation.heatmaps.shape
    (2, (4, 32, 32))
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import tensorflow as tf

from cxrexplain._arrays import as_boxes, resize_masks
from cxrexplain._checks import check_int, check_number, describe
from cxrexplain._files import atomic_write_bytes
from cxrexplain.classifier import Classifier
from cxrexplain.drawing.grid import overlay_grid
from cxrexplain.errors import ImageLoadError, InvalidInputError, MissingDependencyError
from cxrexplain.explain import Explainer, Explanation, Targets, get_explainer
from cxrexplain.io import ImageSource, load_image, load_images, load_masks
from cxrexplain.lungs.shares import measure
from cxrexplain.metrics import pointing_game
from cxrexplain.training.guide import GuidedModel

__all__ = ["ExplanationCallback"]

LUNG_SHARE = "expl_lung_share"
"""The ``logs`` key of the mean lung share."""
POINTING_GAME = "expl_pointing_game"
"""The ``logs`` key of the pointing game's hit rate."""

GUIDE_LOGS = ("lung_outside", "box_outside")
"""What a guided fit (:class:`~cxrexplain.training.Guide`) logs: the callback writes them
(and their ``val_`` twins) beside its own scalars, ``guide/lung_outside`` in TensorBoard, and
in each picture's header."""



class ExplanationCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Explain a fixed set of films at the end of every ``every``-th epoch (see module docs).

    Args:
        images: The films to explain, anything :func:`cxrexplain.load_images` accepts (paths,
            arrays of any size, an ``(N, H, W, C)`` batch); read once, and resized to the
            model's input size when training begins.
        method: An explainer name (:func:`cxrexplain.explainers`), e.g. ``"gradcam"``,
            ``"cam"``.
        every: Explain after epochs ``every``, ``2 * every``, ... (1-based).
        out_dir: Folder for the grid pictures ``epoch_001.png``, ...; None: none written.
        tensorboard_dir: Folder for TensorBoard event files (the grid and the scalars);
            None: none written. Needs the ``tensorboard`` package.
        targets: The class each map explains: None (each film's predicted class at that
            epoch), one class (index or name) for all, or one per film.
        masks: Lung masks, one per film: an ``(N, H, W)`` array, or a list of ``(H, W)``
            masks or mask files, any size (resized to the model's input with nearest
            neighbours); read as :func:`cxrexplain.audit` reads them (files at their stored
            type, the one mask rule of :mod:`cxrexplain._arrays`: bool as is, floats >= 0.5,
            integers above half their largest value). Logs the lung share.
        boxes: Finding boxes ``(x, y, width, height)`` in each film's own pixels: an
            ``(N, 4)`` array, or one entry per film (a box, an ``(M, 4)`` array of boxes, or
            None for a film without a finding). Logs the pointing game over the films that
            have boxes.
        class_names: The model's class names (for ``targets`` by name and the captions);
            default ``class_0``, ``class_1``, ...
        layer: The target layer (name, nested path or layer); default as every explainer.
        tolerance: The pointing game's tolerance, in pixels of the model's input.

    Attributes:
        last_explanation: The :class:`~cxrexplain.Explanation` of the last epoch explained
            (None before the first).
        epochs_explained: The 1-based epochs explained so far.

    Raises:
        InvalidInputError: No films, an unknown method, ``every`` not a whole number >= 1,
            masks or boxes that do not match the films, an empty lung mask; when training
            begins, targets the model does not have.
        ImageLoadError: A film cannot be read.
        MissingDependencyError: ``tensorboard_dir`` is given and TensorBoard is not installed.

    Example:
        >>> watch = ExplanationCallback(batch, method="cam", every=2, out_dir="runs/expl",
        ...                             boxes=boxes, tolerance=2)
        >>> images, labels = train
        >>> model.compile("adam", "sparse_categorical_crossentropy")
        >>> model.fit(images, labels, epochs=4, verbose=0, callbacks=[watch]).epoch
        [0, 1, 2, 3]
        >>> watch.epochs_explained, sorted(p.name for p in Path("runs/expl").iterdir())
        ([2, 4], ['epoch_002.png', 'epoch_004.png'])
    """

    def __init__(
        self,
        images: ImageSource | Iterable[ImageSource],
        *,
        method: str = "gradcam",
        every: int = 1,
        out_dir: str | os.PathLike[str] | None = None,
        tensorboard_dir: str | os.PathLike[str] | None = None,
        targets: Targets = None,
        masks: Any = None,
        boxes: Any = None,
        class_names: Sequence[str] | None = None,
        layer: str | keras.layers.Layer | None = None,
        tolerance: float = 15,
    ) -> None:
        super().__init__()
        self._method: type[Explainer] = get_explainer(method)
        self.every = check_int(every, "every", minimum=1)
        self.out_dir = _folder(out_dir, "out_dir")
        self.tensorboard_dir = _folder(tensorboard_dir, "tensorboard_dir")
        if self.tensorboard_dir is not None:
            _require_tensorboard()
        self._sources, self._sizes = _load_films(images)
        count = len(self._sizes)
        self._masks = None if masks is None else _mask_list(masks, count)
        self._boxes = None if boxes is None else _box_list(boxes, count)
        self.targets = targets
        self.class_names = None if class_names is None else list(class_names)
        self.layer = layer
        self.tolerance = check_number(tolerance, "tolerance", low=0.0)
        self.last_explanation: Explanation | None = None
        self.epochs_explained: list[int] = []
        self._guide_terms: dict[str, float] = {}
        self._explainer: Explainer | None = None
        self._batch: np.ndarray | None = None
        self._wanted: np.ndarray | None = None
        self._lungs: np.ndarray | None = None
        self._scaled_boxes: list[np.ndarray | None] | None = None
        self._writer: Any = None

    @property
    def method(self) -> str:
        """The explainer's registry name."""
        return self._method.name

    # ------------------------------------------------------------------ Keras hooks
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Build the explainer on the model being trained and prepare the films for it."""
        self._prepare()
        if self.tensorboard_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.tensorboard_dir))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Explain the films after every ``every``-th epoch; write the grid and the scalars."""
        self._guide_terms = {key: float(value) for key, value in (logs or {}).items()
                             if key.removeprefix("val_") in GUIDE_LOGS}
        scalars = self.explain_now(epoch) if (epoch + 1) % self.every == 0 else {}
        if logs is not None:
            if self._masks is not None:
                logs[LUNG_SHARE] = scalars.get(LUNG_SHARE, math.nan)
            if self._boxes is not None:
                logs[POINTING_GAME] = scalars.get(POINTING_GAME, math.nan)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Close the TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ------------------------------------------------------------------ the work
    def explain_now(self, epoch: int) -> dict[str, float]:
        """Explain the films with the model as it is now and write what was asked for.

        Called by :meth:`on_epoch_end`; call it yourself for an extra picture (before training,
        say, with ``epoch=-1``: ``epoch_000.png``).

        Args:
            epoch: The 0-based epoch that just ended (the picture is named ``epoch + 1``).

        Returns:
            The scalars logged, by ``logs`` key (empty without masks and boxes).
        """
        trained = self.model.classifier if isinstance(self.model, GuidedModel) else self.model
        if self._explainer is None or self._explainer.model is not trained:
            self._prepare()
        assert self._explainer is not None
        assert self._batch is not None
        batch = self._batch
        explanation = self._explainer.explain(batch, self._wanted, batch_size=len(batch))
        scalars = self._scalars(explanation.heatmaps)
        self.last_explanation = explanation
        self.epochs_explained.append(epoch + 1)
        if self.out_dir is None and self.tensorboard_dir is None:
            return scalars
        guide = self._guide_terms
        header = f"epoch {epoch + 1}  {self.method}" + "".join(
            f"  {key.removeprefix('expl_').replace('_', ' ')} {value:.2f}"
            for key, value in {**scalars, **guide}.items())
        grid = overlay_grid(batch, explanation.heatmaps, captions=_captions(explanation),
                            header=header, masks=self._lungs, boxes=self._scaled_boxes)
        if self.out_dir is not None:
            ok, encoded = cv2.imencode(".png", np.ascontiguousarray(grid[:, :, ::-1]))
            if ok:
                atomic_write_bytes(self.out_dir / f"epoch_{epoch + 1:03d}.png", encoded.tobytes())
        if self.tensorboard_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(str(self.tensorboard_dir))
            with self._writer.as_default():
                tf.summary.image("explanations", grid[None], step=epoch)
                for key, value in scalars.items():
                    tf.summary.scalar(f"explanation/{key.removeprefix('expl_')}", value,
                                      step=epoch)
                for key, value in guide.items():
                    tf.summary.scalar(f"guide/{key}", value, step=epoch)
            self._writer.flush()
        return scalars

    def _prepare(self) -> None:
        model = self.model
        if isinstance(model, GuidedModel):  # a guided fit trains the classifier inside it
            model = model.classifier
        if not isinstance(model, keras.Model):
            raise InvalidInputError(
                f"model: the callback needs a keras.Model, got {type(model).__name__} (pass it "
                "to model.fit or cx.training.fit)"
            )
        classifier = Classifier(model, self.class_names)
        self._explainer = self._method(classifier, layer=self.layer)
        batch = classifier.prepare(self._sources)
        self._batch = batch
        count, height, width = batch.shape[:3]
        self._wanted = (None if self.targets is None
                        else classifier.target_indices(self.targets, count))
        if self._masks is not None:
            self._lungs = np.concatenate([resize_masks(m[None], (height, width))
                                          for m in self._masks])
        if self._boxes is not None:
            self._scaled_boxes = [
                None if box is None else box * np.array(
                    [width / size[1], height / size[0]] * 2)
                for box, size in zip(self._boxes, self._sizes, strict=True)
            ]

    def _scalars(self, heatmaps: np.ndarray) -> dict[str, float]:
        scalars: dict[str, float] = {}
        if self._lungs is not None:
            shares = measure(heatmaps, self._lungs).lung_share
            with warnings.catch_warnings():  # all maps zero: NaN, not a warning
                warnings.simplefilter("ignore", RuntimeWarning)
                scalars[LUNG_SHARE] = float(np.nanmean(shares))
        if self._scaled_boxes is not None:
            chosen = [i for i, box in enumerate(self._scaled_boxes) if box is not None]
            scalars[POINTING_GAME] = math.nan if not chosen else pointing_game(
                heatmaps[chosen], [self._scaled_boxes[i] for i in chosen],
                tolerance=self.tolerance).hit_rate
        return scalars


# ------------------------------------------------------------------------------- arguments
def _require_tensorboard() -> None:
    if importlib.util.find_spec("tensorboard") is None:
        raise MissingDependencyError(
            "tensorboard_dir: writing TensorBoard summaries needs the tensorboard package; "
            "install it with pip install \"cxrexplain[tensorboard]\""
        )


def _folder(value: object, name: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidInputError(f"{name}: expected a folder path or None, got {describe(value)}")
    return Path(os.fspath(value))


def _load_films(images: Any) -> tuple[Any, list[tuple[int, int]]]:
    """The films as :meth:`Classifier.prepare` takes them, and each one's own (H, W).

    Each file is read here once, so a film that cannot be read fails now, not after the
    first epoch; it is read again (resized for the model) when training begins.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        if images.shape[0] == 0:
            raise InvalidInputError("images: the batch is empty; give at least one film")
        channels = 3 if images.shape[-1] == 3 else 1
        batch = load_images(images, channels=channels)
        return batch, [batch.shape[1:3]] * len(batch)
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray)):
        items: list[Any] = [images]
    elif isinstance(images, Iterable):
        items = list(images)
    else:
        raise InvalidInputError(
            f"images: expected paths, arrays or an (N, H, W, C) batch, got {describe(images)}"
        )
    if not items:
        raise InvalidInputError("images: the list is empty; give at least one film")
    sizes = []
    for i, item in enumerate(items):
        try:
            sizes.append(load_image(item).shape[:2])
        except (ImageLoadError, InvalidInputError) as err:
            raise type(err)(f"images[{i}]: {err}") from err
    return items, sizes


def _mask_list(masks: Any, count: int) -> list[np.ndarray]:
    """One bool ``(H, W)`` lung mask per film, read as :func:`cxrexplain.audit` reads them.

    Files are read at their stored type and every mask goes through the one mask rule of
    :mod:`cxrexplain._arrays`; sizes may differ from the films' (resized when training
    begins). An empty mask is an error, as in the audit: no lungs, no lung share.
    """
    read = load_masks(masks, count=count, name="masks")
    empty = [i for i, mask in enumerate(read) if not mask.any()]
    if empty:
        raise InvalidInputError(
            f"masks: {len(empty)} mask(s) are empty (no lung pixel), at positions "
            f"{', '.join(map(str, empty[:10]))}"
        )
    return read


def _captions(explanation: Explanation) -> list[str]:
    """``"<class explained> <probability>"`` per film."""
    names = explanation.class_names
    captions = []
    for target, score in zip(explanation.targets, explanation.scores, strict=True):
        name = names[int(target)] if int(target) < len(names) else str(int(target))
        captions.append(f"{name[:14]} {float(score):.2f}")
    return captions


def _box_list(boxes: Any, count: int) -> list[np.ndarray | None]:
    """One ``(M, 4)`` float64 array (or None) per film."""
    if isinstance(boxes, np.ndarray) and boxes.ndim == 2:
        entries: list[Any] = list(boxes)
    elif isinstance(boxes, (str, bytes)) or not isinstance(boxes, Iterable):
        raise InvalidInputError(
            f"boxes: expected (x, y, width, height) boxes, one entry per film, got "
            f"{describe(boxes)}"
        )
    else:
        entries = list(boxes)
    if len(entries) != count:
        raise InvalidInputError(
            f"boxes: expected one entry per film ({count}), got {len(entries)}"
        )
    result: list[np.ndarray | None] = []
    for i, entry in enumerate(entries):
        if entry is None:
            result.append(None)
            continue
        result.append(as_boxes(entry, f"boxes[{i}]"))
    if all(box is None for box in result):
        raise InvalidInputError("boxes: every entry is None; give a box for at least one film")
    return result
