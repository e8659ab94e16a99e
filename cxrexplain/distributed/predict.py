"""``Predict``: class probabilities of a data set's films, one model per Ray actor.

Example:
    >>> import numpy as np
    >>> from cxrexplain.distributed import Predict
    >>> predict = Predict("pneumonia.keras")  # what each Ray actor does once
    >>> out = predict({"path": np.array(["a.png", "missing.png"], object)})
    >>> out["probabilities"].shape, out["label"][0] in predict.class_names
    ((2, 2), True)
    >>> bool(np.isnan(out["probabilities"][1]).all()), out["error"][1][:5]
    (True, 'image')

On Ray Data (``pip install "cxrexplain[ray]"``)::

    ds = ray.data.from_items([{"path": p} for p in paths])
    ds = ds.map_batches(cx.distributed.Predict, fn_constructor_kwargs={"model": "m.keras"},
                        concurrency=4, batch_size=64)
    ds.write_parquet("predictions/")
"""

from __future__ import annotations

import numpy as np

from cxrexplain.distributed.base import BatchActor, ModelPath

__all__ = ["Predict"]


class Predict(BatchActor):
    """A callable class for ``ray.data.Dataset.map_batches``: probabilities per film.

    The model is loaded once, in the constructor (once per Ray actor); each call reads the
    batch's films (bad ones become error rows) and runs the readable ones through the model
    in compiled passes of ``batch_size``. Without Ray it is a plain callable.

    Input columns: ``path`` (film files the worker can read), or ``bytes`` (encoded files)
    and ``id``; any other column is passed through.

    Output columns (one row per input row):

    * ``error``: ``""``, or why the film could not be read;
    * ``probabilities``: ``(N, K)`` float32 in class-name order (NaN on an error row);
    * ``label``: the decided class name (the classifier's threshold applies; ``""`` on error).

    Args:
        model: A ``.keras`` file saved by :meth:`cxrexplain.Classifier.save`.
        batch_size: Films per compiled pass.
        threads: TensorFlow threads per pool; None: the whole CPUs Ray gave the actor (so
            two one-CPU actors on two cores do not fight over them).

    Raises:
        ModelLoadError: The model file cannot be loaded.
        InvalidInputError: A bad argument.

    Example:
        >>> Predict("pneumonia.keras").class_names
        ['NORMAL', 'PNEUMONIA']
    """

    def __init__(self, model: ModelPath, *, batch_size: int = 32,
                 threads: int | None = None) -> None:
        super().__init__(model, batch_size=batch_size, threads=threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Predict a batch (see the class docs for the columns)."""
        rows = self.read(batch)
        values = self.classifier.predict_proba(rows.films, batch_size=self.batch_size) \
            if rows.films else None
        return {**self.output(rows), **self.probabilities(rows, values)}
