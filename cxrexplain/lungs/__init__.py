"""The lungs: every lung rule in one place, below the explainers, the metrics and training.

* masks (:mod:`~cxrexplain.lungs.masks`): the one mask rule of :mod:`cxrexplain._arrays`,
  reading mask files, matching them to films; :func:`dice`; :func:`clean_mask`;
* geometry (:mod:`~cxrexplain.lungs.geometry`): the margin that grows a lung mask (a disc of
  3% of the larger side) and the border band (the outer eighth);
* shares (:mod:`~cxrexplain.lungs.shares`): a map's lung share, border share and peak, as the
  audit and the training callback measure them;
* the swap (:func:`swap_surroundings`): a film's lungs on another film's surroundings, the
  composite of the swap test;
* segmenting (:class:`LungSegmenter`): a trained lung U-Net run on films of any size;
* where the lungs come from (:mod:`~cxrexplain.lungs.source`): the one reader of a
  ``lungs=`` argument (segmenter, mask model, arrays, mask files or a folder of them) for the
  audit, the swap test and the distributed audit;
* the focus layer (:class:`~cxrexplain.lungs.focus.LungFocus`), which
  :func:`cxrexplain.models.with_lung_focus` puts before a classifier.

Training a segmenter is training: :func:`cxrexplain.training.train_segmenter`. The names
:func:`train`, ``DiceBCELoss``, ``dice_coefficient`` and ``default_epochs`` stay here too,
resolved on first use (a module ``__getattr__`` that imports
``cxrexplain.training.segmenter`` by name): the one sanctioned late resolution of this
package, so that no import statement of ``lungs/`` reaches up to ``training/``.

No weights ship with cxrexplain (the public lung-mask sets do not allow redistribution):
train one in minutes on a public set (Montgomery and Shenzhen, JSRT/SCR, the v7labs COVID-19
annotations) with :func:`train` or ``cxrexplain lungs train``.

Example:
    >>> import cxrexplain as cx
    >>> data = cx.synthetic.generate(4, size=32)
    >>> seg = cx.lungs.LungSegmenter(cx.models.build("lung_unet", input_shape=(32, 32, 1)))
    >>> masks = seg.segment(data.images)
    >>> masks.shape, cx.lungs.dice(data.lung_masks, data.lung_masks).tolist()
    ((4, 32, 32), [1.0, 1.0, 1.0, 1.0])
    >>> cx.lungs.train is cx.training.train_segmenter
    True
"""

from __future__ import annotations

import importlib
from typing import Any

from cxrexplain.lungs.dice import dice
from cxrexplain.lungs.masks import binary_masks, match_masks, read_masks
from cxrexplain.lungs.postprocess import clean_mask
from cxrexplain.lungs.segmenter import LungSegmenter
from cxrexplain.lungs.swap import swap_surroundings

__all__ = [
    "DiceBCELoss",
    "LungSegmenter",
    "binary_masks",
    "clean_mask",
    "default_epochs",
    "dice",
    "dice_coefficient",
    "match_masks",
    "read_masks",
    "swap_surroundings",
    "train",
]

_TRAINING = "cxrexplain.training.segmenter"
"""Where the training names live (imported by name on first use, see the module docs)."""

_LATE = {"train": "train_segmenter", "DiceBCELoss": "DiceBCELoss",
         "dice_coefficient": "dice_coefficient", "default_epochs": "default_epochs"}
"""This package's name -> the name in :data:`_TRAINING`."""


def __getattr__(name: str) -> Any:
    """Resolve the training names on first use (PEP 562); see the module docs."""
    if name not in _LATE:
        raise AttributeError(f"module 'cxrexplain.lungs' has no attribute '{name}'")
    value = getattr(importlib.import_module(_TRAINING), _LATE[name])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
