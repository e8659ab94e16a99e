"""Keras 3's trainer under ``MultiWorkerMirroredStrategy`` with several workers (private).

Keras 3 (3.15 here; keras-team/keras#20585, tensorflow/tensorflow#72388) breaks ``model.fit``
under ``tf.distribute.MultiWorkerMirroredStrategy`` as soon as there are two workers, in two
places of its TensorFlow trainer:

1. ``TensorFlowTrainer._maybe_symbolic_build`` hands the first *distributed* batch to
   ``strategy.reduce``, which takes no nests ("Attempt to convert a value (PerReplica...)");
2. ``reduce_per_replica`` reduces scalar logs with ``axis=0`` ("Invalid reduction dimension 0
   for input with 0 dimensions").

:func:`multi_worker_fixes` replaces those two functions while :func:`cxrexplain.training.fit`
runs under such a strategy, and puts the originals back afterwards (even on error). Single
workers, other strategies and no strategy are left alone; so is a Keras without these
functions (a later release that may have fixed them). It changes Keras for the whole process
while ``fit`` runs: do not train another model in another thread at the same time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import tensorflow as tf

__all__ = ["multi_worker_fixes"]


def _is_multi_worker(strategy: Any) -> bool:
    extended = getattr(strategy, "extended", None)
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and int(
        getattr(extended, "_num_workers", 1)) > 1


@contextlib.contextmanager
def multi_worker_fixes(strategy: Any) -> Iterator[None]:
    """Within the block, Keras's trainer works under a multi-worker strategy.

    Args:
        strategy: The ``tf.distribute`` strategy ``fit`` trains under (or None).
    """
    try:
        from keras.src import tree
        from keras.src.backend.tensorflow import trainer as tf_trainer
    except ImportError:  # pragma: no cover - another Keras layout: nothing to fix here
        yield
        return
    trainer: Any = getattr(tf_trainer, "TensorFlowTrainer", None)
    build = getattr(trainer, "_maybe_symbolic_build", None)
    reduce = getattr(tf_trainer, "reduce_per_replica", None)
    if not _is_multi_worker(strategy) or build is None or reduce is None:
        yield
        return

    def first_replica(value: Any) -> Any:
        return value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value

    def maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(first_replica, next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values: Any, strategy: Any, reduction: Any) -> Any:
        if reduction not in ("auto", "mean"):
            return reduce(values, strategy, reduction)

        def one(value: Any) -> Any:
            if isinstance(value, tf.distribute.DistributedValues):
                rank = value.values[0].shape.rank
            elif tf.is_tensor(value):
                rank = value.shape.rank
            else:
                return value
            return strategy.reduce("MEAN", value, axis=None if rank == 0 else 0)

        return tree.map_structure(one, values)

    replaced: list[tuple[Any, str, Callable[..., Any]]] = [
        (trainer, "_maybe_symbolic_build", build), (tf_trainer, "reduce_per_replica", reduce)]
    trainer._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        for owner, name, original in replaced:
            setattr(owner, name, original)
