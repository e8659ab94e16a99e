"""Score-CAM (Wang et al., CVPR Workshops 2020).

Each channel's activation map, upsampled to the input size and min-max scaled to [0, 1], masks
the input; the channel's weight is the model's probability of the target class on the masked
image (as in the authors' implementation), and ``L = ReLU(sum_k w_k A_k)``. Channels whose map
is constant get weight 0. No gradients; one masked forward pass per channel, batched. Behind a
crop-mode lung focus the maps are in the crop's frame: each mask is put back on the film
(:meth:`~cxrexplain.lungs.focus.LungFocus.to_film`, 0 outside the crop box) before it masks
the film, so that the crop the model takes is the crop masked by the channel's map.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.ScoreCAM(clf, max_channels=64).explain(batch)
    >>> exp.method, exp.heatmaps.shape
    ('scorecam', (4, 32, 32))
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from cxrexplain import _passes
from cxrexplain._checks import check_int
from cxrexplain.classifier import Classifier
from cxrexplain.explain._channels import check_max_channels, score_pairs, top_channel_pairs
from cxrexplain.explain.kinds import LayerExplainer
from cxrexplain.lungs.focus import LungFocus

__all__ = ["ScoreCAM"]


class ScoreCAM(LayerExplainer):
    """Score-weighted CAM: channel weights from the model's score on channel-masked inputs.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        layer: Target layer; default the last 4-D layer before the global pooling.
        max_channels: Use only each image's top-N channels by mean activation (None: all).
            The cost is one forward pass per channel per image, so this bounds it.
        mask_batch_size: Masked images per forward pass.
        token_grid: For a transformer's token layer: ``(rows, columns)`` of the patch
            tokens, when their count does not say it (see :class:`LayerExplainer`).
        prefix_tokens: For a token layer: the number of leading (class/extra) tokens.

    Example:
        >>> exp = ScoreCAM(clf, max_channels=4).explain(batch)  # 4 of the layer's 8 maps
        >>> exp.heatmaps.shape, exp.raw.shape
        ((4, 32, 32), (4, 16, 16))
    """

    name: ClassVar[str] = "scorecam"
    aliases: ClassVar[tuple[str, ...]] = ("score-cam",)
    order: ClassVar[int] = 60
    needs_gradients: ClassVar[bool] = False

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        layer: str | keras.layers.Layer | None = None,
        max_channels: int | None = None,
        mask_batch_size: int = 64,
        token_grid: tuple[int, int] | None = None,
        prefix_tokens: int | None = None,
    ) -> None:
        self.max_channels = check_max_channels(max_channels)
        self.mask_batch_size = check_int(mask_batch_size, "mask_batch_size")
        self._masked: Any = None
        super().__init__(model, layer=layer, token_grid=token_grid,
                         prefix_tokens=prefix_tokens)

    def _options(self) -> dict[str, Any]:
        return {"max_channels": self.max_channels, "mask_batch_size": self.mask_batch_size}

    def combine_with_model(self, images: tf.Tensor, activations: tf.Tensor,
                           targets: tf.Tensor) -> tf.Tensor:
        """``sum_k w_k A_k``, ``w_k`` the target probability on the input masked by channel k."""
        maps = np.asarray(activations)  # (n, h, w, k)
        pair_image, pair_channel = top_channel_pairs(maps, self.max_channels)
        targets = tf.cast(targets, tf.int32)

        def masked(chosen: np.ndarray, channels: np.ndarray) -> object:
            return self._masked_scores()(images, activations, targets, tf.constant(chosen),
                                         tf.constant(channels), self._batch_crop_boxes)

        weights = np.zeros((maps.shape[0], maps.shape[-1]), np.float32)
        weights[pair_image, pair_channel] = score_pairs(masked, pair_image, pair_channel,
                                                        chunk=self.mask_batch_size)
        return tf.einsum("nhwk,nk->nhw", activations, tf.constant(weights))

    def _masked_scores(self) -> Any:
        if self._masked is None:
            specs = (
                self._image_spec(),
                tf.TensorSpec([None, None, None, None], tf.float32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([len(self._reframing()), None, 4], tf.float32),
            )
            clf = self.classifier
            key = ("scorecam-masked", clf.output_activation, clf.multilabel,
                   len(self._reframing()))
            self._masked = _passes.shared(
                self.model, key,
                lambda: tf.function(self._masked_graph).get_concrete_function(*specs))
        return self._masked

    def _masked_graph(self, images: tf.Tensor, maps: tf.Tensor, targets: tf.Tensor,
                      pair_image: tf.Tensor, pair_channel: tf.Tensor, boxes: tf.Tensor
                      ) -> tf.Tensor:
        """Target-class probability of each (image, channel) masked input; 0 if constant.

        ``boxes`` ``(k, n, 4)``: the crop boxes of the lung crops ahead of the layer (k = 0:
        none), through which each mask goes back to the film.
        """
        # the one (h, w) map of each (image, channel) pair, without copying all k channels
        by_channel = tf.transpose(maps, [0, 3, 1, 2])  # (n, k, h, w)
        channel_maps = tf.gather_nd(by_channel, tf.stack([pair_image, pair_channel], axis=1))
        upsampled = tf.image.resize(channel_maps[..., None], tf.shape(images)[1:3],
                                    method="bilinear")
        low = tf.reduce_min(upsampled, axis=[1, 2, 3], keepdims=True)
        high = tf.reduce_max(upsampled, axis=[1, 2, 3], keepdims=True)
        masks = tf.math.divide_no_nan(upsampled - low, high - low)
        for index in reversed(range(boxes.shape[0])):
            masks = LungFocus.to_film(masks, tf.gather(boxes[index], pair_image))
        masked = tf.gather(images, pair_image) * masks
        scores = self._target_probabilities(masked, tf.gather(targets, pair_image))
        constant = tf.reshape(high - low, [-1]) <= 0.0
        return tf.where(constant, tf.zeros_like(scores), scores)
