"""``Explain``: a data set's films explained, one model per Ray actor, fixed-shape columns.

Example:
    >>> import numpy as np
    >>> from cxrexplain.distributed import Explain, heatmap_from_png
    >>> explain = Explain("pneumonia.keras", method="gradcam", heatmap_size=16)
    >>> out = explain({"path": np.array(["a.png", "b.png"], object)})
    >>> out["heatmap"].shape, out["target"].tolist() == out["probabilities"].argmax(1).tolist()
    ((2, 16, 16), True)
    >>> heatmap_from_png(out["heatmap_png"][0]).shape  # at the model's input size
    (32, 32)

On Ray Data (``pip install "cxrexplain[ray]"``)::

    ds = ray.data.from_items([{"path": p} for p in paths])
    ds = ds.map_batches(cx.distributed.Explain, fn_constructor_kwargs={"model": "m.keras"},
                        concurrency=4, num_gpus=1, batch_size=64)
    ds.write_parquet("maps/")
"""

from __future__ import annotations

import numpy as np

from cxrexplain._checks import check_size
from cxrexplain.distributed.base import BatchActor, ModelPath, filled
from cxrexplain.distributed.maps import heatmap_png, resize_heatmaps
from cxrexplain.errors import InvalidInputError
from cxrexplain.explain import Explanation, Targets, get_explainer

__all__ = ["Explain"]


class Explain(BatchActor):
    """A callable class for ``ray.data.Dataset.map_batches``: a map and a decision per film.

    The model and the explainer are built once, in the constructor (once per Ray actor); each
    call reads the batch's films (bad ones become error rows) and explains the readable ones
    in compiled passes of ``batch_size``, which also give the probabilities. Without Ray it is
    a plain callable.

    Input columns: ``path``, or ``bytes`` and ``id`` (see :class:`Predict`); any other column
    is passed through.

    Output columns (one row per input row; every cell of a column has one shape, so the
    table writes straight to Parquet):

    * ``error``, ``probabilities`` ``(N, K)`` float32, ``label``: as :class:`Predict`;
    * ``target``: int64, the class explained (-1 on an error row); ``score``: float32, its
      probability (NaN on error);
    * ``heatmap``: ``(N, heatmap_size, heatmap_size)`` float32 in [0, 1], the map resized
      with :func:`~cxrexplain.distributed.resize_heatmaps` (NaN on error);
    * ``heatmap_png`` (when ``png``): the map at the model's input size as 8-bit gray PNG
      bytes (``b""`` on error; :func:`~cxrexplain.distributed.heatmap_from_png` reads it).

    Args:
        model: A ``.keras`` file saved by :meth:`cxrexplain.Classifier.save`.
        method: An explainer name (``cx.explainers()``).
        heatmap_size: Size of the ``heatmap`` column's maps (a side, or ``(height, width)``);
            None: the model's input size.
        png: Add the ``heatmap_png`` column.
        target: The class to explain (name or index) for every film; None: each film's
            predicted class.
        layer: The layer to explain (default: the last convolutional block).
        batch_size: Films per compiled pass.
        threads: TensorFlow threads per pool; None: the whole CPUs Ray gave the actor.

    Raises:
        ModelLoadError: The model file cannot be loaded.
        InvalidInputError: An unknown method or target, or a bad argument.
        ModelStructureError: The layer is unknown or the method does not fit the model.

    Example:
        >>> Explain("pneumonia.keras", method="cam").explainer.name
        'cam'
    """

    def __init__(
        self,
        model: ModelPath,
        *,
        method: str = "gradcam",
        heatmap_size: int | tuple[int, int] | None = 64,
        png: bool = True,
        target: str | int | None = None,
        layer: str | None = None,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        explainer_class = get_explainer(method)  # an unknown name fails before the model loads
        super().__init__(model, batch_size=batch_size, threads=threads)
        self.explainer = explainer_class(self.classifier, layer=layer)
        if target is not None:
            self.classifier.target_indices(target, 1)  # an unknown class fails here
        self.target: Targets = target
        input_size = self.classifier.input_size
        if heatmap_size is not None:
            self.heatmap_size: tuple[int, int] = check_size(heatmap_size, "heatmap_size")
        elif input_size is not None:
            self.heatmap_size = (int(input_size[0]), int(input_size[1]))
        else:
            raise InvalidInputError(
                "heatmap_size: the model's input size is unknown, so the maps' size is too; "
                "give a size"
            )
        self.png = bool(png)

    def explain(self, films: list[np.ndarray]) -> Explanation:
        """Explain loaded films (one call; compiled passes of ``batch_size``)."""
        return self.explainer.explain(films, self.target, batch_size=self.batch_size)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Explain a batch (see the class docs for the columns)."""
        rows = self.read(batch)
        exp = self.explain(rows.films) if rows.films else None
        out = {**self.output(rows),
               **self.probabilities(rows, None if exp is None else exp.probabilities)}
        count = rows.count
        target = filled((count,), -1, np.int64)
        score = filled((count,), np.nan, np.float32)
        heatmap = filled((count, *self.heatmap_size), np.nan, np.float32)
        png = filled((count,), b"", object)
        if exp is not None:
            target[rows.good] = exp.targets
            score[rows.good] = exp.scores
            heatmap[rows.good] = resize_heatmaps(exp.heatmaps, self.heatmap_size)
            if self.png:
                png[rows.good] = [heatmap_png(m) for m in exp.heatmaps]
        out.update(target=target, score=score, heatmap=heatmap)
        if self.png:
            out["heatmap_png"] = png
        return out
