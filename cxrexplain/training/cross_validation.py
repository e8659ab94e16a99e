"""``cross_validate``: stratified (optionally grouped) k-fold cross-validation, resumable.

The protocol of the DarkCovidNet study (Ozturk et al. 2020): the images are split into k
stratified folds (k = 5); each fold in turn is the test set of a model trained from scratch on
the other k - 1, and each metric is reported as its mean and spread over the folds. Here a
stratified part of the training folds (``validation_fraction``) is held out for early
stopping and learning-rate decisions, so the test fold never influences training. With
``groups`` (each film's patient) the folds and that validation part keep every patient whole
(:func:`cxrexplain.data.k_folds`), so no patient is trained on and tested on.

With ``results_dir`` each fold's result is written to ``results_dir/fold_<i>.json`` as soon
as it finishes (and its training checkpoints to ``fold_<i>.checkpoint/`` while it runs): a
rerun skips the finished folds and resumes an interrupted one at its last epoch. Each file
records the set-up (files, classes, k, seed, image size, epochs, tag); a rerun with another
set-up in the same folder is refused rather than mixed.

With ``lungs`` (a :class:`cxrexplain.lungs.LungSegmenter`) each fold's model is wrapped by
:func:`cxrexplain.models.with_lung_focus` before it trains (``lung_mode="inverse"`` shows it
only what lies outside the lungs: the shortcut-strength check); the segmenter's mode,
threshold and a digest of its weights join the recorded set-up.

With ``guide`` (a :class:`cxrexplain.training.Guide`) each fold trains explanation-guided
(:func:`cxrexplain.training.fit`'s ``guide=``): the training and validation films carry their
lung masks (segmented once per film by the guide's segmenter) and, with ``boxes``, the
radiologists' boxes for the box term; the test fold is scored as a plain classifier. The
guide's weights, swap, margin, seed and segmenter digest, and a digest of the boxes, join the
recorded set-up, so a rerun with another guide is refused rather than mixed.

Example:
    >>> import cxrexplain as cx
    >>> result = cx.training.cross_validate(
    ...     lambda setup: cx.models.build("cam_cnn", input_shape=setup.input_shape,
    ...                                   num_classes=setup.num_classes),
    ...     "../shared/data/cxr", k=5, image_size=128, epochs=30,
    ...     classes=["COVID", "NORMAL", "PNEUMONIA"], results_dir="cv/cam_cnn")
    ... # doctest: +SKIP
    >>> print(result.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrexplain._checks import check_int, describe
from cxrexplain._files import atomic_write_text
from cxrexplain.classifier import Classifier
from cxrexplain.data.augment import Augmentation
from cxrexplain.data.boxes import BoxTable, read_boxes
from cxrexplain.data.datasets import from_files
from cxrexplain.data.files import LabeledFiles
from cxrexplain.data.splits import (
    Groups,
    group_labels,
    k_folds,
    resolve_files,
    stratified_split,
)
from cxrexplain.errors import InvalidInputError
from cxrexplain.lungs.segmenter import LungSegmenter
from cxrexplain.training.checkpoint import load_state
from cxrexplain.training.cv_results import CrossValidationResult, FoldResult, FoldSetup
from cxrexplain.training.fit import fit
from cxrexplain.training.guide import Guide
from cxrexplain.training.preparation import apply_lung_focus, check_lung_focus, lung_focus_record
from cxrexplain.training.report import evaluate

__all__ = ["BuildFn", "cross_validate"]


BuildFn = Callable[[FoldSetup], keras.Model]
"""``build_fn(setup) -> keras.Model``: a fresh model for one fold."""


def cross_validate(
    build_fn: BuildFn,
    root: str | os.PathLike[str] | LabeledFiles,
    *,
    k: int = 5,
    image_size: int | tuple[int, int] = 224,
    channels: int = 1,
    classes: Sequence[str] | None = None,
    epochs: int = 30,
    batch_size: int = 32,
    seed: int = 0,
    folds: Sequence[int] | None = None,
    validation_fraction: float | None = 0.1,
    augment: bool | Augmentation = False,
    results_dir: str | os.PathLike[str] | None = None,
    tag: str = "",
    fit_options: Mapping[str, Any] | None = None,
    on_fold_end: Callable[[FoldResult], None] | None = None,
    verbose: int | str = 0,
    lungs: LungSegmenter | None = None,
    lung_mode: str = "mask",
    groups: Groups | None = None,
    guide: Guide | None = None,
    boxes: str | os.PathLike[str] | Mapping[Any, Any] | None = None,
) -> CrossValidationResult:
    """Stratified (and, with ``groups``, grouped) k-fold cross-validation of ``build_fn``'s models.

    Args:
        build_fn: ``build_fn(setup: FoldSetup) -> keras.Model``, called once per fold for a
            fresh model (compiled or not: :func:`~cxrexplain.training.fit` compiles an
            uncompiled one).
        root: A class-folder root, a Kaggle root (train + val pooled) or a
            :class:`~cxrexplain.data.LabeledFiles`.
        k: Number of folds.
        image_size: Image size, an int or ``(height, width)``.
        channels: 1 (gray) or 3.
        classes: Class folder names in label order (default: all, sorted).
        epochs: Epochs per fold (early stopping may end sooner).
        batch_size: Batch size.
        seed: Seed of the folds, the validation split, shuffling and initialisation
            (fold i uses ``seed + i`` for training).
        folds: Run only these fold indices (e.g. ``[0]`` for a smoke test); default all.
        validation_fraction: Share of each training part held out for early stopping; None
            trains on all of it and watches the training loss.
        augment: Augment the training images (see :class:`~cxrexplain.data.Augmentation`).
        results_dir: Where each fold's JSON result (and running checkpoint) goes; None keeps
            nothing on disk and cannot resume.
        tag: A label stored in the set-up (different tags never share results).
        fit_options: More keyword arguments for :func:`~cxrexplain.training.fit`
            (``class_weight``, ``early_stopping_patience``, ``mixed_precision``, ...).
        on_fold_end: Called with each :class:`FoldResult` as it finishes (or is loaded).
        verbose: Keras' verbosity for ``fit``.
        lungs: A lung segmenter (:class:`cxrexplain.lungs.LungSegmenter`): each fold's model
            is wrapped by :func:`cxrexplain.models.with_lung_focus` before training. None
            (the default) trains ``build_fn``'s model as it is.
        lung_mode: With ``lungs``: ``"mask"`` (only the lungs visible), ``"inverse"``
            (only what lies outside them) or ``"crop"`` (the lungs' box stretched to the
            whole frame); see :data:`cxrexplain.lungs.focus.MODES`.
        groups: Each file's group, e.g. its patient (a mapping from path to group, or a
            callable ``path -> group``; see :func:`cxrexplain.data.k_folds`): whole groups
            per fold and per validation part. The grouping joins the recorded set-up.
        guide: Train every fold explanation-guided (:class:`~cxrexplain.training.Guide`,
            e.g. :meth:`~cxrexplain.training.Guide.recommended`); not with ``lungs`` (a lung
            focus) nor with ``guide``/``guidance`` in ``fit_options``.
        boxes: Radiologists' boxes for the guide's box term: a box CSV or a mapping path ->
            boxes (:func:`~cxrexplain.data.read_boxes`); needed when the guide has one.

    Returns:
        A :class:`CrossValidationResult`.

    Raises:
        InvalidInputError: A bad argument, or ``results_dir`` holds results of another set-up.

    Example:
        >>> import cxrexplain as cx
        >>> def build(setup):
        ...     return cx.models.build("cam_cnn", input_shape=setup.input_shape,
        ...                            num_classes=setup.num_classes, filters=(4, 8))
        >>> result = cross_validate(build, "cxr", k=3, image_size=32, epochs=1,
        ...                         folds=[0], validation_fraction=None)  # a smoke test
        >>> result.k, len(result.folds), result.folds[0].report.n
        (3, 1, 5)
        >>> mean, sd = result.summary()["accuracy"]
        >>> 0.0 <= mean <= 1.0, sd  # one fold: no spread
        (True, nan)
    """
    lung_mode = check_lung_focus(lungs, lung_mode)
    guide, box_table = _check_guide(guide, boxes, lungs, fit_options)
    files = root if isinstance(root, LabeledFiles) else resolve_files(root, classes=classes)
    splits = k_folds(files, k, seed, groups=groups)
    wanted = list(range(k)) if folds is None else _check_folds(folds, k)
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2:
        raise InvalidInputError(f"image_size: expected an int or (height, width), got "
                                f"{image_size!r}")
    base = None if isinstance(root, LabeledFiles) else Path(os.fspath(root))
    setup_record = {
        "k": k, "seed": seed, "image_size": list(size), "channels": channels,
        "epochs": epochs, "batch_size": batch_size, "validation_fraction": validation_fraction,
        "augment": repr(augment), "class_names": list(files.class_names), "tag": tag,
        "files": _fingerprint(files, base), "lungs": lung_focus_record(lungs, lung_mode),
        "groups": _group_fingerprint(files, groups),
        "guide": _guide_record(guide, box_table),
    }
    directory = None if results_dir is None else Path(os.fspath(results_dir))
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    results = []
    for index in wanted:
        result = _load_fold(directory, index, setup_record)
        if result is None:
            result = _run_fold(
                build_fn, splits[index], k=k, size=(int(size[0]), int(size[1])),
                channels=channels, epochs=epochs, batch_size=batch_size, seed=seed,
                validation_fraction=validation_fraction, augment=augment,
                directory=directory, fit_options=dict(fit_options or {}), verbose=verbose,
                lungs=lungs, lung_mode=lung_mode, groups=groups, guide=guide,
                boxes=box_table,
            )
            if directory is not None:
                _write_fold(directory, result, setup_record)
        results.append(result)
        if on_fold_end is not None:
            on_fold_end(result)
    return CrossValidationResult(tuple(results), files.class_names, k)


def _run_fold(
    build_fn: BuildFn, split: Any, *, k: int, size: tuple[int, int], channels: int,
    epochs: int, batch_size: int, seed: int, validation_fraction: float | None,
    augment: bool | Augmentation, directory: Path | None, fit_options: dict[str, Any],
    verbose: int | str, lungs: LungSegmenter | None, lung_mode: str, groups: Groups | None,
    guide: Guide | None = None, boxes: BoxTable | None = None,
) -> FoldResult:
    index = int(split.index)
    train_files, val_files = split.train, None
    if validation_fraction is not None:
        train_files, val_files = stratified_split(split.train, validation_fraction,
                                                  seed=seed + index, groups=groups)
    def dataset(files: LabeledFiles, *, training: bool = False, guided: bool = False) -> Any:
        carried: dict[str, Any] = {}
        if guided and guide is not None:
            carried = {"lungs": guide.segmenter, "boxes": boxes}
        return from_files(files, image_size=size, channels=channels, batch_size=batch_size,
                          seed=seed + index, shuffle=training,
                          augment=augment if training else False, **carried)

    train = dataset(train_files, training=True, guided=True)
    val = None if val_files is None else dataset(val_files, guided=True)
    test = dataset(split.test)
    setup = FoldSetup(index, k, (size[0], size[1], channels), len(train_files.class_names),
                      train_files.class_names, len(train_files),
                      math.ceil(len(train_files) / batch_size), epochs)
    keras.utils.set_random_seed(seed + index)
    model = build_fn(setup)
    if not isinstance(model, keras.Model):
        raise InvalidInputError(
            f"build_fn: expected a keras.Model, got {type(model).__name__}"
        )
    model = apply_lung_focus(model, lungs, lung_mode)
    checkpoint = None if directory is None else directory / f"fold_{index}.checkpoint"
    state = None if checkpoint is None else load_state(checkpoint)
    done_before = 0 if state is None else state.epoch
    options = {"verbose": verbose, **fit_options}
    if guide is not None:
        options["guide"] = guide
    started = time.perf_counter()
    history = fit(model, train, val, epochs=epochs, checkpoint_dir=checkpoint,
                  resume=checkpoint is not None, **options)
    seconds = time.perf_counter() - started
    trained_now = len(history.epoch) - done_before
    speed = len(train_files) * trained_now / seconds if trained_now > 0 and seconds > 0 \
        else float("nan")
    report = evaluate(Classifier(model, class_names=list(train_files.class_names)), test)
    return FoldResult(index, report, seconds, len(history.epoch), len(train_files), speed)


def _check_guide(guide: Guide | None, boxes: Any, lungs: LungSegmenter | None,
                 fit_options: Mapping[str, Any] | None) -> tuple[Guide | None, BoxTable | None]:
    """The guide and its boxes, checked; the boxes read once."""
    if guide is None:
        if boxes is not None:
            raise InvalidInputError("boxes: the boxes serve a guide's box term; give guide= "
                                    "(cx.training.Guide(..., boxes=W))")
        return None, None
    if not isinstance(guide, Guide):
        raise InvalidInputError(f"guide: expected a cx.training.Guide, got {describe(guide)}")
    if lungs is not None:
        raise InvalidInputError("guide: a guided model trains on the whole film; give either "
                                "guide= or lungs= (a lung focus), not both")
    if fit_options and ({"guide", "guidance"} & set(fit_options)):
        raise InvalidInputError("guide: given twice (guide= and fit_options); give it once")
    if guide.boxes and boxes is None:
        raise InvalidInputError("guide: its box term needs the radiologists' boxes; give "
                                "boxes= (a box CSV or a mapping path -> boxes)")
    return guide, None if boxes is None else read_boxes(boxes)


def _guide_record(guide: Guide | None, boxes: BoxTable | None) -> dict[str, Any] | None:
    """What identifies a guide in a saved set-up (None without one, as before guides)."""
    if guide is None:
        return None
    digest = hashlib.sha1()
    for key, value in sorted((boxes or {}).items()):
        digest.update(f"{os.path.basename(str(key))}\t{np.asarray(value).tolist()}\n".encode())
    return {"lungs": guide.lungs, "boxes": guide.boxes, "swap": guide.swap,
            "consistency": guide.consistency, "margin": guide.margin, "seed": guide.seed,
            "segmenter": lung_focus_record(guide.segmenter),
            "box_table": None if boxes is None else digest.hexdigest()}


def _fingerprint(files: LabeledFiles, base: Path | None) -> str:
    digest = hashlib.sha1()
    for path, label in zip(files.paths, files.labels, strict=True):
        name = os.path.relpath(path, base) if base is not None else os.path.basename(path)
        digest.update(f"{name.replace(os.sep, '/')}\t{label}\n".encode())
    return digest.hexdigest()


def _group_fingerprint(files: LabeledFiles, groups: Groups | None) -> str | None:
    """None without groups (as recorded before ``groups`` existed), else a digest of them."""
    if groups is None:
        return None
    digest = hashlib.sha1()
    for path, group in zip(files.paths, group_labels(files, groups), strict=True):
        digest.update(f"{os.path.basename(path)}\t{group!r}\n".encode())
    return digest.hexdigest()


def _load_fold(directory: Path | None, index: int,
               setup: dict[str, Any]) -> FoldResult | None:
    if directory is None:
        return None
    path = directory / f"fold_{index}.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise InvalidInputError(f"results_dir: '{path}' is not valid JSON ({err})") from err
    saved = data.get("setup", {})
    differing = sorted(key for key in setup if saved.get(key) != setup[key])
    if differing:
        raise InvalidInputError(
            f"results_dir: '{path}' holds a result of another set-up (differs in "
            f"{', '.join(differing)}); use another results_dir or delete it"
        )
    return FoldResult.from_dict(data["result"])


def _write_fold(directory: Path, result: FoldResult, setup: dict[str, Any]) -> None:
    path = directory / f"fold_{result.fold}.json"
    atomic_write_text(path, json.dumps({"setup": setup, "result": result.to_dict()}, indent=1))
    shutil.rmtree(directory / f"fold_{result.fold}.checkpoint", ignore_errors=True)


def _check_folds(folds: Sequence[int], k: int) -> list[int]:
    chosen = list(folds)
    if not chosen:
        raise InvalidInputError(f"folds: expected fold indices in 0..{k - 1}, got {folds!r}")
    return sorted({check_int(f, "folds", minimum=0, maximum=k - 1) for f in chosen})
