"""Arun et al.'s trust tests: repeatability, reproducibility and the random-pair floor (SSIM of
maps), alone and as columns of ``evaluate_explainers``."""

from __future__ import annotations

import math

import cv2
import keras
import numpy as np
import pytest
from tiny_models import cam_model, random_images, two_conv_model

import cxrexplain as cx
from cxrexplain.errors import InvalidInputError


def test_repeatability_is_ssim_and_resizes_the_second_stack() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 12, 12)), rng.random((3, 12, 12))
    np.testing.assert_allclose(cx.metrics.repeatability(a, b), cx.metrics.ssim(a, b),
                               rtol=1e-6)
    big = rng.random((3, 24, 20)).astype(np.float32)
    small = np.stack([cv2.resize(m, (12, 12), interpolation=cv2.INTER_LINEAR) for m in big])
    np.testing.assert_allclose(cx.metrics.reproducibility(a, big), cx.metrics.ssim(a, small),
                               rtol=1e-5)
    with pytest.raises(InvalidInputError, match="one map per film"):
        cx.metrics.repeatability(a, b[:2])


def test_pair_baseline_pairs_every_film_with_another() -> None:
    rng = np.random.default_rng(1)
    maps = rng.random((6, 10, 10))
    scores = cx.metrics.pair_baseline(maps, seed=3)
    every = np.array([[cx.metrics.ssim(maps[i], maps[j])[0] for j in range(6)]
                      for i in range(6)])
    partners = [int(np.argmin(np.abs(every[i] - scores[i]))) for i in range(6)]
    assert all(j != i for i, j in enumerate(partners))  # never itself
    assert sorted(partners) == list(range(6))  # a permutation: each film a partner once
    np.testing.assert_allclose(scores, every[np.arange(6), partners], rtol=1e-6)
    with pytest.raises(InvalidInputError, match="at least two"):
        cx.metrics.pair_baseline(maps[:1])


def test_evaluate_explainers_reports_the_trust_tests() -> None:
    images = random_images(5, size=16, seed=2)
    clf = cx.Classifier(cam_model(3), class_names=["a", "b", "c"])
    again = cx.Classifier(keras.models.clone_model(clf.model), class_names=["a", "b", "c"])
    again.model.set_weights(clf.model.get_weights())  # a perfectly repeatable "retraining"
    other = cx.Classifier(two_conv_model(3, size=20), class_names=["a", "b", "c"])
    table = cx.evaluate_explainers(clf, ["gradcam", "cam"], images, steps=3,
                                   randomization_layers=None, repeat=again, reproduce=other)
    assert table.metrics[-4:] == ["repeatability_ssim", "reproducibility_ssim", "pair_ssim",
                                  "seconds_per_image"]
    assert table.value("gradcam", "repeatability_ssim") == pytest.approx(1.0, abs=1e-6)
    mine = cx.GradCAM(clf).explain(images)
    theirs = cx.GradCAM(other).explain(other.prepare(clf.prepare(images)), mine.targets)
    expected = cx.metrics.reproducibility(mine.heatmaps, theirs.heatmaps).mean()
    assert table.value("gradcam", "reproducibility_ssim") == pytest.approx(expected, abs=1e-5)
    assert table.value("cam", "pair_ssim") == pytest.approx(
        cx.metrics.pair_baseline(cx.CAM(clf).explain(images).heatmaps, seed=0).mean(),
        abs=1e-5)
    assert math.isnan(table.value("random", "repeatability_ssim"))  # model-blind: n/a
    low, high = table.interval("gradcam", "reproducibility_ssim")
    assert low <= table.value("gradcam", "reproducibility_ssim") <= high
    assert "repeatability SSIM" in table.to_markdown()
