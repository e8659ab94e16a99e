"""``Audit``: where a data set's explanations lie against the lungs, film by film, on Ray.

The per-film numbers of :func:`cxrexplain.audit` (:mod:`cxrexplain.lungs.shares`) as
fixed-shape columns; the summary and the verdict are for the whole table afterwards (read it
back and give the columns to :meth:`cxrexplain.AuditReport.from_measures`, or aggregate them
with Ray Data).

Example:
    >>> import numpy as np
    >>> from cxrexplain.distributed import Audit
    >>> audit = Audit("pneumonia.keras", lungs="lungs.keras")  # a lung segmenter file
    >>> out = audit({"path": np.array(["a.png", "b.png"], object)})
    >>> sorted(k for k in out if k.endswith("share")), out["peak_in_lungs"].dtype
    (['border_share', 'lung_share'], dtype('bool'))

On Ray Data, with each film's mask in a ``lungs`` column::

    rows = [{"path": str(p), "lungs": str(m)}
            for p, m in zip(paths, cx.lungs.match_masks(paths, "masks/"))]
    ds = ray.data.from_items(rows).map_batches(
        cx.distributed.Audit, fn_constructor_kwargs={"model": "m.keras", "lungs": None},
        concurrency=4)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cxrexplain._checks import check_number, describe, one_line
from cxrexplain.distributed.base import ModelPath, Rows, filled
from cxrexplain.distributed.explain import Explain
from cxrexplain.errors import CxrExplainError, InvalidInputError
from cxrexplain.io import load_image
from cxrexplain.lungs.geometry import DEFAULT_MARGIN
from cxrexplain.lungs.segmenter import LungSegmenter
from cxrexplain.lungs.shares import measure
from cxrexplain.lungs.source import LungSource

__all__ = ["Audit"]


class Audit(Explain):
    """A callable class for ``ray.data.Dataset.map_batches``: lung share, border share and
    peak of each film's explanation.

    The classifier, the explainer and the lung segmenter are loaded once, in the constructor
    (once per Ray actor). Each call reads the batch's films (and, with ``lungs=None``, their
    masks), explains the readable ones in one call, and measures each map against its lungs
    exactly as :func:`cxrexplain.audit` does (maps at the model's input size, masks resized to
    it, the lungs dilated by ``lung_margin``). A film or mask that cannot be used becomes an
    error row.

    Input columns: ``path``, or ``bytes`` and ``id`` (see :class:`Predict`); with
    ``lungs=None`` also ``lungs``, each film's mask (a file path or encoded bytes) of the
    film's size; any other column is passed through.

    Output columns: ``error``, ``probabilities``, ``label``, ``target`` and ``score`` (as
    :class:`Explain`); ``lung_share`` and ``border_share`` float64 (NaN on an error row or an
    all-zero map); ``peak_in_lungs`` bool (False on an error row).

    Args:
        model: A ``.keras`` classifier file.
        lungs: A lung segmenter's ``.keras`` file (``cx.lungs.LungSegmenter.save``), or None
            for the masks of a ``lungs`` column.
        method: An explainer name.
        target: The class to explain for every film; None: each film's predicted class.
        lung_margin: The lungs' dilation, a share of the map's side (0: none).
        layer: The layer to explain.
        batch_size: Films per compiled pass.
        threads: TensorFlow threads per pool; None: the whole CPUs Ray gave the actor.

    Raises:
        ModelLoadError: The classifier or segmenter file cannot be loaded.
        InvalidInputError: A bad argument.

    Example:
        >>> audit = Audit("pneumonia.keras", lungs=None)  # masks in a "lungs" column
        >>> out = audit({"path": np.array(["a.png"], object),
        ...              "lungs": np.array(["missing_mask.png"], object)})
        >>> out["error"][0].startswith("lungs: image 'missing_mask.png'")
        True
    """

    def __init__(
        self,
        model: ModelPath,
        *,
        lungs: str | os.PathLike[str] | None,
        method: str = "gradcam",
        target: str | int | None = None,
        lung_margin: float = DEFAULT_MARGIN,
        layer: str | None = None,
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        if lungs is not None and not isinstance(lungs, (str, os.PathLike)):
            raise InvalidInputError(
                f"lungs: expected a lung segmenter's .keras file, or None for a 'lungs' "
                f"column of masks, got {describe(lungs)}"
            )
        self.lung_margin = check_number(lung_margin, "lung_margin", low=0.0, high=0.5)
        super().__init__(model, method=method, heatmap_size=None, png=False, target=target,
                         layer=layer, batch_size=batch_size, threads=threads)
        self.segmenter = None if lungs is None else LungSegmenter.load(lungs)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Audit a batch (see the class docs for the columns)."""
        rows = self.read(batch)
        given = self._column_masks(rows, batch) if self.segmenter is None else None
        exp = self.explain(rows.films) if rows.films else None
        out = {**self.output(rows),
               **self.probabilities(rows, None if exp is None else exp.probabilities)}
        count = rows.count
        target = filled((count,), -1, np.int64)
        score = filled((count,), np.nan, np.float32)
        lung_share = filled((count,), np.nan, np.float64)
        border_share = filled((count,), np.nan, np.float64)
        peak_in = filled((count,), False, bool)
        if exp is not None:
            size = (int(exp.heatmaps.shape[1]), int(exp.heatmaps.shape[2]))
            if self.segmenter is not None:
                masks = np.stack(self.segmenter.segment_loaded(rows.films, size=size))
            else:
                assert given is not None
                masks = np.stack([LungSource(masks=m[None]).masks(0, [f], size)[0]
                                  for m, f in zip(given, rows.films, strict=True)])
            measures = measure(exp.heatmaps, masks, margin=self.lung_margin)
            target[rows.good] = exp.targets
            score[rows.good] = exp.scores
            lung_share[rows.good] = measures.lung_share
            border_share[rows.good] = measures.border_share
            peak_in[rows.good] = measures.peak_in_lungs
        out.update(target=target, score=score, lung_share=lung_share,
                   border_share=border_share, peak_in_lungs=peak_in)
        return out

    def _column_masks(self, rows: Rows, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The masks of the readable films from the ``lungs`` column; a film whose mask
        cannot be read, differs in size or is empty becomes an error row."""
        if "lungs" not in batch:
            raise InvalidInputError(
                f"batch: Audit(lungs=None) reads each film's mask from a 'lungs' column; "
                f"the batch has columns {sorted(batch)}"
            )
        masks: list[np.ndarray] = []
        for position in list(rows.good.tolist()):
            cell: Any = batch["lungs"][position]
            film = rows.films[int(np.flatnonzero(rows.good == position)[0])]
            try:
                if cell is None or (isinstance(cell, (bytes, str)) and not cell):
                    raise InvalidInputError("the cell is empty")
                source = bytes(cell) if isinstance(cell, (bytes, np.bytes_)) else str(cell)
                pixels = load_image(source, channels=1)[..., 0]
                LungSource(masks=pixels[None]).masks(0, [film], film.shape[:2])
            except CxrExplainError as err:
                rows.drop(position, one_line(f"lungs: {err}"))
                continue
            masks.append(pixels)
        return masks
