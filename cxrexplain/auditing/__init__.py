"""The data-set audit: where a classifier's evidence lies, against the lungs, film by film.

``cx.audit(classifier, images, lungs=...)`` explains every film (one compiled pass per
batch), measures each map's share inside the lungs and in the border band, summarises them
per class and per group, and flags a model whose evidence for a finding lies mostly outside
the lungs: the shortcut (burnt-in markers, borders, tubes) that DeGrave et al. (Nature Machine
Intelligence 2021) found in COVID-19 classifiers. With the films' labels it also runs the
swap test (:func:`cxrexplain.metrics.swap_test`, ``counterfactual=``): each film's lungs on
another film's surroundings; a model whose decisions follow the surroundings is flagged too.
With ``by=`` (metadata columns: view, sex, age, source; from a records table or
``metadata=``) it reports what the model encodes besides the disease: performance per
subgroup (:func:`subgroup_table`), an encoding probe (:func:`encoding_probe`) and the lung
share per subgroup.

Example:
    >>> import cxrexplain as cx
    >>> rep = cx.audit(clf, data.images, lungs=data.lung_masks)
    >>> [row["name"] for row in rep.summary]
    ['NORMAL', 'PNEUMONIA']
"""

from __future__ import annotations

from cxrexplain.auditing.attributes import DEFAULT_BANDS, band_labels
from cxrexplain.auditing.gallery import GalleryItem
from cxrexplain.auditing.probe import EncodingRow, encoding_probe
from cxrexplain.auditing.report import NEGATIVE_NAMES, AuditReport, AuditRule
from cxrexplain.auditing.run import audit
from cxrexplain.auditing.subgroups import SubgroupRow, subgroup_table
from cxrexplain.lungs.geometry import BORDER_FRACTION, DEFAULT_MARGIN, border_band
from cxrexplain.lungs.shares import Measures

__all__ = [
    "BORDER_FRACTION",
    "DEFAULT_BANDS",
    "DEFAULT_MARGIN",
    "NEGATIVE_NAMES",
    "AuditReport",
    "AuditRule",
    "EncodingRow",
    "GalleryItem",
    "Measures",
    "SubgroupRow",
    "audit",
    "band_labels",
    "border_band",
    "encoding_probe",
    "subgroup_table",
]
