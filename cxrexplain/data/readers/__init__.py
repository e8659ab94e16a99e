"""Readers of the public chest X-ray collections, one module each, all returning
:class:`~cxrexplain.data.Records` (no download, ever: point them at the files you have).

* :func:`read_csv`: a folder of films with a CSV of your own (the generic case);
* :func:`read_nih`: NIH ChestX-ray14's ``Data_Entry_2017*.csv`` and ``BBox_List_2017.csv``;
* :func:`read_rsna`: RSNA Pneumonia Detection's ``stage_2_train_labels.csv`` (and its films
  matched to NIH file names);
* :func:`read_chexpert`: CheXpert's ``train.csv`` / ``valid.csv`` with an uncertainty policy;
* :func:`read_chexlocalize`: CheXlocalize's polygons and COCO run-length masks;
* :func:`read_vindr`: VinDr-CXR's ``train.csv``, boxes per radiologist, readers merged;
* :func:`read_siim`: SIIM-ACR's ``train-rle.csv``, pneumothorax run-length masks;
* :func:`read_covid_collection`: the COVID-19 image data collection's ``metadata.csv``.

Every reader reads through :mod:`cxrexplain.data._rows` (``.gz`` and ``.zip`` opened as they
are) and names the file, row and column of a malformed row.
"""

from __future__ import annotations

from cxrexplain.data.readers.chexlocalize import read_chexlocalize
from cxrexplain.data.readers.chexpert import read_chexpert
from cxrexplain.data.readers.covid import read_covid_collection
from cxrexplain.data.readers.generic import read_csv
from cxrexplain.data.readers.nih import read_nih
from cxrexplain.data.readers.rsna import read_rsna
from cxrexplain.data.readers.siim import read_siim
from cxrexplain.data.readers.vindr import read_vindr

__all__ = ["read_chexlocalize", "read_chexpert", "read_covid_collection", "read_csv", "read_nih",
           "read_rsna", "read_siim", "read_vindr"]
