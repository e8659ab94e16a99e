"""Resumable training state: everything :func:`cxrexplain.training.fit` needs to go on.

After every epoch :class:`ResumableCheckpoint` writes, into ``checkpoint_dir``:

* ``epoch_NNNN/model.weights.h5`` and ``epoch_NNNN/optimizer.npz``: the weights and the
  optimizer's variables (iteration count, learning rate, moments; a loss-scale optimizer's
  scale too) at the end of epoch NNNN;
* ``best_NNNN.npz``: the weights of the best epoch so far (``model.get_weights()`` order, for
  early stopping);
* ``state.json``: the epoch counter, the history so far, and the state of early stopping
  (wait, best value, best epoch) and of the learning-rate reduction (wait, best, cooldown).

``state.json`` is written last and atomically, and names the snapshot folder it belongs to, so
an interruption at any moment leaves a consistent checkpoint: the last complete epoch. After
the last epoch, ``final.weights.h5`` holds the returned weights (best epoch restored) and the
state is marked finished. Older snapshots are removed once the new state is written.

Example:
    >>> state = load_state("runs/cam_cnn")  # a finished run of two epochs
    >>> state.epoch, state.snapshot, state.finished
    (2, 'epoch_0002', True)
    >>> sorted(p.name for p in Path("runs/cam_cnn").iterdir())
    ['best_...npz', 'epoch_0002', 'final.weights.h5', 'log.csv', 'state.json']
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrexplain._files import atomic_write_text
from cxrexplain.errors import InvalidInputError

__all__ = ["ResumableCheckpoint", "TrainingState", "clear_checkpoint", "load_state"]

STATE_FILE = "state.json"
FINAL_WEIGHTS = "final.weights.h5"
_FORMAT = 1


@dataclass
class TrainingState:
    """What ``state.json`` holds.

    Attributes:
        epoch: Completed epochs.
        snapshot: The folder with the weights and optimizer state after ``epoch`` epochs.
        best: The best-epoch weights file (early stopping), if any.
        history: Every logged metric, one value per completed epoch.
        early_stopping: ``EarlyStopping`` counters.
        reduce_lr: ``ReduceLROnPlateau`` counters.
        finished: Whether the run ended normally (``final.weights.h5`` written).
        stopped_early: Whether early stopping ended it.

    Example:
        >>> TrainingState().epoch
        0
    """

    epoch: int = 0
    snapshot: str | None = None
    best: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    early_stopping: dict[str, Any] | None = None
    reduce_lr: dict[str, Any] | None = None
    finished: bool = False
    stopped_early: bool = False


def load_state(directory: str | os.PathLike[str]) -> TrainingState | None:
    """The state saved in ``directory``, or None when there is none.

    Raises:
        InvalidInputError: ``state.json`` is unreadable or its snapshot is missing.

    Example:
        >>> load_state("no/such/run") is None
        True
    """
    path = Path(os.fspath(directory)) / STATE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw.pop("format", None)
        state = TrainingState(**raw)
    except (ValueError, TypeError) as err:
        raise InvalidInputError(
            f"checkpoint_dir: '{path}' is not a cxrexplain training state ({err}); delete it "
            "or pass resume=False"
        ) from err
    if state.snapshot is not None and not (path.parent / state.snapshot).is_dir():
        raise InvalidInputError(
            f"checkpoint_dir: '{path}' names the snapshot '{state.snapshot}', which is missing"
        )
    return state


def clear_checkpoint(directory: str | os.PathLike[str]) -> None:
    """Remove cxrexplain's checkpoint files from ``directory`` (nothing else).

    Example:
        >>> clear_checkpoint("runs/cam_cnn")
        >>> sorted(p.name for p in Path("runs/cam_cnn").iterdir()), load_state("runs/cam_cnn")
        (['log.csv'], None)
    """
    folder = Path(os.fspath(directory))
    if not folder.is_dir():
        return
    for item in folder.iterdir():
        if item.is_dir() and item.name.startswith("epoch_"):
            shutil.rmtree(item, ignore_errors=True)
        elif item.name in (STATE_FILE, FINAL_WEIGHTS) or (
            item.name.startswith("best_") and item.name.endswith(".npz")
        ):
            item.unlink(missing_ok=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))


def optimizer_values(optimizer: Any) -> list[np.ndarray]:
    """The optimizer's variables as arrays, in its own order.

    Example:
        >>> from cxrexplain.training.preparation import compile_default
        >>> model = compile_default(cx.models.build("cam_cnn", input_shape=(32, 32, 1),
        ...                                         num_classes=2, filters=(4, 8)))
        >>> model.optimizer.build(model.trainable_variables)
        >>> len(optimizer_values(model.optimizer))  # Adam: 2 + 2 per trainable weight (8)
        18
    """
    return [np.asarray(keras.ops.convert_to_numpy(v)) for v in optimizer.variables]


def restore_optimizer(model: keras.Model, path: Path) -> None:
    """Build the model's optimizer and load the variables saved in ``path``.

    Raises:
        InvalidInputError: The saved state belongs to another model or optimizer.

    Example:
        >>> from cxrexplain.training.preparation import compile_default
        >>> model = compile_default(cx.models.build("cam_cnn", input_shape=(32, 32, 1),
        ...                                         num_classes=2, filters=(4, 8)))
        >>> restore_optimizer(model, Path("runs/cam_cnn/epoch_0002/optimizer.npz"))
        >>> int(model.optimizer.iterations)  # two epochs of one batch
        2
    """
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    with np.load(path) as archive:
        values = [archive[f"v{i:05d}"] for i in range(len(archive.files))]
    variables = list(optimizer.variables)
    shapes_ok = len(values) == len(variables) and all(
        tuple(v.shape) == tuple(a.shape) for v, a in zip(variables, values, strict=True)
    )
    if not shapes_ok:
        raise InvalidInputError(
            f"checkpoint_dir: the optimizer state in '{path}' does not fit this model and "
            f"optimizer ({len(values)} saved variables, {len(variables)} now); resume with the "
            "same model and compile settings, or pass resume=False"
        )
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value.astype(variable.dtype))


class ResumableCheckpoint(keras.callbacks.Callback):  # type: ignore[misc]
    """Save a resumable checkpoint after every epoch (see the module docs).

    Put it after the ``EarlyStopping`` and ``ReduceLROnPlateau`` callbacks it records.

    Args:
        directory: The checkpoint folder.
        state: The state to continue from (None: a fresh run).
        early_stopping: The run's early-stopping callback, if any.
        reduce_lr: The run's learning-rate reduction callback, if any.

    Example:
        >>> from cxrexplain.training.preparation import compile_default
        >>> model = compile_default(cx.models.build("cam_cnn", input_shape=(32, 32, 1),
        ...                                         num_classes=2, filters=(4, 8)))
        >>> callback = ResumableCheckpoint("runs/x", state=None)
        >>> images, labels = train
        >>> model.fit(images, labels, epochs=1, verbose=0, callbacks=[callback]).epoch
        [0]
        >>> load_state("runs/x").epoch, load_state("runs/x").finished
        (1, True)
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        state: TrainingState | None,
        early_stopping: keras.callbacks.EarlyStopping | None = None,
        reduce_lr: keras.callbacks.ReduceLROnPlateau | None = None,
    ) -> None:
        super().__init__()
        self.directory = Path(os.fspath(directory))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.state = state or TrainingState()
        self.early_stopping = early_stopping
        self.reduce_lr = reduce_lr

    # keras hooks -------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Give the callbacks back their counters (they reset them in their own hook)."""
        es, rl = self.early_stopping, self.reduce_lr
        if es is not None and self.state.early_stopping:
            saved = self.state.early_stopping
            es.wait, es.best = saved["wait"], saved["best"]
            es.best_epoch, es.stopped_epoch = saved["best_epoch"], 0
            if self.state.best and es.restore_best_weights:
                with np.load(self.directory / self.state.best) as archive:
                    es.best_weights = [archive[f"w{i:05d}"] for i in range(len(archive.files))]
        if rl is not None and self.state.reduce_lr:
            saved = self.state.reduce_lr
            rl.wait, rl.best, rl.cooldown_counter = (saved["wait"], saved["best"],
                                                     saved["cooldown_counter"])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Write the snapshot of this epoch, then the state that points to it."""
        state = self.state
        for key, value in (logs or {}).items():
            state.history.setdefault(key, []).append(float(value))
        name = f"epoch_{epoch + 1:04d}"
        snapshot = self.directory / name
        snapshot.mkdir(exist_ok=True)
        self.model.save_weights(snapshot / "model.weights.h5")
        values = optimizer_values(self.model.optimizer)
        arrays: dict[str, Any] = {f"v{i:05d}": v for i, v in enumerate(values)}
        np.savez(snapshot / "optimizer.npz", **arrays)
        old_snapshot, old_best = state.snapshot, state.best
        es = self.early_stopping
        if es is not None and es.best_weights is not None and es.best_epoch == epoch:
            state.best = f"best_{epoch + 1:04d}.npz"
            best: dict[str, Any] = {f"w{i:05d}": w for i, w in enumerate(es.best_weights)}
            np.savez(self.directory / state.best, **best)
        state.epoch, state.snapshot = epoch + 1, name
        state.early_stopping = None if es is None else {
            "wait": int(es.wait), "best": _float_or_none(es.best),
            "best_epoch": int(es.best_epoch)}
        rl = self.reduce_lr
        state.reduce_lr = None if rl is None else {
            "wait": int(rl.wait), "best": _float_or_none(rl.best),
            "cooldown_counter": int(rl.cooldown_counter)}
        self._save()
        if old_snapshot and old_snapshot != name:
            shutil.rmtree(self.directory / old_snapshot, ignore_errors=True)
        if old_best and old_best != state.best:
            (self.directory / old_best).unlink(missing_ok=True)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Save the final weights (best epoch restored by early stopping) and mark the end."""
        self.model.save_weights(self.directory / FINAL_WEIGHTS)
        es = self.early_stopping
        self.state.finished = True
        self.state.stopped_early = bool(es is not None and es.stopped_epoch > 0) or \
            self.state.stopped_early
        self._save()

    def _save(self) -> None:
        _write_json(self.directory / STATE_FILE, {"format": _FORMAT, **asdict(self.state)})


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if np.isfinite(number) else None
