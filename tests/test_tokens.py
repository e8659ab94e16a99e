"""Token models (issue 25): the CAM family on a vision transformer's patch tokens and attention
rollout (Abnar & Zuidema 2020), against NumPy re-derivations from token activations, gradients
and attention matrices captured outside the library (a sub-model of the functional ViT and the
attention layers called by hand), and a planted case with uniform attention."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import ClassToken, FirstToken, cam_model, random_images, tiny_vit

import cxrexplain as cx
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.explain._tokens import from_grid, to_grid, token_layout

SIZE = 32  # 8 px patches: a 4 x 4 grid of 16 patch tokens after one class token


@pytest.fixture(scope="module")
def vit() -> keras.Model:
    return tiny_vit(3, "softmax", size=SIZE, seed=1)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return random_images(3, size=SIZE, seed=4)


def _tokens_and_gradients(model: keras.Model, images: np.ndarray, layer: str,
                          targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The layer's ``(N, T, D)`` tokens and the gradients of the target logits (before the
    softmax: the head's Dense applied by hand to the class token) with respect to them."""
    inner = keras.Model(model.input, [model.get_layer(layer).output,
                                       model.get_layer("cls").output])
    kernel, bias = model.get_layer("head").get_weights()
    with tf.GradientTape() as tape:
        tokens, pooled = inner(images, training=False)
        logits = tf.matmul(pooled, kernel) + bias
        score = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
    return tokens.numpy(), tape.gradient(score, tokens).numpy()


def _upsampled(raw: np.ndarray, size: int) -> np.ndarray:
    heat = tf.image.resize(raw[..., None], (size, size), method="bilinear").numpy()[..., 0]
    heat = np.maximum(heat, 0)
    peak = heat.max(axis=(1, 2), keepdims=True)
    return np.divide(heat, peak, out=np.zeros_like(heat), where=peak > 0)


# ------------------------------------------------------------------ the token grid
def test_layout_rule() -> None:
    assert token_layout(17) == (1, 4, 4)  # one class token before a 4 x 4 grid
    assert token_layout(197) == (1, 14, 14)  # ViT-B/16 at 224 px
    assert token_layout(16) == (0, 4, 4)  # no class token
    assert token_layout(19, prefix_tokens=3) == (3, 4, 4)
    assert token_layout(17, token_grid=(2, 8)) == (1, 2, 8)
    assert token_layout(18, token_grid=(2, 8), prefix_tokens=2) == (2, 2, 8)
    with pytest.raises(ModelStructureError, match=r"19 tokens.*token_grid=.*prefix_tokens="):
        token_layout(19)
    with pytest.raises(ModelStructureError, match="17 tokens"):
        token_layout(17, token_grid=(4, 5))
    with pytest.raises(InvalidInputError, match="token_grid"):
        token_layout(17, token_grid=(4,))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="prefix_tokens"):
        token_layout(17, prefix_tokens=-1)


def test_grid_is_row_major_and_round_trips() -> None:
    tokens = tf.reshape(tf.range(2 * 7 * 3, dtype=tf.float32), (2, 7, 3))
    grid = to_grid(tokens, (1, 2, 3))
    assert grid.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(grid.numpy()[0, 1, 0], tokens.numpy()[0, 4])  # token 1 + 3
    np.testing.assert_array_equal(from_grid(tokens, grid, (1, 2, 3)).numpy(), tokens.numpy())


# ------------------------------------------------------------------ Grad-CAM on tokens
def test_default_target_is_the_last_blocks_attention_input(vit: keras.Model) -> None:
    assert cx.GradCAM(vit).layer == "norm1_1"  # pytorch-grad-cam's blocks[-1].norm1
    # not the 4-D patch embedding, the only layer a CNN rule would find
    assert cx.GradCAM(cam_model()).layer == "last_conv"  # CNNs unchanged


def test_gradcam_on_tokens_equals_numpy(vit: keras.Model, images: np.ndarray) -> None:
    targets = np.array([0, 2, 1])
    exp = cx.GradCAM(vit).explain(images, targets=targets)
    tokens, grads = _tokens_and_gradients(vit, images, "norm1_1", targets)
    assert tokens.shape == (3, 17, 16)
    patches, patch_grads = tokens[:, 1:], grads[:, 1:]  # the class token dropped
    alpha = patch_grads.mean(axis=1)  # (N, D): the mean over the 16 patch tokens
    expected = np.maximum(np.einsum("ntd,nd->nt", patches, alpha), 0).reshape(3, 4, 4)
    assert exp.raw.shape == (3, 4, 4) and expected.max() > 0
    np.testing.assert_allclose(exp.raw, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(exp.heatmaps, _upsampled(expected, SIZE), atol=1e-4)
    # the class token counts: its gradient is not 0, and folding tokens 0..15 instead
    # (the class token kept, the last patch dropped) gives another map
    assert np.abs(grads[:, 0]).max() > 1e-4
    shifted = np.maximum(np.einsum("ntd,nd->nt", tokens[:, :16], grads[:, :16].mean(axis=1)),
                         0).reshape(3, 4, 4)
    assert not np.allclose(exp.raw, shifted, atol=1e-4)


def test_cam_family_runs_on_tokens(vit: keras.Model, images: np.ndarray) -> None:
    targets = np.array([0, 2, 1])
    tokens, grads = _tokens_and_gradients(vit, images, "norm1_1", targets)
    hires = np.maximum(np.einsum("ntd,ntd->nt", tokens[:, 1:], grads[:, 1:]), 0)
    exp = cx.HiResCAM(vit).explain(images, targets=targets)
    np.testing.assert_allclose(exp.raw, hires.reshape(3, 4, 4), rtol=1e-4, atol=1e-6)
    for name in ("gradcampp", "layercam", "xgradcam", "eigencam", "scorecam"):
        out = cx.get_explainer(name)(vit).explain(images, targets=targets)
        assert out.raw.shape == (3, 4, 4), name
        assert np.isfinite(out.heatmaps).all() and out.heatmaps.max() > 0, name


def _logits_above_norm1_1(model: keras.Model, images: np.ndarray, tokens: np.ndarray
                          ) -> np.ndarray:
    """The logits when the last block's ``norm1_1`` outputs ``tokens`` (the layers above it
    called by hand; the residual stream below it from the images)."""
    stream = keras.Model(model.input, model.get_layer("residual2_0").output)(images)
    y = tf.constant(tokens)
    x = stream + model.get_layer("attention_1")(y, y)
    h = model.get_layer("mlp1_1")(model.get_layer("norm2_1")(x))
    x = x + model.get_layer("mlp2_1")(h)
    pooled = model.get_layer("norm")(x)[:, 0]
    kernel, bias = model.get_layer("head").get_weights()
    return np.asarray(tf.matmul(pooled, kernel) + bias)


def test_ablationcam_on_tokens_equals_numpy(vit: keras.Model, images: np.ndarray) -> None:
    targets = np.array([0, 2, 1])
    tokens, _ = _tokens_and_gradients(vit, images, "norm1_1", targets)
    rows = np.arange(3)
    score = _logits_above_norm1_1(vit, images, tokens)[rows, targets]
    weights = np.zeros((3, 16))
    for k in range(16):  # channel k of the patch tokens zeroed, the class token kept
        ablated = tokens.copy()
        ablated[:, 1:, k] = 0.0
        weights[:, k] = (score - _logits_above_norm1_1(vit, images, ablated)[rows, targets]
                         ) / score
    expected = np.maximum(np.einsum("ntd,nd->nt", tokens[:, 1:], weights), 0).reshape(3, 4, 4)
    exp = cx.AblationCAM(vit).explain(images, targets=targets)
    assert expected.max() > 0
    np.testing.assert_allclose(exp.raw, expected, rtol=1e-3, atol=1e-5)


def test_last_block_output_has_no_patch_gradient(vit: keras.Model,
                                                 images: np.ndarray) -> None:
    """Why the default is the last block's attention input: only the class token of the last
    block's output reaches the head."""
    exp = cx.GradCAM(vit, layer="residual2_1").explain(images)
    assert exp.raw.max() == 0.0


def test_token_arguments(images: np.ndarray) -> None:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Reshape((16, 8))(keras.layers.Conv2D(8, 8, strides=8)(inputs))
    for i in range(3):  # three leading tokens: 19 in all
        x = ClassToken(name=f"extra_{i}")(x)
    y = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.Add()([x, keras.layers.MultiHeadAttention(2, 4, name="attn")(y, y)])
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    with pytest.raises(ModelStructureError, match=r"19 tokens.*prefix_tokens="):
        cx.GradCAM(model)
    explainer = cx.GradCAM(model, prefix_tokens=3)
    assert explainer.layer == "norm" and explainer.explain(images).raw.shape == (3, 4, 4)
    twin = explainer.for_model(keras.models.clone_model(model))
    assert twin._token_args == {"prefix_tokens": 3}
    wide = cx.GradCAM(model, token_grid=(2, 8)).explain(images)
    assert wide.raw.shape == (3, 2, 8)
    np.testing.assert_allclose(wide.raw.reshape(3, 16), explainer.explain(images).raw.reshape(
        3, 16), rtol=1e-5, atol=1e-7)  # the same tokens, folded otherwise
    assert cx.AttentionRollout(model, prefix_tokens=3).explain(images).raw.shape == (3, 4, 4)


def test_mean_pooled_vit_without_class_token(images: np.ndarray) -> None:
    model = tiny_vit(2, "softmax", size=SIZE, class_token=False)
    assert cx.GradCAM(model).explain(images).raw.shape == (3, 4, 4)
    assert cx.AttentionRollout(model).explain(images).raw.shape == (3, 4, 4)


def test_tokens_under_mixed_float16(vit: keras.Model, images: np.ndarray) -> None:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = tiny_vit(3, "softmax", size=SIZE, seed=1)
    finally:
        keras.config.set_dtype_policy(previous)
    mixed.set_weights(vit.get_weights())
    assert mixed.get_layer("norm1_1").compute_dtype == "float16"
    for method in (cx.GradCAM, cx.AttentionRollout):
        half = method(mixed).explain(images, targets=1)
        full = method(vit).explain(images, targets=1)
        assert half.raw.dtype == np.float32 and np.isfinite(half.heatmaps).all()
        r = np.corrcoef(half.heatmaps.ravel(), full.heatmaps.ravel())[0, 1]
        assert r > 0.98, (method.name, r)


# ------------------------------------------------------------------ attention rollout
def _attention_matrices(model: keras.Model, images: np.ndarray) -> list[np.ndarray]:
    """Each block's ``(N, heads, T, T)`` attention weights, its attention layer called by hand
    on its captured input."""
    inputs = keras.Model(model.input, [model.get_layer(f"norm1_{i}").output for i in (0, 1)])
    found = []
    for i, y in enumerate(inputs(images, training=False)):
        _, scores = model.get_layer(f"attention_{i}")(y, y, return_attention_scores=True)
        found.append(np.asarray(scores, np.float64))
    return found


def _numpy_rollout(matrices: list[np.ndarray], fuse: str = "mean") -> np.ndarray:
    count = matrices[0].shape[-1]
    result = np.broadcast_to(np.eye(count), (matrices[0].shape[0], count, count))
    for weights in matrices:
        fused = getattr(weights, fuse)(axis=1)
        step = fused + np.eye(count)
        step = step / step.sum(axis=-1, keepdims=True)
        result = step @ result
    return result[:, 0, 1:]


@pytest.mark.parametrize("fuse", ["mean", "max"])
def test_rollout_equals_numpy(vit: keras.Model, images: np.ndarray, fuse: str) -> None:
    exp = cx.AttentionRollout(vit, head_fusion=fuse).explain(images)
    expected = _numpy_rollout(_attention_matrices(vit, images), fuse).reshape(3, 4, 4)
    assert exp.layer == "attention_1" and exp.method == "attention_rollout"
    np.testing.assert_allclose(exp.raw, expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(exp.heatmaps, _upsampled(expected.astype(np.float32), SIZE),
                               atol=1e-4)
    assert expected.std() > 1e-4  # not a uniform map: the test tells token orders apart


def test_rollout_planted_uniform_attention(images: np.ndarray) -> None:
    """Zero query kernels make every attention row uniform, 1/T: with A = (U + I) / 2 and
    U^2 = U, two layers give (3 U + I) / 4, so each patch gets 3 / (4 T) of the class token."""
    model = tiny_vit(2, "softmax", size=SIZE, seed=3)
    for i in (0, 1):
        attention = model.get_layer(f"attention_{i}")
        kernel, bias = attention.query_dense.get_weights()
        attention.query_dense.set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
    raw = cx.AttentionRollout(model).explain(images).raw
    np.testing.assert_allclose(raw, np.full((3, 4, 4), 3 / (4 * 17)), rtol=1e-5)


def test_rollout_is_class_agnostic_batched_and_leaves_the_model(vit: keras.Model,
                                                               images: np.ndarray) -> None:
    before = vit(images).numpy()
    explainer = cx.AttentionRollout(vit)
    first = explainer.explain(images, targets=0)
    second = explainer.explain(images, targets=2, batch_size=2)
    assert (second.targets == 2).all() and not cx.AttentionRollout.class_specific
    np.testing.assert_allclose(first.raw, second.raw, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(first.probabilities, before, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(vit(images).numpy(), before)
    assert "call" not in vars(vit.get_layer("attention_0"))  # the interception is undone
    assert explainer.for_model(keras.models.clone_model(vit)).layer == "attention_1"


def test_rollout_does_not_apply_to_a_cnn() -> None:
    assert cx.AttentionRollout.requires == "attention"
    assert not cx.AttentionRollout.applies_to(cam_model())
    assert cx.AttentionRollout.applies_to(tiny_vit(size=SIZE))
    assert cx.GradCAM.applies_to(cam_model()) and cx.GradCAM.requires is None
    with pytest.raises(ModelStructureError, match="needs attention layers"):
        cx.AttentionRollout(cam_model())
    with pytest.raises(InvalidInputError, match="head_fusion"):
        cx.AttentionRollout(tiny_vit(size=SIZE), head_fusion="sum")
    with pytest.raises(InvalidInputError, match="every attention layer"):
        cx.AttentionRollout(tiny_vit(size=SIZE), layer="attention_0")
    assert cx.get_explainer("rollout") is cx.AttentionRollout
    assert "attention_rollout" in cx.explainers()


# ------------------------------------------------------------------ keras-hub's ViT
def test_keras_hub_vit_backbone(images: np.ndarray) -> None:
    """keras-hub's ``ViTBackbone`` (random weights) keeps its blocks inside one ``ViTEncoder``
    layer: the probe opens it. Grad-CAM at the last block's ``ln_1`` against the block run by
    hand, and the rollout against its attention layers called by hand."""
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(image_shape=(SIZE, SIZE, 1), patch_size=8,
                                            num_layers=2, num_heads=2, hidden_dim=16,
                                            mlp_dim=32)
    inputs = keras.Input((SIZE, SIZE, 1))
    head = keras.layers.Dense(2, activation="softmax", name="head")
    model = keras.Model(inputs, head(FirstToken()(backbone(inputs))))
    encoder = backbone.get_layer("vit_encoder")
    first, last = encoder.encoder_layers
    targets = np.array([0, 1, 1])
    kernel, bias = head.get_weights()
    embedded = backbone.get_layer("vit_patching_and_embedding")(images)
    stream = first(encoder.dropout(embedded))
    with tf.GradientTape() as tape:
        normed = last.layer_norm_1(stream)
        tape.watch(normed)
        x = stream + last.dropout(last.mha(normed, normed))
        x = x + last.mlp(last.layer_norm_2(x))
        logits = tf.matmul(encoder.layer_norm(x)[:, 0], kernel) + bias
        score = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
    tokens, grads = normed.numpy()[:, 1:], tape.gradient(score, normed).numpy()[:, 1:]
    expected = np.einsum("ntd,nd->nt", tokens, grads.mean(axis=1)).reshape(3, 4, 4)
    exp = cx.GradCAM(model).explain(images, targets=targets)
    assert exp.layer.endswith("vit_encoder/transformer_block_2/ln_1")
    np.testing.assert_allclose(exp.raw, np.maximum(expected, 0), rtol=1e-4, atol=1e-6)
    hires = np.einsum("ntd,ntd->nt", tokens, grads).reshape(3, 4, 4)
    assert expected.max() > 0 and hires.max() > 0
    np.testing.assert_allclose(cx.HiResCAM(model).explain(images, targets=targets).raw,
                               np.maximum(hires, 0), rtol=1e-4, atol=1e-6)
    matrices = []
    x = encoder.dropout(embedded)
    for block in (first, last):
        y = block.layer_norm_1(x)
        _, scores = block.mha(y, y, return_attention_scores=True)
        matrices.append(np.asarray(scores, np.float64))
        x = block(x)
    rollout = cx.AttentionRollout(model).explain(images)
    assert cx.AttentionRollout.applies_to(model)
    np.testing.assert_allclose(rollout.raw, _numpy_rollout(matrices).reshape(3, 4, 4),
                               rtol=1e-4, atol=1e-7)
