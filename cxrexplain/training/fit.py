"""``fit``: train a Keras model the careful way, resumably, on CPU, GPU or several devices.

One call adds what every chest X-ray training run needs:

* **class weights**: ``"balanced"`` (the default) weighs class c by ``n / (K * n_c)``, so a
  rare class (99 COVID films against 399 normal ones) counts as much as a common one;
* **early stopping** on the validation loss (the training loss without validation data),
  restoring the best epoch's weights at the end;
* **learning-rate reduction** when that loss plateaus (skipped when the optimizer follows a
  schedule, which cannot be changed from outside);
* a **CSV log** of every epoch, and a **checkpoint** after every epoch from which
  ``resume=True`` continues an interrupted run exactly (weights, optimizer state, epoch
  counter, early-stopping and plateau counters, history; see
  :mod:`cxrexplain.training.checkpoint`);
* **mixed precision** (float16 compute, float32 variables and output layer, loss scaling) and
  **XLA**: on by default on a GPU (``"auto"``), off on a CPU; ``mixed_precision=True`` forces
  it (it works on a CPU too, slowly);
* **data parallelism**: with ``strategy=tf.distribute.MirroredStrategy()`` (or any
  ``tf.distribute.Strategy``) the same call trains on every device.

A dtype policy or a strategy must be in place when a model's layers and variables are created.
When the model was built otherwise, ``fit`` trains a copy built under them
(``keras.models.clone_model`` inside the policy/strategy scope, the same weights; the global
dtype policy is restored) and copies the trained weights back into ``model`` at the end (also
when interrupted). The copy gets the model's compile settings (or our defaults) with a fresh
optimizer: the optimizer state of such a run lives in the checkpoint, not in
``model.optimizer``. An uncompiled model is compiled with Adam (1e-3), the cross-entropy that
fits its head, and accuracy.

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2, filters=(4, 8))
    >>> history = cx.training.fit(model, train, val, epochs=2, verbose=0,
    ...                           checkpoint_dir="runs/cam_cnn", resume=True)
    >>> history = cx.training.fit(model, train, val, epochs=3, verbose=0,  # one epoch more
    ...                           checkpoint_dir="runs/cam_cnn", resume=True)
    >>> history.epoch, len(history.history["val_loss"])
    ([0, 1, 2], 3)
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import keras
import tensorflow as tf

from cxrexplain._checks import check_int, check_number
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.models.losses import head_of
from cxrexplain.training._multi_worker import multi_worker_fixes
from cxrexplain.training.checkpoint import (
    FINAL_WEIGHTS,
    ResumableCheckpoint,
    TrainingState,
    clear_checkpoint,
    load_state,
    restore_optimizer,
)
from cxrexplain.training.guide import Guide, GuidedModel
from cxrexplain.training.predictions import check_class_count
from cxrexplain.training.preparation import (
    as_dataset,
    films_only,
    has_gpu,
    has_schedule,
    resolve_class_weight,
    working_model,
)

__all__ = ["fit"]

Auto = Literal["auto"]


def fit(
    model: keras.Model,
    train: Any,
    val: Any = None,
    *,
    epochs: int,
    class_weight: Literal["balanced"] | Mapping[int, float] | None = "balanced",
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    early_stopping_patience: int | None = 10,
    reduce_lr_patience: int | None = 4,
    reduce_lr_factor: float = 0.2,
    min_learning_rate: float = 1e-6,
    monitor: str | None = None,
    csv_log: str | os.PathLike[str] | None = None,
    mixed_precision: bool | Auto = "auto",
    jit_compile: bool | Auto = "auto",
    strategy: tf.distribute.Strategy | None = None,
    seed: int | None = None,
    verbose: int | str = "auto",
    guide: Guide | None = None,
    guidance: Guide | None = None,
) -> keras.callbacks.History:
    """Train ``model`` on ``train`` (validating on ``val``) with the callbacks it needs.

    Args:
        model: A Keras model (compiled or not; see the module docs).
        train: A ``tf.data.Dataset`` of ``(images, labels)`` batches or an
            ``(images, labels)`` tuple of arrays (shuffled every epoch, batched by 32).
        val: Validation data of the same kinds, or None.
        epochs: The total number of epochs (a resumed run continues up to it).
        class_weight: ``"balanced"``, a dict ``class -> weight``, or None.
        callbacks: More Keras callbacks, run before ours.
        checkpoint_dir: Where to write the per-epoch checkpoint and ``log.csv``; None: no
            checkpoint.
        resume: Continue from the checkpoint in ``checkpoint_dir`` when there is one (a
            finished run returns at once with its final weights; a run stopped by early
            stopping stays stopped). With ``resume=False`` an old checkpoint is replaced.
        early_stopping_patience: Epochs without improvement before stopping; None: never
            stop early (the best epoch's weights are still restored at the end).
        reduce_lr_patience: Epochs without improvement before the learning rate is
            multiplied by ``reduce_lr_factor``; None: never.
        reduce_lr_factor: The reduction factor, in (0, 1).
        min_learning_rate: The lowest learning rate the reduction goes to.
        monitor: The logged value to watch (default ``"val_loss"``, or ``"loss"`` without
            validation data).
        csv_log: Where to write the CSV log (default ``checkpoint_dir/log.csv``).
        mixed_precision: ``"auto"`` (on with a GPU), True or False.
        jit_compile: ``"auto"`` (XLA with a GPU; otherwise the model's own setting), True or
            False.
        strategy: A ``tf.distribute.Strategy`` to train with (data parallel).
        seed: Seed Python, NumPy and TensorFlow (``keras.utils.set_random_seed``) first.
        verbose: Keras' verbosity (0, 1, 2 or ``"auto"``).
        guide: Explanation-guided training (:class:`~cxrexplain.training.Guide`): a loss on
            the model's class activation map outside the lungs and/or the radiologists'
            boxes, and a background swap; the history then logs ``lung_outside`` /
            ``box_outside``. None (the default): plain training. The guide lives only in
            training: ``model`` stays the plain classifier.
        guidance: The same as ``guide`` (DESIGN.md's name, e.g. from
            :func:`~cxrexplain.training.Guidance`); give one of the two.

    Returns:
        The Keras ``History``; after a resumed run its ``history`` and ``epoch`` cover every
        epoch since the start.

    Raises:
        InvalidInputError: A bad argument, ``resume=True`` without ``checkpoint_dir``, a
            checkpoint that does not fit the model, or ``train``/``val`` data whose number of
            classes differs from the model's outputs (the message names both counts and the
            data set's class names; a one-unit sigmoid model has two classes).

    Example:
        >>> import cxrexplain as cx
        >>> model = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2,
        ...                         filters=(4, 8))
        >>> history = fit(model, train, val, epochs=2, verbose=0)
        >>> sorted(history.history), len(history.history["loss"])
        (['accuracy', 'learning_rate', 'loss', 'val_accuracy', 'val_loss'], 2)
        >>> type(model.optimizer).__name__  # an uncompiled model gets Adam
        'Adam'
    """
    if not isinstance(model, keras.Model):
        raise InvalidInputError(f"model: expected a keras.Model, got {type(model).__name__}")
    check_int(epochs, "epochs", minimum=1)
    for name, value in (("early_stopping_patience", early_stopping_patience),
                        ("reduce_lr_patience", reduce_lr_patience)):
        if value is not None:
            check_int(value, name, minimum=0)
    check_number(reduce_lr_factor, "reduce_lr_factor", low=0.0, high=1.0, low_open=True,
                 high_open=True)
    if resume and checkpoint_dir is None:
        raise InvalidInputError("resume: needs checkpoint_dir= (where the run was saved)")
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise InvalidInputError(
            f"strategy: expected a tf.distribute.Strategy, got {type(strategy).__name__}"
        )
    _check_classes(model, train, val)
    if seed is not None:
        check_int(seed, "seed", minimum=0)
        keras.utils.set_random_seed(seed)
    gpu = has_gpu()
    use_mixed = _flag(mixed_precision, "mixed_precision", gpu)
    use_jit = _flag(jit_compile, "jit_compile", gpu)
    if guidance is not None:
        if guide is not None:
            raise InvalidInputError("guidance: the same as guide=; give one of the two")
        guide = guidance
    if guide is not None and not isinstance(guide, Guide):
        raise InvalidInputError(f"guide: expected a cx.training.Guide or None, got "
                                f"{type(guide).__name__}")
    train_data = as_dataset(train, "train", shuffle_seed=seed or 0)
    val_data = None if val is None else as_dataset(val, "val")
    if guide is None:  # boxes carried for a guide are not an input of the plain model
        train_data, val_data = films_only(train_data), films_only(val_data)

    working = working_model(model, mixed=use_mixed, strategy=strategy)
    if jit_compile != "auto" or gpu:
        working.jit_compile = use_jit
    weights = resolve_class_weight(class_weight, train_data, working)
    trained = working if guide is None else guided_copy(working, guide, strategy)

    watched = monitor or ("val_loss" if val_data is not None else "loss")
    # patience None: never stop, but still restore the best epoch's weights at the end
    patience = epochs + 1 if early_stopping_patience is None else early_stopping_patience
    early = keras.callbacks.EarlyStopping(monitor=watched, patience=patience,
                                          restore_best_weights=True,
                                          verbose=0 if verbose in (0, "0") else 1)
    plateau = None
    if reduce_lr_patience is not None and not has_schedule(trained):
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor=watched, factor=float(reduce_lr_factor), patience=reduce_lr_patience,
            min_lr=float(min_learning_rate))

    state: TrainingState | None = None
    directory = None if checkpoint_dir is None else Path(os.fspath(checkpoint_dir))
    if directory is not None:
        if resume:
            state = load_state(directory)
        else:
            clear_checkpoint(directory)
    log_path = Path(os.fspath(csv_log)) if csv_log is not None else (
        None if directory is None else directory / "log.csv")

    if state is not None and state.finished and (state.stopped_early or state.epoch >= epochs):
        assert directory is not None  # a state is only read from a checkpoint folder
        return _finished(model, working, trained, directory, state, strategy)

    extra = list(callbacks or [])
    ours: list[keras.callbacks.Callback] = [early] + ([plateau] if plateau is not None else [])
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if state is not None:
            _truncate_log(log_path, state.epoch)
        ours.append(keras.callbacks.CSVLogger(str(log_path), append=state is not None))
    checkpoint = None
    if directory is not None:
        if state is not None:
            state.finished = False
            _load_snapshot(trained, directory, state, strategy)
        checkpoint = ResumableCheckpoint(directory, state=state, early_stopping=early,
                                         reduce_lr=plateau)
        ours.append(checkpoint)
    initial_epoch = 0 if state is None else min(state.epoch, epochs)
    try:
        with multi_worker_fixes(strategy):
            history = trained.fit(
                train_data, validation_data=val_data, epochs=epochs,
                initial_epoch=initial_epoch, class_weight=weights,
                callbacks=[*extra, *ours], verbose=verbose, shuffle=False,
            )
    finally:
        if working is not model:
            model.set_weights(working.get_weights())
    if checkpoint is not None:
        history.history = {k: list(v) for k, v in checkpoint.state.history.items()}
        history.epoch = list(range(checkpoint.state.epoch))
    return history


# ------------------------------------------------------------------------------- helpers
def _check_classes(model: keras.Model, train: Any, val: Any) -> None:
    """Refuse data of another number of classes than the model's, before any training.

    A model whose output cannot be read yet (a subclassed model not built) is not checked
    here; Keras reports a mismatch on the first batch.
    """
    try:
        units, activation = head_of(model)
    except ModelStructureError:
        return
    classes = 2 if units == 1 else units
    multilabel = activation == "sigmoid" and units > 1
    outputs = f"one {activation} output" if units == 1 else f"{units} {activation} outputs"
    described = f"the model '{model.name}' ({outputs})"
    for name, data in (("train", train), ("val", val)):
        if data is not None:
            check_class_count(data, name, classes, model=described, multilabel=multilabel)


def guided_copy(working: keras.Model, guide: Guide,
                strategy: tf.distribute.Strategy | None) -> GuidedModel:
    """A :class:`GuidedModel` around ``working``, compiled with its optimizer, loss and
    metrics (the same objects: the optimizer's state is the run's)."""
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        trainer = GuidedModel(working, guide)
        config = getattr(getattr(working, "_compile_config", None), "config", None) or {}
        trainer.compile(optimizer=working.optimizer, loss=working.loss,
                        metrics=config.get("metrics", ["accuracy"]),
                        jit_compile=working.jit_compile)
    return trainer


def _flag(value: bool | str, name: str, gpu: bool) -> bool:
    if value == "auto":
        return gpu
    if isinstance(value, bool):
        return value
    raise InvalidInputError(f"{name}: expected 'auto', True or False, got {value!r}")


def _load_snapshot(model: keras.Model, directory: Path, state: TrainingState,
                   strategy: tf.distribute.Strategy | None) -> None:
    if state.snapshot is None:
        return
    folder = directory / state.snapshot
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        if not model.optimizer.built:  # so load_weights finds the optimizer it saved
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(folder / "model.weights.h5")
        except (ValueError, KeyError, OSError) as err:
            raise InvalidInputError(
                f"checkpoint_dir: the weights in '{folder}' do not fit {model.name} ({err}); "
                "resume with the same model, or pass resume=False"
            ) from err
        restore_optimizer(model, folder / "optimizer.npz")


def _finished(
    model: keras.Model, working: keras.Model, trained: keras.Model, directory: Path,
    state: TrainingState, strategy: tf.distribute.Strategy | None,
) -> keras.callbacks.History:
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        if not trained.optimizer.built:  # the weights file holds the optimizer too
            trained.optimizer.build(trained.trainable_variables)
        trained.load_weights(directory / FINAL_WEIGHTS)
    if working is not model:
        model.set_weights(working.get_weights())
    history = keras.callbacks.History()
    history.set_model(trained)
    history.history = {k: list(v) for k, v in state.history.items()}
    history.epoch = list(range(state.epoch))
    return history


def _truncate_log(path: Path, epochs_done: int) -> None:
    """Drop log rows of epochs after the checkpoint (written before an interruption)."""
    if not path.is_file():
        return
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < epochs_done]
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(kept)
