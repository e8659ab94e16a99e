"""Token models (vision transformers): the token grid and the attention layers (private).

A transformer's layers output ``(N, T, D)`` tokens, not ``(N, h, w, k)`` maps. The rule that
folds them into a grid, :func:`token_layout`: with ``p`` leading tokens (the class token, and
any other extra token) and ``n = T - p`` patch tokens in row-major order (ViT's patch order),
the grid is ``sqrt(n) x sqrt(n)``. Without arguments, ``p = 1`` if ``T - 1`` is a perfect
square (a class token), else ``p = 0`` if ``T`` is one (no class token, mean-pooled models);
``token_grid=(h, w)`` and ``prefix_tokens=`` say it otherwise. :func:`to_grid` folds the
tokens; :func:`from_grid` puts a grid back among the leading tokens (so that the grid, not the
layer's output, is what the rest of the model reads, and gradients reach it).

Example:
    >>> token_layout(17), token_layout(16), token_layout(50, token_grid=(7, 7))
    ((1, 4, 4), (0, 4, 4), (1, 7, 7))
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from cxrexplain._checks import describe
from cxrexplain.errors import InvalidInputError, ModelStructureError

__all__: list[str] = []


def token_layout(count: int, *, token_grid: tuple[int, int] | None = None,
                 prefix_tokens: int | None = None, where: str = "layer") -> tuple[int, int, int]:
    """``(prefix, h, w)``: how ``count`` tokens fold into an ``h x w`` grid after ``prefix``.

    Raises:
        InvalidInputError: A malformed ``token_grid`` or ``prefix_tokens``.
        ModelStructureError: The tokens do not fold (the message says how many there are and
            which arguments say how).
    """
    check_token_args(token_grid, prefix_tokens)
    if token_grid is not None:
        rows, cols = int(token_grid[0]), int(token_grid[1])
        prefix = count - rows * cols if prefix_tokens is None else prefix_tokens
        if prefix < 0 or prefix + rows * cols != count:
            raise ModelStructureError(
                f"{where}: {count} tokens do not hold {prefix_tokens or 'any'} leading "
                f"token(s) and a {rows} x {cols} grid")
        return prefix, rows, cols
    if prefix_tokens is not None:
        side = _square_side(count - prefix_tokens)
        if side is None:
            raise ModelStructureError(
                f"{where}: {count} tokens less {prefix_tokens} leading token(s) is not a "
                "square grid; pass token_grid=(rows, columns)")
        return prefix_tokens, side, side
    for prefix in (1, 0):
        side = _square_side(count - prefix)
        if side is not None:
            return prefix, side, side
    raise ModelStructureError(
        f"{where}: {count} tokens fold into no square grid (neither {count} nor {count} - 1 "
        "class token is a perfect square); pass token_grid=(rows, columns) and/or "
        "prefix_tokens= (the number of leading class/extra tokens)")


def check_token_args(token_grid: Any, prefix_tokens: Any) -> None:
    """Raise InvalidInputError for a malformed ``token_grid`` or ``prefix_tokens``."""
    if token_grid is not None and (
            not isinstance(token_grid, (tuple, list)) or len(token_grid) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                       for v in token_grid)):
        raise InvalidInputError(
            f"token_grid: expected (rows, columns) of positive ints, got {describe(token_grid)}")
    if prefix_tokens is not None and (not isinstance(prefix_tokens, int)
                                      or isinstance(prefix_tokens, bool) or prefix_tokens < 0):
        raise InvalidInputError(
            f"prefix_tokens: expected an int >= 0, got {describe(prefix_tokens)}")


def _square_side(count: int) -> int | None:
    if count < 1:
        return None
    side = math.isqrt(count)
    return side if side * side == count else None


def to_grid(tokens: tf.Tensor, layout: tuple[int, int, int]) -> tf.Tensor:
    """``(N, T, D)`` tokens -> ``(N, h, w, D)``: the patch tokens, row-major."""
    prefix, rows, cols = layout
    return tf.reshape(tokens[:, prefix:, :], [-1, rows, cols, tf.shape(tokens)[-1]])


def from_grid(tokens: tf.Tensor, grid: tf.Tensor, layout: tuple[int, int, int]) -> tf.Tensor:
    """The ``(N, T, D)`` tokens with their patch tokens taken from ``grid``."""
    prefix, rows, cols = layout
    patches = tf.reshape(grid, [-1, rows * cols, tf.shape(tokens)[-1]])
    return tf.concat([tokens[:, :prefix, :], patches], axis=1)


def is_attention(layer: Any) -> bool:
    """A layer whose call can return its attention weights (Keras ``MultiHeadAttention`` and
    its subclasses, keras-hub's included)."""
    return isinstance(layer, keras.layers.MultiHeadAttention)
