"""Data sets past one machine: the library's classifier, explainers and audit on Ray Data.

Three callable classes for ``ray.data.Dataset.map_batches``, each loading the model once per
Ray actor from a ``.keras`` file and turning a batch of films (a ``path`` column, or ``bytes``
and ``id``) into fixed-shape columns that write straight to Parquet; a film that cannot be read
becomes an error row, never a failed task:

* :class:`Predict`: ``probabilities`` and ``label``;
* :class:`Explain`: also ``target``, ``score``, a low-resolution ``heatmap`` array and the map
  as ``heatmap_png`` bytes;
* :class:`Audit`: ``lung_share``, ``border_share`` and ``peak_in_lungs`` against the lungs.

:func:`explain_dataset` (and ``cxrexplain explain --engine ray``) wraps them: a local Ray or a
cluster, a pool of actors, Parquet files in a folder; :func:`read_results` reads them back.

Ray is the optional ``ray`` extra (``pip install "cxrexplain[ray]"``); this package imports
without it, and the callables run without it too (a plain loop, a test, another engine).

Example:
    >>> import numpy as np
    >>> import cxrexplain as cx
    >>> explain = cx.distributed.Explain("pneumonia.keras", heatmap_size=8)
    >>> out = explain({"path": np.array(["a.png", "not-there.png"], object)})
    >>> out["heatmap"].shape, [bool(e) for e in out["error"]]
    ((2, 8, 8), [False, True])

With Ray Data::

    ds = ray.data.from_items([{"path": p} for p in paths])
    ds = ds.map_batches(cx.distributed.Explain, fn_constructor_kwargs={"model": "m.keras"},
                        concurrency=4, num_gpus=1, batch_size=64)
    ds.write_parquet("out/")
    cx.distributed.explain_dataset(paths, "m.keras", method="gradcam", out="out/")
"""

from __future__ import annotations

from cxrexplain.distributed.audit import Audit
from cxrexplain.distributed.dataset import (
    ExplainSummary,
    explain_dataset,
    list_films,
    read_results,
)
from cxrexplain.distributed.explain import Explain
from cxrexplain.distributed.maps import heatmap_from_png, resize_heatmaps
from cxrexplain.distributed.predict import Predict

__all__ = [
    "Audit",
    "Explain",
    "ExplainSummary",
    "Predict",
    "explain_dataset",
    "heatmap_from_png",
    "list_films",
    "read_results",
    "resize_heatmaps",
]
