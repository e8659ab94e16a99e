"""One operating point per finding: multi-label thresholds, saved, used, and chosen on data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tiny_models import conv_gap_dense, random_images

import cxrexplain as cx
from cxrexplain.errors import InvalidInputError

FINDINGS = ["Atelectasis", "Edema", "Effusion", "Nodule"]


def four_findings() -> cx.Classifier:
    return cx.Classifier(conv_gap_dense(4, "sigmoid", size=16, filters=(6,), seed=3), FINDINGS)


def test_each_finding_is_held_to_its_own_threshold() -> None:
    clf = four_findings()
    images = random_images(12, 16, seed=1)
    probabilities = clf.predict_proba(images)
    # thresholds that split the images differently for every finding
    chosen = {name: float(np.median(probabilities[:, k])) for k, name in enumerate(FINDINGS)}
    chosen["Nodule"] = float(np.quantile(probabilities[:, 3], 0.25))
    clf.threshold = chosen
    assert clf.thresholds.tolist() == pytest.approx([chosen[n] for n in FINDINGS])
    expected = probabilities >= np.array([chosen[n] for n in FINDINGS], np.float32)[None]
    predictions = clf.predict(images)
    for row, prediction in zip(expected, predictions, strict=True):
        assert prediction.findings == tuple(n for n, hit in zip(FINDINGS, row, strict=True)
                                            if hit)
    # one shared threshold would give other findings: the per-finding points matter
    shared = four_findings()
    shared.threshold = 0.5
    assert [p.findings for p in shared.predict(images)] != [p.findings for p in predictions]


def test_unset_findings_keep_the_default_and_the_file_keeps_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clf = four_findings()
    clf.threshold = {"Effusion": 0.3}
    assert clf.thresholds.tolist() == pytest.approx([0.5, 0.5, 0.3, 0.5])
    loaded = cx.Classifier.load(clf.save(tmp_path / "multi.keras"))
    assert loaded.threshold == {"Effusion": pytest.approx(0.3)}
    images = random_images(5, 16, seed=2)
    assert [p.findings for p in loaded.predict(images)] == [p.findings for p in
                                                              clf.predict(images)]
    exp = cx.GradCAM(loaded).explain(images)  # the most probable finding is explained
    assert exp.targets.tolist() == loaded.predict_proba(images).argmax(axis=1).tolist()


@pytest.mark.parametrize(("model", "value", "message"), [
    (lambda: conv_gap_dense(3, "softmax", size=16), {"a": 0.3}, "multi-label"),
    (lambda: conv_gap_dense(1, "sigmoid", size=16), {"class_1": 0.3}, "multi-label"),
    (lambda: conv_gap_dense(4, "sigmoid", size=16), {"Mass": 0.3}, "unknown findings"),
    (lambda: conv_gap_dense(4, "sigmoid", size=16), {"Edema": 1.5}, "threshold\\['Edema'\\]"),
])
def test_bad_thresholds(model, value, message) -> None:  # type: ignore[no-untyped-def]
    names = FINDINGS if model().output_shape[-1] == 4 else None
    with pytest.raises(InvalidInputError, match=message):
        cx.Classifier(model(), names, threshold=value)


def test_threshold_for_recall_picks_one_point_per_finding() -> None:
    clf = four_findings()
    images = random_images(40, 16, seed=4)
    probabilities = clf.predict_proba(images)
    rng = np.random.default_rng(0)
    labels = (rng.random((40, 4)) < 0.4).astype(np.int64)
    labels[0] = 1  # every finding has positives
    clf.threshold = {"Nodule": 0.9}
    found = cx.training.threshold_for_recall(clf, (images, labels), recall=0.75,
                                             positive=["Atelectasis", "Effusion"])
    assert set(found) == {"Atelectasis", "Effusion"}
    for name, value in found.items():
        k = FINDINGS.index(name)
        positives = np.sort(probabilities[labels[:, k] == 1, k].astype(np.float64))[::-1]
        assert value == pytest.approx(positives[math.ceil(0.75 * len(positives)) - 1])
        reached = (probabilities[labels[:, k] == 1, k] >= value).mean()
        assert reached >= 0.75
    assert clf.threshold["Nodule"] == pytest.approx(0.9)  # kept
    every = cx.training.threshold_for_recall(clf, (images, labels), recall=1.0)
    assert set(every) == set(FINDINGS)
    with pytest.raises(InvalidInputError, match=r"\(N, 4\)"):
        cx.training.threshold_for_recall(clf, (images, labels[:, 0]), recall=0.9)
    with pytest.raises(InvalidInputError, match="unknown findings"):
        cx.training.threshold_for_recall(clf, (images, labels), recall=0.9, positive="Mass")
