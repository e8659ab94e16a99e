"""Lung segmentation: train a U-Net on lung masks, segment films, score masks with Dice.

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
"""

from __future__ import annotations

from cxrexplain.lungs.dice import dice
from cxrexplain.lungs.masks import binary_masks, match_masks, read_masks
from cxrexplain.lungs.postprocess import clean_mask
from cxrexplain.lungs.segmenter import LungSegmenter
from cxrexplain.lungs.training import DiceBCELoss, default_epochs, dice_coefficient, train

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
    "train",
]
