"""Ablation-CAM (Desai & Ramaswamy, WACV 2020).

``L = ReLU(sum_k w_k A_k)`` with ``w_k = (y_c - y_c^k) / y_c``: ``y_c`` the target class score
before softmax/sigmoid, ``y_c^k`` the same score when channel k of the target layer's
activations is set to zero (ablated) and the rest of the model runs on. This is the formula of
pytorch-grad-cam's ``ablation_cam.py`` (``(original_scores - ablated) / original_scores`` on the
raw outputs, i.e. the logits); where that library ablates a layer whose activations have
negative values with ``min - 1e7`` instead of 0, this module keeps the paper's zero (the two
agree on ReLU outputs, whose minimum is 0). A score ``y_c = 0`` gives weights 0.

No gradients. One pass of the model above the target layer per (image, channel) pair, all
pairs batched (``ablation_batch_size`` pairs per call of one compiled function): the target
layer's output is replaced by the ablated activations through the same interception that
captures it (:func:`~cxrexplain.explain.layers.intercept`), and the layers called before it
are stubbed to return zeros of their probed shapes, so the pass costs only the part of the
model above the layer. A model whose layers before the target also feed layers after it (a
skip connection around the target) cannot be cut that way: the first batch checks that the
cut pass reproduces the scores of the whole model and, if not, every pass runs the whole
model on the repeated images (as pytorch-grad-cam does), with the same results.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.AblationCAM(clf).explain(batch)
    >>> exp.method, exp.heatmaps.shape, exp.raw.shape
    ('ablationcam', (4, 32, 32), (4, 16, 16))
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from cxrexplain import _keras_utils, _passes
from cxrexplain._checks import check_int
from cxrexplain.classifier import Classifier
from cxrexplain.explain._channels import check_max_channels, score_pairs, top_channel_pairs
from cxrexplain.explain._tokens import from_grid
from cxrexplain.explain.kinds import LayerExplainer
from cxrexplain.explain.layers import intercept
from cxrexplain.explain.targets import logit_hook, logits_from_outputs, target_scores

__all__ = ["AblationCAM"]

_CUT_TOLERANCE = 1e-3
"""Largest relative difference between the cut pass's and the whole model's scores."""


class AblationCAM(LayerExplainer):
    """Ablation-CAM: channel weights from the score drop when each channel is zeroed.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        layer: Target layer; default the last 4-D layer before the global pooling.
        max_channels: Ablate only each image's top-N channels by mean activation (None: all);
            the others get weight 0 (pytorch-grad-cam's ``ratio_channels_to_ablate``).
        ablation_batch_size: (image, channel) pairs per pass of the model above the layer;
            bounds the memory.
        token_grid: For a transformer's token layer: ``(rows, columns)`` of the patch
            tokens, when their count does not say it (see :class:`LayerExplainer`).
        prefix_tokens: For a token layer: the number of leading (class/extra) tokens.

    Example:
        >>> exp = AblationCAM(clf, max_channels=4, ablation_batch_size=16).explain(batch)
        >>> exp.heatmaps.shape, exp.raw.shape
        ((4, 32, 32), (4, 16, 16))
    """

    name: ClassVar[str] = "ablationcam"
    aliases: ClassVar[tuple[str, ...]] = ("ablation-cam", "ablation_cam")
    needs_gradients: ClassVar[bool] = False

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        layer: str | keras.layers.Layer | None = None,
        max_channels: int | None = None,
        ablation_batch_size: int = 64,
        token_grid: tuple[int, int] | None = None,
        prefix_tokens: int | None = None,
    ) -> None:
        self.max_channels = check_max_channels(max_channels)
        self.ablation_batch_size = check_int(ablation_batch_size, "ablation_batch_size")
        self._cut: bool | None = None
        self._state: dict[str, Any] = {}  # the tensors the hooks read while a pass is traced
        super().__init__(model, layer=layer, token_grid=token_grid,
                         prefix_tokens=prefix_tokens)

    def _options(self) -> dict[str, Any]:
        return {"max_channels": self.max_channels,
                "ablation_batch_size": self.ablation_batch_size}

    def weights(self, images: tf.Tensor, activations: tf.Tensor,
                targets: tf.Tensor) -> np.ndarray:
        """``(N, k)`` the channel weights ``(y_c - y_c^k) / y_c`` (0 for channels not ablated).

        Args:
            images: ``(N, H, W, C)`` the batch as the model takes it.
            activations: ``(N, h, w, k)`` the target layer's activations for it.
            targets: ``(N,)`` the target classes.

        Returns:
            float32 weights.

        Example:
            >>> explainer = AblationCAM(clf)
            >>> _, acts = cx.explain.layers.layer_activations(clf.model, batch, explainer.layer)
            >>> explainer.weights(tf.constant(batch), tf.constant(acts), tf.constant([0] * 4)).shape
            (4, 8)
        """
        maps = np.asarray(activations, np.float32)
        count, channels = maps.shape[0], maps.shape[-1]
        images = tf.convert_to_tensor(images, tf.float32)
        activations = tf.convert_to_tensor(maps)
        targets = tf.cast(targets, tf.int32)
        originals = np.arange(count, dtype=np.int32)
        unablated = np.full(count, -1, np.int32)
        if self._cut is None and self._layout is not None:
            self._cut = False  # tokens: the leading tokens come from the whole model
        if self._cut is None:
            whole = self._scores(False, images, activations, targets, originals, unablated)
            cut = self._scores(True, images, activations, targets, originals, unablated)
            self._cut = bool(np.all(np.abs(cut - whole)
                                    <= _CUT_TOLERANCE * (1.0 + np.abs(whole))))
            original = whole
        else:
            original = self._scores(self._cut, images, activations, targets, originals,
                                    unablated)
        pair_image, pair_channel = top_channel_pairs(maps, self.max_channels)
        use_cut = bool(self._cut)
        ablated = score_pairs(
            lambda chosen, zeroed: self._scores(use_cut, images, activations, targets, chosen,
                                                zeroed),
            pair_image, pair_channel, chunk=self.ablation_batch_size)
        weights = np.zeros((count, channels), np.float32)
        drop = original[pair_image] - ablated
        weights[pair_image, pair_channel] = np.divide(
            drop, original[pair_image], out=np.zeros_like(drop), where=original[pair_image] != 0)
        return weights

    def combine_with_model(self, images: tf.Tensor, activations: tf.Tensor,
                           targets: tf.Tensor) -> tf.Tensor:
        """``sum_k w_k A_k`` with ``w_k = (y_c - y_c^k) / y_c`` (:meth:`weights`)."""
        weights = self.weights(images, activations, targets)
        return tf.einsum("nhwk,nk->nhw", tf.cast(activations, tf.float32), tf.constant(weights))

    # ------------------------------------------------------------------ the ablated passes
    def _scores(self, cut: bool, images: tf.Tensor, activations: tf.Tensor, targets: tf.Tensor,
                pair_image: np.ndarray, pair_channel: np.ndarray) -> np.ndarray:
        run = self._ablated_function(cut)
        return np.asarray(run(images, activations, targets, tf.constant(pair_image),
                              tf.constant(pair_channel)))

    def _ablated_function(self, cut: bool) -> Any:
        specs = (
            self._image_spec(),
            tf.TensorSpec([None, None, None, None], tf.float32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.int32),
        )
        clf = self.classifier
        key = ("ablationcam", cut, self.layer, self._layout, clf.output_activation, clf.multilabel,
               clf.num_classes)

        def trace() -> Any:
            with self._ablation(cut):
                return tf.function(self._ablated_graph).get_concrete_function(*specs)

        return _passes.shared(self.model, key, trace)

    @contextlib.contextmanager
    def _ablation(self, cut: bool) -> Any:
        """While tracing: the target layer returns the ablated activations, the head's logits
        are captured, and (``cut``) the layers before the target return zeros."""
        assert self._structure is not None
        assert self._target is not None
        target = self._target.layer
        captured = self._captured
        state = self._state

        layout = self._layout

        def replace(original: Any, *args: Any, **kwargs: Any) -> Any:
            if layout is None:
                return tf.cast(state["ablated"], target.compute_dtype)
            # tokens: the ablated grid among the layer's own leading (class) tokens
            tokens = tf.cast(original(*args, **kwargs), tf.float32)
            return tf.cast(from_grid(tokens, state["ablated"], layout), target.compute_dtype)

        hooks: list[tuple[keras.layers.Layer, Any]] = [(target, replace)]
        if cut:
            calls = self._structure.calls
            end = max(i for i, call in enumerate(calls) if call.layer is target)
            after = {id(call.layer) for call in calls[end:]}
            shapes: dict[int, tuple[keras.layers.Layer, tuple[int, ...]]] = {}
            for call in calls[:end]:
                if id(call.layer) not in after:
                    shapes[id(call.layer)] = (call.layer, call.output_shape[1:])
            for layer, shape in shapes.values():
                hooks.append((layer, _zeros_hook(layer, shape, state)))
        head = _keras_utils.output_layer(self.model)
        hook = logit_hook(head, captured) if head is not None else None
        if hook is not None and head is not target:
            hooks.append((head, hook))
        with contextlib.ExitStack() as stack:
            for layer, layer_hook in hooks:
                stack.enter_context(intercept(layer, layer_hook))
            yield

    def _ablated_graph(self, images: tf.Tensor, activations: tf.Tensor, targets: tf.Tensor,
                       pair_image: tf.Tensor, pair_channel: tf.Tensor) -> tf.Tensor:
        """Target score of each (image, channel) pair with that channel zeroed (-1: none)."""
        chosen = tf.gather(activations, pair_image)
        keep = 1.0 - tf.one_hot(pair_channel, tf.shape(activations)[-1], dtype=tf.float32)
        self._state["ablated"] = chosen * keep[:, None, None, :]
        self._state["batch"] = tf.shape(pair_image)[0]
        self._captured.logits = None
        inputs = tf.gather(images, pair_image)
        outputs = self.model(inputs, training=False)
        logits = logits_from_outputs(outputs, self._captured.logits,
                                     activation=self.classifier.output_activation,
                                     owner=type(self).__name__)
        return target_scores(logits, tf.gather(targets, pair_image))


def _zeros_hook(layer: keras.layers.Layer, shape: tuple[int, ...], state: dict[str, Any]
                ) -> Any:
    """A hook that skips ``layer``: zeros of its probed output shape, for the pass's batch."""

    def zeros(original: Any, *args: Any, **kwargs: Any) -> Any:
        return tf.zeros(tf.concat([[state["batch"]], tf.constant(shape, tf.int32)], 0),
                        dtype=layer.compute_dtype)

    return zeros
