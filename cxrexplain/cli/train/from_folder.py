"""``cxrexplain train``: build, train, evaluate and save a reference model from a folder.

With ``explain_every=N`` a :class:`cxrexplain.training.ExplanationCallback` explains a few
validation films (Grad-CAM, each film's predicted class) after every N-th epoch and writes
``<out>.explanations/epoch_003.png``, ... beside the model (``m.explanations/`` for
``m.keras``), with TensorBoard logs in ``<out>.explanations/tensorboard/`` when TensorBoard is
installed.

Example:
    >>> from cxrexplain.cli.train.from_folder import train_from_folder
    >>> print(train_from_folder("chest_xray", model_name="cam_cnn", out="m.keras",
    ...                         image_size=128, epochs=10))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cxrexplain._checks import check_int, check_number
from cxrexplain.classifier import Classifier
from cxrexplain.data import detect_layout, image_folder
from cxrexplain.errors import CxrExplainError, InvalidInputError, ModelLoadError
from cxrexplain.lungs import LungSegmenter
from cxrexplain.models import build
from cxrexplain.models.lung_focus import SegmenterLike
from cxrexplain.training import ExplanationCallback, evaluate, fit
from cxrexplain.training.guide import GUIDE_TERMS, Guide
from cxrexplain.training.preparation import apply_lung_focus, check_lung_focus

__all__ = ["train_from_folder"]


def train_from_folder(
    data_dir: str | os.PathLike[str],
    *,
    model_name: str = "cam_cnn",
    out: str | os.PathLike[str],
    image_size: int = 224,
    epochs: int = 20,
    batch_size: int = 32,
    classes: Sequence[str] | None = None,
    validation_split: float | None = 0.2,
    seed: int = 0,
    channels: int = 1,
    lungs: str | os.PathLike[str] | SegmenterLike | None = None,
    lung_mode: str | None = None,
    explain_every: int | None = None,
    explain_images: int = 8,
    guide: Sequence[str] = (),
    guide_weight: float = 1.0,
    swap: float = 0.0,
    boxes: str | os.PathLike[str] | None = None,
    consistency: float = 0.0,
) -> str:
    """Train a reference model on a class-folder or Kaggle ``chest_xray`` folder and save it.

    The training part is augmented (no flip); a stratified validation part watches training
    (early stopping, learning-rate reduction; a checkpoint beside ``out`` lets an interrupted
    run resume). The model is then evaluated on the Kaggle ``test/`` part when there is one,
    else on the validation part, and saved with its class names as one ``.keras`` file.

    With ``lungs`` alone the model trains under the recommended explanation guide
    (:meth:`cxrexplain.training.Guide.recommended`, with the box term when ``boxes`` is
    given) and the saved file is the plain classifier. With ``lungs`` and a ``lung_mode``, the
    built model is first wrapped by
    :func:`cxrexplain.models.with_lung_focus` (the segmenter frozen inside it): it trains on
    the lungs alone (``lung_mode="mask"``), on what lies outside them (``"inverse"``, the
    shortcut-strength check) or on the lungs' box at a fixed position and size (``"crop"``),
    and the saved file is that focused model.
    With ``guide`` (``("lungs",)``, ``("boxes",)`` or both) or ``swap``, training is
    explanation-guided (:class:`cxrexplain.training.Guide`): ``lungs`` is then the guide's
    segmenter (each film segmented once, the masks moving with the augmentation) and the
    saved model is the plain classifier; a ``lung_mode`` given too adds the focus as well.

    Args:
        data_dir: The folder.
        model_name: A builder from :func:`cxrexplain.models.available`.
        out: Where to save the ``.keras`` file.
        image_size: Square input size.
        epochs: Maximum epochs.
        batch_size: Images per batch.
        classes: Class folders to use, in label order (default: all, sorted).
        validation_split: Validation fraction.
        seed: Seed of the split and of training.
        channels: 1 (gray) or 3.
        lungs: A lung segmenter's ``.keras`` file (``cxrexplain lungs train``) or a
            :class:`cxrexplain.lungs.LungSegmenter`; None trains without a lung focus.
        lung_mode: With ``lungs``: ``"mask"`` (only the lungs visible), ``"inverse"``
            (only what lies outside them) or ``"crop"`` (the lungs' box stretched to the
            whole frame); see :data:`cxrexplain.lungs.focus.MODES`. None: no focus (the
            recommended guide, or the guide asked for).
        explain_every: Explain ``explain_images`` validation films with Grad-CAM after every
            this many epochs (see the module docs for where the pictures go); None: never.
        explain_images: How many validation films to explain (taken from each class in
            turn).
        guide: The guide's loss terms (``"lungs"``, ``"boxes"``); empty: none.
        guide_weight: The weight of each term.
        swap: The background swap's probability (0: none).
        boxes: A box CSV (:func:`cxrexplain.data.read_boxes`) for the ``"boxes"`` term.
        consistency: The swap consistency's weight (:class:`~cxrexplain.training.Guide`).

    Returns:
        The evaluation report as text.

    Raises:
        InvalidInputError: Bad folder, model name or arguments.
        ModelLoadError: ``lungs`` names a missing file or one that is not a lung segmenter
            (the message starts with ``--lungs``).

    Example:
        >>> train_from_folder("data", out="m.keras", epochs=1)  # doctest: +SKIP
    """
    target = Path(os.fspath(out))
    if target.suffix != ".keras":
        raise InvalidInputError(f"--out: expected a file name ending in .keras, got '{target}'")
    names_of_focus = ("--lungs", "--lung-mode")
    segmenter = _load_lungs(lungs)
    guided = bool(guide) or bool(swap) or bool(consistency)
    the_guide = (_guide(segmenter, guide, guide_weight, swap, boxes, consistency) if guided
                 else None)
    if segmenter is not None and lung_mode is None and not guided:  # the default recipe
        the_guide = Guide.recommended(segmenter, boxes=boxes is not None)
    focused = segmenter is not None and lung_mode is not None
    lung_mode = check_lung_focus(segmenter if lung_mode is not None else None,
                                 lung_mode or "mask", names=names_of_focus)
    if explain_every is not None:
        check_int(explain_every, "--explain-every", minimum=1)
    check_int(explain_images, "--explain-images", minimum=1)
    layout = detect_layout(data_dir)
    parts = image_folder(data_dir, image_size=image_size, channels=channels, classes=classes,
                         batch_size=batch_size, validation_split=validation_split,
                         subset="both", seed=seed, augment=True,
                         boxes=boxes if the_guide is not None and the_guide.boxes else None,
                         lungs=segmenter if the_guide is not None and
                         (the_guide.lungs or the_guide.swap) else None)
    if not isinstance(parts, tuple):  # pragma: no cover - subset="both" gives a pair
        raise InvalidInputError("validation_split: a validation part is needed")
    train, val = parts
    names = list(train.class_names)
    model = build(model_name, input_shape=(image_size, image_size, channels),
                  num_classes=len(names))
    model = apply_lung_focus(model, segmenter if focused else None, lung_mode,
                             names=names_of_focus)
    checkpoint = target.with_name(f"{target.stem}.checkpoint")
    focus = "" if not focused else f" with lung focus ({lung_mode})"
    if the_guide is not None:
        focus += f", guided ({_describe(the_guide)})"
    print(f"training {model_name}{focus} on {len(names)} classes {names} from '{data_dir}' "
          f"({layout} layout); checkpoint in '{checkpoint}'", flush=True)
    callbacks = [] if explain_every is None else [
        _explanation_callback(val, target, names, explain_every, explain_images)]
    fit(model, train, val, epochs=epochs, checkpoint_dir=checkpoint, resume=True, seed=seed,
        callbacks=callbacks, guide=the_guide)
    classifier = Classifier(model, names)
    test = val
    label = "validation part"
    if layout == "kaggle" and (Path(os.fspath(data_dir)) / "test").is_dir():
        test = image_folder(data_dir, image_size=image_size, channels=channels,
                            classes=names, batch_size=batch_size, subset="test")
        label = "test/"
    classifier.save(target)
    report = evaluate(classifier, test)
    return f"saved {target}\nevaluation on the {label}:\n{report.to_text()}"


def _guide(segmenter: LungSegmenter | None, terms: Sequence[str], weight: float, swap: float,
           boxes: str | os.PathLike[str] | None, consistency: float = 0.0) -> Guide:
    """The :class:`Guide` of ``--guide``, ``--guide-weight``, ``--swap`` and ``--boxes``."""
    unknown = [t for t in terms if t not in GUIDE_TERMS]
    if unknown:
        raise InvalidInputError(f"--guide: unknown term(s) {unknown}; expected "
                                f"{', '.join(GUIDE_TERMS)}")
    if "boxes" in terms and boxes is None:
        raise InvalidInputError("--guide boxes: needs --boxes (a CSV of the radiologists' "
                                "boxes: image,x,y,width,height)")
    if ("lungs" in terms or swap) and segmenter is None:
        raise InvalidInputError("--guide lungs / --swap: need --lungs (a lung segmenter's "
                                ".keras file, `cxrexplain lungs train`)")
    check_number(weight, "--guide-weight", low=0.0, low_open=True)
    check_number(swap, "--swap", low=0.0, high=1.0)
    check_number(consistency, "--swap-consistency", low=0.0)
    if consistency and not swap:
        raise InvalidInputError("--swap-consistency: needs --swap (the probability that a "
                                "film's twin is swapped)")
    return Guide(segmenter, lungs=weight if "lungs" in terms else 0.0,
                 boxes=weight if "boxes" in terms else 0.0, swap=swap, seed=0,
                 consistency=consistency)


def _describe(guide: Guide) -> str:
    parts = [f"{name} x{getattr(guide, name):g}" for name in guide.terms]
    if guide.swap:
        parts.append(f"swap p={guide.swap:g}")
    if guide.consistency:
        parts.append(f"swap consistency x{guide.consistency:g}")
    return ", ".join(parts)


def _explanation_callback(val: object, target: Path, names: list[str], every: int,
                          count: int) -> ExplanationCallback:
    """The callback of ``--explain-every``: ``count`` validation films, each class in turn."""
    paths = list(getattr(val, "file_paths", []))
    labels = np.asarray(getattr(val, "labels", np.zeros(len(paths), np.int32)))
    if not paths:  # pragma: no cover - image_folder's parts carry their files
        raise InvalidInputError("--explain-every: the validation part has no files to explain")
    order = np.lexsort((labels, _rank_within_class(labels)))  # each class in turn
    films = [paths[i] for i in order[:count]]
    folder = target.with_name(f"{target.stem}.explanations")
    board = folder / "tensorboard" if importlib.util.find_spec("tensorboard") else None
    where = f"'{folder}'" + ("" if board is not None else
                             " (no TensorBoard logs: pip install \"cxrexplain[tensorboard]\")")
    print(f"explaining {len(films)} validation films after every {every} epoch(s) in {where}",
          flush=True)
    return ExplanationCallback(films, every=every, out_dir=folder, tensorboard_dir=board,
                               class_names=names)


def _rank_within_class(labels: np.ndarray) -> np.ndarray:
    """Each film's position among the films of its class (0, 1, ...), in file order."""
    rank = np.zeros(len(labels), np.int64)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        rank[where] = np.arange(len(where))
    return rank


def _load_lungs(lungs: str | os.PathLike[str] | SegmenterLike | None) -> SegmenterLike | None:
    """The segmenter ``lungs`` names: loaded from its file, or as given."""
    if lungs is None or isinstance(lungs, SegmenterLike):
        return lungs
    if not isinstance(lungs, (str, os.PathLike)):
        raise InvalidInputError(
            f"--lungs: expected a lung segmenter's .keras file or a cx.lungs.LungSegmenter, "
            f"got {type(lungs).__name__}"
        )
    path = Path(os.fspath(lungs))
    if not path.is_file():
        raise ModelLoadError(f"--lungs: no such file '{path}' (train a lung segmenter with "
                             "`cxrexplain lungs train`)")
    try:
        return LungSegmenter.load(path)
    except CxrExplainError as err:
        raise ModelLoadError(f"--lungs: {err}") from err
