"""Attention rollout (Abnar & Zuidema, ACL 2020), for vision transformers.

For each attention layer l (in call order), its attention weights ``W_l`` ``(heads, T, T)`` are
fused over the heads (mean, as the paper; or max/min, as jacobgil's ``vit-explain``), the
identity added for the residual connection and the rows renormalised:
``A_l = (fuse(W_l) + I) / rowsum``. The rollout is the product ``R = A_L ... A_2 A_1``; the
map is the class token's row of ``R`` over the patch tokens (``R[0, p:]``, p leading tokens),
folded into the token grid (:mod:`cxrexplain.explain._tokens`'s rule; a model without a class
token gets the mean of the rows). It needs no gradients and no target: the map is the same
for every class (``class_specific = False``).

The weights come from the model run as it is: each ``keras.layers.MultiHeadAttention`` is
intercepted while the pass is traced and called with ``return_attention_scores=True`` (its
output passes on unchanged), so the user's model is not rebuilt or altered. A model without
attention layers (a CNN) raises :class:`~cxrexplain.errors.ModelStructureError`; the class's
``requires = "attention"`` and :meth:`~cxrexplain.Explainer.applies_to` let callers that run
every registered method (the demo) skip it.

Example:
    >>> import cxrexplain as cx
    >>> inputs = keras.Input((32, 32, 1))  # 8 px patches: 16 tokens, no class token
    >>> tokens = keras.layers.Reshape((16, 8))(keras.layers.Conv2D(8, 8, strides=8)(inputs))
    >>> tokens = keras.layers.MultiHeadAttention(2, 4, name="attention")(tokens, tokens)
    >>> pooled = keras.layers.GlobalAveragePooling1D()(tokens)
    >>> vit = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    >>> exp = cx.AttentionRollout(vit).explain(batch)
    >>> exp.method, exp.raw.shape, exp.heatmaps.shape, exp.layer
    ('attention_rollout', (4, 4, 4), (4, 32, 32), 'attention')
    >>> cx.AttentionRollout.applies_to(vit), cx.AttentionRollout.applies_to(clf)
    (True, False)
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import tensorflow as tf

from cxrexplain import _passes
from cxrexplain._checks import describe
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.explain._tokens import is_attention, token_layout
from cxrexplain.explain.base import Explainer
from cxrexplain.explain.kinds import LayerExplainer
from cxrexplain.explain.layers import find_layers

__all__ = ["AttentionRollout"]

_FUSIONS = ("mean", "max", "min")


class AttentionRollout(LayerExplainer):
    """Attention rollout: attention weights (plus identity) multiplied through the layers.

    Class-agnostic: every target gives the same map. For vision transformers built of
    ``keras.layers.MultiHeadAttention`` (keras-hub's too); :attr:`layer` is the last
    attention layer's path.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model`` with attention layers.
        layer: ``None``: every attention layer of the forward pass is rolled out.
        head_fusion: How the heads' weights are fused: ``"mean"`` (the paper), ``"max"`` or
            ``"min"``.
        token_grid: ``(rows, columns)`` of the patch tokens, when the count of tokens does not
            say it (see the token-grid rule).
        prefix_tokens: The number of leading (class/extra) tokens, when the count does not
            say it.

    Raises:
        ModelStructureError: The model has no attention layer, or its tokens fold into no
            grid.
        InvalidInputError: A layer, or an unknown ``head_fusion``.

    Example:
        >>> AttentionRollout(clf)  # a CNN  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cxrexplain.errors.ModelStructureError: model: attention rollout needs attention ...
        >>> AttentionRollout.requires, AttentionRollout.class_specific
        ('attention', False)
    """

    name: ClassVar[str] = "attention_rollout"
    aliases: ClassVar[tuple[str, ...]] = ("attention-rollout", "rollout")
    needs_gradients: ClassVar[bool] = False
    class_specific: ClassVar[bool] = False
    requires: ClassVar[str | None] = "attention"

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        layer: str | keras.layers.Layer | None = None,
        head_fusion: str = "mean",
        token_grid: tuple[int, int] | None = None,
        prefix_tokens: int | None = None,
    ) -> None:
        if layer is not None:
            raise InvalidInputError(
                f"layer: AttentionRollout rolls out every attention layer; expected None, got "
                f"{describe(layer)}")
        if head_fusion not in _FUSIONS:
            raise InvalidInputError(
                f"head_fusion: expected one of {list(_FUSIONS)}, got {describe(head_fusion)}")
        self.head_fusion = head_fusion
        self._attention: list[keras.layers.Layer] = []
        self._weights: list[tf.Tensor] = []
        super().__init__(model, token_grid=token_grid, prefix_tokens=prefix_tokens)

    def _options(self) -> dict[str, Any]:
        return {"head_fusion": self.head_fusion}

    def _twin_options(self) -> dict[str, Any]:
        return {**self._token_args, **self._options()}

    def _inspect(self, input_shape: tuple[int, int, int]) -> None:
        model = self.model
        self._structure = _passes.shared(model, ("layers", tuple(input_shape)),
                                         lambda: find_layers(model, input_shape))
        calls = [c for c in self._structure.calls if is_attention(c.layer)]
        if not calls:
            raise ModelStructureError(
                "model: attention rollout needs attention layers (keras.layers."
                "MultiHeadAttention, as in a vision transformer); this model has none. Use a "
                "CAM-family method or an input method for it")
        layers: list[keras.layers.Layer] = []
        for call in calls:
            if all(call.layer is not other for other in layers):
                layers.append(call.layer)
        self._attention = layers
        self._target = calls[-1]
        self._layout = token_layout(self._target.output_shape[1],
                                    where=f"layer '{self._target.path}'", **self._token_args)

    def _hooks(self) -> list[tuple[keras.layers.Layer, Any]]:
        """Each attention layer called for its weights too; the head's logits captured."""
        weights: list[tf.Tensor] = []
        self._weights = weights

        def with_weights(original: Any, *args: Any, **kwargs: Any) -> Any:
            wanted = bool(kwargs.get("return_attention_scores", False))
            kwargs["return_attention_scores"] = True
            output, scores = original(*args, **kwargs)
            weights.append(tf.cast(scores, tf.float32))
            return (output, scores) if wanted else output

        head = Explainer._hooks(self)  # not super(): see LayerExplainer._crop_boxes
        return [*((layer, with_weights) for layer in self._attention), *head]

    def _features(self, images: tf.Tensor) -> tf.Tensor:
        if not self._weights:  # pragma: no cover - the hooks always fire on a traced call
            raise ModelStructureError("model: no attention layer was called")
        assert self._layout is not None
        return rollout(tf.stack(self._weights, axis=1), self._layout,
                       self.head_fusion)[..., None]

    def combine(self, activations: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """The rollout's class-token row folded into the grid (computed in the pass)."""
        return activations[..., 0]


def rollout(weights: tf.Tensor, layout: tuple[int, int, int], head_fusion: str = "mean"
            ) -> tf.Tensor:
    """``(N, h, w)`` attention rollout from ``(N, L, heads, T, T)`` attention weights.

    Args:
        weights: Each layer's attention weights, layers in call order.
        layout: ``(prefix, h, w)``: leading tokens and the patch grid (``h * w = T - prefix``).
        head_fusion: ``"mean"``, ``"max"`` or ``"min"`` over the heads.

    Returns:
        The class token's row of ``A_L ... A_1`` over the patch tokens (without a leading
        token: the mean of the rows), folded row-major into ``(h, w)``.

    Example:
        >>> uniform = tf.fill([1, 2, 1, 5, 5], 0.2)  # 2 layers, 1 head, 1 + 4 tokens
        >>> rollout(uniform, (1, 2, 2)).numpy().round(3).tolist()  # ((3 U + I) / 4)[0, 1:]
        [[[0.15, 0.15], [0.15, 0.15]]]
    """
    fuse = {"mean": tf.reduce_mean, "max": tf.reduce_max, "min": tf.reduce_min}[head_fusion]
    fused = fuse(weights, axis=2)  # (N, L, T, T)
    count = tf.shape(fused)[-1]
    step = fused + tf.eye(count, dtype=fused.dtype)
    step = step / tf.reduce_sum(step, axis=-1, keepdims=True)
    result = tf.eye(count, batch_shape=[tf.shape(fused)[0]], dtype=fused.dtype)
    for index in range(int(weights.shape[1])):
        result = tf.matmul(step[:, index], result)
    prefix, rows, cols = layout
    row = result[:, 0, prefix:] if prefix else tf.reduce_mean(result, axis=1)
    return tf.reshape(row, [-1, rows, cols])
