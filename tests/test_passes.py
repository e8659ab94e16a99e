"""Compiled passes are traced once per model and shared; the cache never keeps a model alive."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import keras
import numpy as np
import pytest
from rounding import output_tolerance
from tiny_models import conv_gap_dense, random_images

import cxrexplain as cx
from cxrexplain import _passes
from cxrexplain.explain.layers import intercept


@contextmanager
def python_calls(layer: keras.layers.Layer) -> Iterator[list[int]]:
    """Count how often the layer's Python ``call`` runs: once per trace (or eager pass)."""
    count = [0]

    def hook(original, *args, **kwargs):  # type: ignore[no-untyped-def]
        count[0] += 1
        return original(*args, **kwargs)

    with intercept(layer, hook):
        yield count


def _model() -> keras.Model:
    return conv_gap_dense(2, "softmax", size=24, filters=(4, 6))


def test_a_second_explainer_does_not_trace_again() -> None:
    model = _model()
    batch = random_images(3, 24)
    first = cx.GradCAM(cx.Classifier(model)).explain(batch)
    conv = model.layers[0]
    with python_calls(conv) as calls:
        # the README's one-liner: a new classifier and a new explainer per call
        again = cx.GradCAM(cx.Classifier(model)).explain(batch)
        twice = cx.GradCAM(model).explain(batch[:2])
    assert calls[0] == 0
    np.testing.assert_array_equal(again.heatmaps, first.heatmaps)
    np.testing.assert_array_equal(twice.heatmaps, first.heatmaps[:2])


def test_each_method_and_layer_traces_its_own_pass() -> None:
    model = _model()
    batch = random_images(2, 24)
    cx.GradCAM(model).explain(batch)
    conv = model.layers[0]
    with python_calls(conv) as calls:
        cx.HiResCAM(model).explain(batch)
    assert calls[0] == 1  # one trace for a new method
    with python_calls(conv) as calls:
        cx.GradCAM(model, layer=model.layers[0].name).explain(batch)
        cx.GradCAM(model, layer=model.layers[0].name).explain(batch)
    assert calls[0] == 1  # one trace for a new layer, then shared
    with python_calls(conv) as calls:
        cx.CAM(model).explain(batch)
    assert calls[0] == 1


def test_a_shared_pass_keeps_each_classifier_threshold() -> None:
    """The threshold is an input of the shared pass, not a constant traced into it."""
    model = conv_gap_dense(1, "sigmoid", size=24)
    batch = random_images(4, 24)
    low = cx.GradCAM(cx.Classifier(model, threshold=1e-6)).explain(batch)
    high = cx.GradCAM(cx.Classifier(model, threshold=1 - 1e-6)).explain(batch)
    assert low.targets.tolist() == [1, 1, 1, 1]
    assert high.targets.tolist() == [0, 0, 0, 0]


def test_a_different_head_reading_gets_its_own_pass() -> None:
    model = conv_gap_dense(2, None, size=24)  # logits
    batch = random_images(2, 24)
    logits = np.asarray(model(batch, training=False))
    as_logits = cx.Classifier(model, output_activation="linear").predict_proba(batch)
    as_given = cx.Classifier(model, output_activation="softmax").predict_proba(batch)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    # compiled passes against an eager call round apart (rounding.py)
    np.testing.assert_allclose(as_logits, expected, rtol=0, atol=output_tolerance(model))
    np.testing.assert_allclose(as_given, logits, rtol=0,
                               atol=output_tolerance(model, float(np.abs(logits).max())))


def test_predict_is_traced_once_and_shared() -> None:
    model = _model()
    batch = random_images(5, 24)
    expected = np.asarray(model(batch, training=False))
    first = cx.Classifier(model).predict_proba(batch, batch_size=2)
    tolerance = output_tolerance(model)  # compiled vs eager, batches of 2 vs 4 (rounding.py)
    np.testing.assert_allclose(first, expected, rtol=0, atol=tolerance)
    with python_calls(model.layers[0]) as calls:
        again = cx.Classifier(model).predict_proba(batch, batch_size=4)
    assert calls[0] == 0
    np.testing.assert_allclose(again, first, rtol=0, atol=tolerance)


def test_cam_records_no_gradient_tape() -> None:
    model = _model()
    explainer = cx.CAM(model)
    explainer.explain(random_images(1, 24))
    ops = {op.type for op in explainer._compiled.graph.get_operations()}
    assert not any("Grad" in kind for kind in ops), sorted(k for k in ops if "Grad" in k)
    grad = cx.GradCAM(model)
    grad.explain(random_images(1, 24))
    assert any("Grad" in op.type for op in grad._compiled.graph.get_operations())


@pytest.mark.parametrize("method", ["gradcam", "cam", "scorecam", "ablationcam", "rise", "deeplift",
                                    "lrp"])
def test_the_cache_does_not_keep_a_deleted_model_alive(method: str) -> None:
    model = _model()
    alive = weakref.ref(model)
    clf = cx.Classifier(model)
    explainer = cx.get_explainer(method)(clf)
    explainer.explain(random_images(2, 24))
    clf.predict_proba(random_images(2, 24))
    assert _passes.traced(model) >= 3  # layer probe, explain pass, predict pass
    del model, clf, explainer
    gc.collect()
    assert alive() is None
    assert all(key is not None for key in list(_passes._STORE.keys()))
