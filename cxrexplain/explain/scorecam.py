"""Score-CAM (Wang et al., CVPR Workshops 2020).

Each channel's activation map, upsampled to the input size and min-max scaled to [0, 1], masks
the input; the channel's weight is the model's probability of the target class on the masked
image (as in the authors' implementation), and ``L = ReLU(sum_k w_k A_k)``. Channels whose map
is constant get weight 0. No gradients; one masked forward pass per channel, batched.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.ScoreCAM(clf, max_channels=64).explain(batch)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from cxrexplain import _keras_utils
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.explain.base import Explainer, upsample_and_normalise

__all__ = ["ScoreCAM"]


class ScoreCAM(Explainer):
    """Score-weighted CAM: channel weights from the model's score on channel-masked inputs.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        layer: Target layer; default the last 4-D layer before the global pooling.
        max_channels: Use only each image's top-N channels by mean activation (None: all).
            The cost is one forward pass per channel per image, so this bounds it.
        mask_batch_size: Masked images per forward pass.

    Example:
        >>> exp = ScoreCAM(clf, max_channels=32).explain(batch)  # doctest: +SKIP
    """

    name: ClassVar[str] = "scorecam"
    needs_gradients: ClassVar[bool] = False

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        layer: str | keras.layers.Layer | None = None,
        max_channels: int | None = None,
        mask_batch_size: int = 64,
    ) -> None:
        if max_channels is not None and (
            not isinstance(max_channels, int) or isinstance(max_channels, bool)
            or max_channels < 1
        ):
            raise InvalidInputError(f"max_channels: expected a positive int, got {max_channels!r}")
        if not isinstance(mask_batch_size, int) or mask_batch_size < 1:
            raise InvalidInputError(
                f"mask_batch_size: expected a positive int, got {mask_batch_size!r}"
            )
        self.max_channels = max_channels
        self.mask_batch_size = mask_batch_size
        self._masked: Any = None
        self._weighted: Any = None
        super().__init__(model, layer=layer)

    def _options(self) -> dict[str, Any]:
        return {"max_channels": self.max_channels, "mask_batch_size": self.mask_batch_size}

    def combine(self, activations: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """Not used: Score-CAM's weights come from masked forward passes."""
        raise NotImplementedError

    def _graph(self, images: tf.Tensor, targets: tf.Tensor, threshold: tf.Tensor
               ) -> dict[str, tf.Tensor]:
        forward = self._forward(images, targets, threshold, gradients=False)
        return {
            "activations": forward["activations"],
            "targets": forward["targets"],
            "probabilities": forward["probabilities"],
            "scores": forward["scores"],
        }

    def _explain_batch(self, batch: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
        first = super()._explain_batch(batch, targets)
        activations = first.pop("activations")  # (n, h, w, k)
        n, _, _, channels = activations.shape
        mean = activations.mean(axis=(1, 2))
        keep = channels if self.max_channels is None else min(self.max_channels, channels)
        order = np.argsort(-mean, axis=1, kind="stable")[:, :keep]
        pairs_image = np.repeat(np.arange(n, dtype=np.int32), keep)
        pairs_channel = order.reshape(-1).astype(np.int32)
        weights = np.zeros((n, channels), np.float32)
        images = tf.constant(batch)
        maps = tf.constant(activations)
        chosen = tf.constant(first["targets"].astype(np.int32))
        for start in range(0, len(pairs_image), self.mask_batch_size):
            stop = start + self.mask_batch_size
            scores = self._masked_scores()(
                images, maps, chosen,
                tf.constant(pairs_image[start:stop]), tf.constant(pairs_channel[start:stop]),
            )
            weights[pairs_image[start:stop], pairs_channel[start:stop]] = np.asarray(scores)
        heatmaps, raw = self._weighted_maps()(maps, tf.constant(weights), tf.shape(images)[1:3])
        first.update(heatmaps=np.asarray(heatmaps), raw=np.asarray(raw))
        return first

    def _masked_scores(self) -> Any:
        if self._masked is None:
            self._masked = tf.function(self._masked_graph).get_concrete_function(
                tf.TensorSpec([None, None, None, None], tf.float32),
                tf.TensorSpec([None, None, None, None], tf.float32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.int32),
            )
        return self._masked

    def _masked_graph(self, images: tf.Tensor, maps: tf.Tensor, targets: tf.Tensor,
                      pair_image: tf.Tensor, pair_channel: tf.Tensor) -> tf.Tensor:
        """Target-class probability of each (image, channel) masked input; 0 if constant."""
        # the one (h, w) map of each (image, channel) pair, without copying all k channels
        by_channel = tf.transpose(maps, [0, 3, 1, 2])  # (n, k, h, w)
        channel_maps = tf.gather_nd(by_channel, tf.stack([pair_image, pair_channel], axis=1))
        upsampled = tf.image.resize(channel_maps[..., None], tf.shape(images)[1:3],
                                    method="bilinear")
        low = tf.reduce_min(upsampled, axis=[1, 2, 3], keepdims=True)
        high = tf.reduce_max(upsampled, axis=[1, 2, 3], keepdims=True)
        masks = tf.math.divide_no_nan(upsampled - low, high - low)
        masked = tf.gather(images, pair_image) * masks
        outputs = self.model(masked, training=False)
        probabilities = _keras_utils.to_probabilities(
            outputs, activation=self.classifier.output_activation,
            multilabel=self.classifier.multilabel,
        )
        scores = tf.gather(probabilities, tf.gather(targets, pair_image), axis=1, batch_dims=1)
        constant = tf.reshape(high - low, [-1]) <= 0.0
        return tf.where(constant, tf.zeros_like(scores), scores)

    def _weighted_maps(self) -> Any:
        if self._weighted is None:
            self._weighted = tf.function(_weighted_graph).get_concrete_function(
                tf.TensorSpec([None, None, None, None], tf.float32),
                tf.TensorSpec([None, None], tf.float32),
                tf.TensorSpec([2], tf.int32),
            )
        return self._weighted


def _weighted_graph(maps: tf.Tensor, weights: tf.Tensor, size: tf.Tensor
                    ) -> tuple[tf.Tensor, tf.Tensor]:
    raw = tf.nn.relu(tf.einsum("nhwk,nk->nhw", maps, weights))
    return upsample_and_normalise(raw, size), raw
