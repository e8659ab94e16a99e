"""The model-parameter randomization test (Adebayo et al., NeurIPS 2018).

A copy of the model has its layers re-initialised from the top (output) down, one more layer
at each step (cascading); after each step the explainer explains the copy and the Spearman rank
correlation with the original maps is reported (or, with ``similarity="ssim"``, their
structural similarity, as Arun et al. 2021 also report for chest X-rays). An explainer whose
maps do not change when the model's weights are destroyed is not explaining the model. The
user's model is never touched.

Example:
    >>> import cxrexplain as cx
    >>> result = cx.metrics.randomization_check(cx.GradCAM(clf), batch, layers=2)
    >>> result.layers  # the top two layers with weights
    ['predictions', 'block2_bn']
    >>> result.mean.shape  # one value per randomised layer, ideally near 0
    (2,)
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np

from cxrexplain._checks import as_numbers, check_choice, check_int
from cxrexplain._keras_utils import leaf_layers
from cxrexplain._stats import average_ranks
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.explain.base import Explainer
from cxrexplain.io import ImageSource
from cxrexplain.metrics.similarity import ssim

__all__ = ["RandomizationResult", "randomization_check", "spearman"]


@dataclass(frozen=True)
class RandomizationResult:
    """Similarity between original and randomised-model maps.

    Attributes:
        layers: The layers re-initialised, top down; step i has ``layers[: i + 1]``
            randomised (cascading) or only ``layers[i]`` (independent).
        correlations: ``(L, N)`` similarity per step and image: the Spearman rank
            correlation (NaN where a map is constant) or, with ``similarity == "ssim"``, the
            SSIM (see :func:`~cxrexplain.metrics.ssim`).
        mean: ``(L,)`` the mean over images (NaN-aware).
        cascading: Whether the randomisation accumulated.
        similarity: The measure in ``correlations``: ``"spearman"`` or ``"ssim"``.
    """

    layers: list[str]
    correlations: np.ndarray
    mean: np.ndarray
    cascading: bool
    similarity: str = "spearman"


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Spearman rank correlation of ``(N, ...)`` arrays (ties get average ranks).

    Returns NaN for a row where either input is constant.

    Example:
        >>> spearman(np.array([[1, 2, 3, 4]]), np.array([[1, 3, 2, 4]])).round(2).tolist()
        [0.8]
    """
    x, y = (as_numbers(v, n).astype(np.float64) for v, n in ((a, "a"), (b, "b")))
    if x.ndim < 2 or x.shape != y.shape:
        raise InvalidInputError(
            f"a, b: expected two (N, ...) arrays of one shape, got {x.shape} and {y.shape}"
        )
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    out = np.empty(len(x))
    for i in range(len(x)):
        rx, ry = average_ranks(x[i]), average_ranks(y[i])
        rx -= rx.mean()
        ry -= ry.mean()
        denominator = np.sqrt((rx**2).sum() * (ry**2).sum())
        out[i] = (rx * ry).sum() / denominator if denominator > 0 else np.nan
    return out


def randomization_check(
    explainer: Explainer,
    images: ImageSource | Iterable[ImageSource],
    *,
    targets: Any = None,
    layers: Sequence[str] | int | None = None,
    cascading: bool = True,
    seed: int = 0,
    batch_size: int = 32,
    similarity: Literal["spearman", "ssim"] = "spearman",
) -> RandomizationResult:
    """Re-initialise a copy of the model layer by layer and compare the explanations.

    Args:
        explainer: The explainer under test (its model, layer and settings are reused).
        images: The images to explain.
        targets: Targets of the original explanation (None: predicted classes); the same
            targets are explained on the randomised copies.
        layers: Paths of the layers to randomise, top down, or an int N for the top N layers
            with weights, or None for every layer with weights.
        cascading: Randomise cumulatively from the top (True, Adebayo et al.'s cascading test)
            or one layer at a time (False, the independent test).
        seed: Seed of the new weights.
        batch_size: Images per explanation pass.
        similarity: How maps are compared: ``"spearman"`` (rank correlation, Adebayo et
            al.) or ``"ssim"`` (structural similarity on the [0, 1] maps, 7 x 7 window as
            scikit-image's default; maps must be at least 7 x 7).

    Returns:
        :class:`RandomizationResult`.

    Raises:
        InvalidInputError: Unknown layer names, a bad ``layers`` or ``similarity`` value.
        ModelStructureError: The model cannot be copied.

    Example:
        >>> res = randomization_check(cx.GradCAM(clf), batch, layers=["predictions", "block2_conv"],
        ...                           cascading=False)
        >>> res.layers, res.correlations.shape, res.cascading
        (['predictions', 'block2_conv'], (2, 4), False)
        >>> res = randomization_check(cx.GradCAM(clf), batch, layers=1, similarity="ssim")
        >>> res.similarity, bool(res.correlations.max() <= 1)
        ('ssim', True)
    """
    measure = check_choice(similarity, "similarity", ("spearman", "ssim"))
    compare = ssim if measure == "ssim" else spearman
    original = explainer.explain(images, targets, batch_size=batch_size)
    if measure == "ssim" and min(original.heatmaps.shape[1:]) < 7:
        raise InvalidInputError(
            f"similarity: 'ssim' needs maps of at least 7 x 7 pixels, the explainer gives "
            f"{original.heatmaps.shape[1]} x {original.heatmaps.shape[2]}; use 'spearman'"
        )
    model = explainer.model
    copy = _copy(model)
    weighted = [(path, layer) for path, layer in leaf_layers(copy) if layer.weights]
    weighted.reverse()  # top (output) first
    chosen = _choose(weighted, layers)
    rng = np.random.default_rng(seed)
    pristine = copy.get_weights()
    rows = []
    for index, (_, layer) in enumerate(chosen):
        if not cascading and index > 0:
            copy.set_weights(pristine)
        _reinitialise(layer, rng)
        twin = explainer.for_model(copy)
        randomised = twin.explain(images, original.targets, batch_size=batch_size)
        rows.append(compare(original.heatmaps, randomised.heatmaps))
    correlations = np.array(rows)
    with np.errstate(all="ignore"):
        mean = np.array([np.nanmean(r) if np.isfinite(r).any() else np.nan for r in rows])
    return RandomizationResult([p for p, _ in chosen], correlations, mean, cascading, measure)


def _choose(weighted: list[tuple[str, Any]], layers: Sequence[str] | int | None
            ) -> list[tuple[str, Any]]:
    if layers is None:
        return weighted
    if isinstance(layers, (int, np.integer)):
        return weighted[: check_int(layers, "layers")]
    by_path = dict(weighted)
    by_name = {path.rsplit("/", 1)[-1]: (path, layer) for path, layer in weighted}
    chosen = []
    for name in layers:
        if name in by_path:
            chosen.append((name, by_path[name]))
        elif name in by_name:
            chosen.append(by_name[name])
        else:
            raise InvalidInputError(
                f"layers: no layer with weights named {name!r}; known: {[p for p, _ in weighted]}"
            )
    return chosen


def _copy(model: keras.Model) -> keras.Model:
    """An independent copy with the same weights (the user's model is never changed)."""
    try:
        twin = keras.models.clone_model(model)
        twin.set_weights(model.get_weights())
        return twin
    except Exception:  # subclassed models: round-trip through a .keras file
        pass
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "copy.keras"
            model.save(path)
            loaded = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as err:
        raise ModelStructureError(
            f"model: cannot make a copy to randomise ({type(err).__name__}: {err}); register "
            "custom layers with keras.saving.register_keras_serializable"
        ) from err
    if not isinstance(loaded, keras.Model):  # pragma: no cover
        raise ModelStructureError("model: the copy is not a keras.Model")
    return loaded


def _reinitialise(layer: Any, rng: np.random.Generator) -> None:
    """Give every weight of the layer fresh values from its own initializer (new seed)."""
    for variable in layer.weights:
        short = variable.name.rsplit("/", 1)[-1]
        initializer = getattr(layer, f"{short}_initializer", None)
        shape = tuple(variable.shape)
        if initializer is not None:
            config = initializer.get_config()
            if "seed" in config:
                config["seed"] = int(rng.integers(0, 2**31 - 1))
            fresh = type(initializer).from_config(config)
            values = np.asarray(keras.ops.convert_to_numpy(fresh(shape, dtype="float32")))
        else:
            current = np.asarray(keras.ops.convert_to_numpy(variable))
            scale = float(current.std()) or 0.05
            values = rng.normal(0.0, scale, shape)
        variable.assign(values.astype(variable.dtype))
