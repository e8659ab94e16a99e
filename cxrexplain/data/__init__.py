"""Chest X-ray datasets: folder layouts, stratified splits and folds, augmentation, tf.data.

Example:
    >>> import cxrexplain as cx
    >>> train, val = cx.data.image_folder("chest_xray/train", image_size=224,
    ...                                   validation_split=0.2, seed=1)
    >>> folds = cx.data.k_folds("cxr", k=5, seed=0)
    >>> train.class_names, len(folds)
    (['NORMAL', 'PNEUMONIA'], 5)
"""

from __future__ import annotations

from cxrexplain.data.annotations import Polygons, RunLength
from cxrexplain.data.augment import Augmentation
from cxrexplain.data.boxes import boxes_for, read_boxes
from cxrexplain.data.datasets import from_files, image_folder
from cxrexplain.data.files import (
    IMAGE_SUFFIXES,
    LabeledFiles,
    detect_layout,
    list_images,
    path_lookup,
)
from cxrexplain.data.readers import (
    read_chexlocalize,
    read_chexpert,
    read_covid_collection,
    read_csv,
    read_nih,
    read_rsna,
    read_siim,
    read_vindr,
)
from cxrexplain.data.records import Records
from cxrexplain.data.splits import Fold, k_folds, resolve_files, stratified_split

__all__ = [
    "boxes_for",
    "path_lookup",
    "read_chexlocalize",
    "read_chexpert",
    "read_covid_collection",
    "read_csv",
    "read_nih",
    "read_rsna",
    "read_siim",
    "read_vindr",
    "read_boxes",
    "Augmentation",
    "Fold",
    "Polygons",
    "Records",
    "RunLength",
    "IMAGE_SUFFIXES",
    "LabeledFiles",
    "detect_layout",
    "from_files",
    "image_folder",
    "k_folds",
    "list_images",
    "resolve_files",
    "stratified_split",
]
