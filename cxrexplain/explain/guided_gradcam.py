"""Guided Grad-CAM (Selvaraju et al., ICCV 2017).

``M = reduce_c(G_c * up(L))``: the guided-backpropagation gradient ``G`` at the pixels
(:class:`~cxrexplain.GuidedBackprop`) times the Grad-CAM map ``L`` of the target layer
(:class:`~cxrexplain.GradCAM`, after its ReLU) upsampled bilinearly to the input, as in the
paper; the channels are reduced as Guided Backprop's (largest magnitude; ``absolute=False``:
signed sum, positive part kept). ``L`` enters scaled to [0, 1] per film (the map is scaled
again at the end, so the scale does not matter), in the film's pixels (behind a crop-mode
lung focus too).

The method is a layer explainer: its ``layer`` is Grad-CAM's target layer (the default, a
name, a nested path or a layer), and its maps are at the input's resolution. Each batch costs
the base's forward pass (the targets), Grad-CAM's pass and Guided Backprop's pass, each
compiled once per model and shared with those methods.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.GuidedGradCAM(clf).explain(batch)
    >>> exp.method, exp.layer, exp.heatmaps.shape, exp.raw.shape
    ('guided_gradcam', 'block2_relu', (4, 32, 32), (4, 32, 32))
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import tensorflow as tf

from cxrexplain._checks import check_int, describe
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.explain._gradients import reduce_channels
from cxrexplain.explain.gradcam import GradCAM
from cxrexplain.explain.guided_backprop import GuidedBackprop
from cxrexplain.explain.kinds import LayerExplainer

__all__ = ["GuidedGradCAM"]


class GuidedGradCAM(LayerExplainer):
    """Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model`` with ReLU activations.
        layer: Grad-CAM's target layer (name, nested path or object); default the last 4-D
            layer before the global pooling.
        absolute: ``True`` (default): largest magnitude over the channels; ``False``: the
            signed channel sum, positive part kept.
        sample_batch_size: Films per guided pass.

    Raises:
        ModelStructureError: No ReLU to guide, or no layer for Grad-CAM.

    Example:
        >>> heat = cx.GradCAM(clf).explain(batch).heatmaps
        >>> guided = np.abs(cx.GuidedBackprop(clf).attributions(batch)).max(axis=-1)
        >>> raw = GuidedGradCAM(clf).explain(batch).raw
        >>> bool(np.allclose(raw, guided * heat, atol=1e-6))
        True
    """

    name: ClassVar[str] = "guided_gradcam"
    aliases: ClassVar[tuple[str, ...]] = ("guided-gradcam", "guided-grad-cam", "guided_grad_cam",
                                          "guidedgradcam")

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        layer: str | keras.layers.Layer | None = None,
        absolute: bool = True,
        sample_batch_size: int = 32,
    ) -> None:
        if not isinstance(absolute, bool):
            raise InvalidInputError(f"absolute: expected True or False, got {describe(absolute)}")
        self.absolute = absolute
        self.sample_batch_size = check_int(sample_batch_size, "sample_batch_size")
        super().__init__(model, layer=layer)
        self._guided = GuidedBackprop(self.classifier, absolute=absolute,
                                      sample_batch_size=self.sample_batch_size)
        self._gradcam: GradCAM | None = None

    def _options(self) -> dict[str, Any]:
        return {"absolute": self.absolute, "sample_batch_size": self.sample_batch_size}

    def combine_with_model(self, images: tf.Tensor, activations: tf.Tensor | None,
                           targets: tf.Tensor) -> tf.Tensor:
        """``reduce_c(guided_c * up(Grad-CAM))`` at the input's resolution."""
        if self._gradcam is None:
            self._gradcam = GradCAM(self.classifier, layer=self.layer)
        batch = images.numpy()
        chosen = targets.numpy()
        heat = self._gradcam._explain_batch(batch, chosen)["heatmaps"]  # (N, H, W), film px
        guided = self._guided._attribute(images, tf.constant(chosen, tf.int32))
        return reduce_channels(guided * tf.constant(heat)[..., None], absolute=self.absolute,
                               kind="gradient")

    def _returns_features(self) -> bool:
        return False  # the activations are Grad-CAM's business, in its own pass

    def _combine_eagerly(self, images: tf.Tensor, features: tf.Tensor | None,
                         targets: tf.Tensor) -> tf.Tensor:
        return self.combine_with_model(images, features, targets)

    def _reframing(self) -> list[Any]:
        return []  # both factors are in the film's pixels already
