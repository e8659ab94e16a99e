"""Training and evaluation: ``fit``, ``evaluate``, ``threshold_for_recall``, ``cross_validate``,
``ExplanationCallback`` (explanations while the model trains), ``train_segmenter`` (a lung
U-Net, also ``cx.lungs.train``).

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2, filters=(4, 8))
    >>> history = cx.training.fit(model, train, val, epochs=2, verbose=0)
    >>> clf = cx.Classifier(model, class_names=["NORMAL", "PNEUMONIA"])
    >>> report = cx.training.evaluate(clf, test)
    >>> len(history.history["loss"]), report.n
    (2, 4)
    >>> t = cx.training.threshold_for_recall(clf, val, positive="PNEUMONIA", recall=0.99)
    >>> clf.threshold == t
    True
"""

from __future__ import annotations

from cxrexplain.training.batchnorm import recalibrate_batchnorm
from cxrexplain.training.checkpoint import TrainingState, load_state
from cxrexplain.training.cross_validation import cross_validate
from cxrexplain.training.cv_results import CrossValidationResult, FoldResult, FoldSetup
from cxrexplain.training.explanation_callback import ExplanationCallback
from cxrexplain.training.fit import fit
from cxrexplain.training.guide import Guidance, Guide, GuidedModel
from cxrexplain.training.preparation import balanced_class_weight, compile_default, has_gpu
from cxrexplain.training.report import EvaluationReport, evaluate, report_from_predictions
from cxrexplain.training.segmenter import train_segmenter
from cxrexplain.training.stats import confusion_matrix, roc_auc, roc_curve
from cxrexplain.training.threshold import threshold_for_recall

__all__ = [
    "CrossValidationResult",
    "EvaluationReport",
    "ExplanationCallback",
    "FoldResult",
    "FoldSetup",
    "Guidance",
    "Guide",
    "GuidedModel",
    "TrainingState",
    "balanced_class_weight",
    "compile_default",
    "confusion_matrix",
    "cross_validate",
    "evaluate",
    "fit",
    "has_gpu",
    "load_state",
    "recalibrate_batchnorm",
    "report_from_predictions",
    "roc_auc",
    "roc_curve",
    "threshold_for_recall",
    "train_segmenter",
]
