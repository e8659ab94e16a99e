"""Training settings: each source project's own (:func:`compile_for`) and our recommended ones.

Builders compile nothing. ``compile_for(model, task)`` compiles a model with the optimizer,
learning rate, loss and metrics of the project its builder follows (``task`` is a builder
name; :func:`recipe_for` and :data:`RECIPES` say what each one is, and why), passing
everything to ``model.compile`` as keyword arguments. The loss always fits the model's head
(binary cross-entropy for one sigmoid unit, sparse categorical cross-entropy for softmax: the
labels of :func:`cxrexplain.data.image_folder` are integers, which gives the same values as
the projects' one-hot categorical cross-entropy). A builder's former name (``"seed_..."``)
is accepted with a ``DeprecationWarning``; :data:`RECIPES` is keyed by the current names.

The projects' quirks, reproduced only with ``reproduce_quirks=True``:

* Lovi07's COVID CNN (``cam_cnn``) serialised ``Adam(learning_rate≈1e-6)`` and
  ``SparseCategoricalCrossentropy(from_logits=True)`` on a softmax output. ``from_logits=True``
  applies a second softmax to probabilities, which squeezes them towards uniform and shrinks the
  gradients; with 1e-6 (maybe a rate already reduced by a callback, the file cannot tell) the
  model barely moves. By default ``compile_for`` uses Adam at 1e-3 and ``from_logits=False``.
* SaraElwatany's proposed CNN (``five_block_cnn``) passes softmax outputs to PyTorch's
  ``CrossEntropyLoss``, which expects logits: the same double softmax (``from_logits=True``
  reproduces it).

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("four_block_cnn", input_shape=(80, 80, 3), num_classes=2)
    >>> _ = cx.models.compile_for(model, "four_block_cnn")
    >>> type(model.optimizer).__name__, float(model.optimizer.learning_rate)
    ('RMSprop', 0.0010000000474974513)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras

from cxrexplain._checks import check_int, check_number
from cxrexplain.errors import InvalidInputError
from cxrexplain.models.losses import head_of, loss_for
from cxrexplain.models.registry import current_name

__all__ = [
    "RECIPES",
    "Recipe",
    "compile_for",
    "compile_recommended",
    "metrics_for",
    "recipe_for",
]

_OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}


@dataclass(frozen=True)
class Recipe:
    """One source project's training settings.

    Attributes:
        task: The builder name it belongs to.
        source: Where the settings come from (the project or paper). ``seed`` is a
            deprecated alias.
        optimizer: ``"adam"``, ``"rmsprop"`` or ``"sgd"``.
        learning_rate: The learning rate :func:`compile_for` uses.
        metrics: Metric names (``"accuracy"``, ``"precision"``, ``"recall"``).
        notes: What the project did, what it did not publish, and what we chose.
        quirk_learning_rate: The project's own rate where ours differs (``reproduce_quirks``).
        quirk_from_logits: Whether the project's loss treated probabilities as logits.

    Example:
        >>> recipe_for("two_block_cnn").optimizer
        'adam'
    """

    task: str
    source: str
    optimizer: str
    learning_rate: float
    metrics: tuple[str, ...]
    notes: str
    quirk_learning_rate: float | None = None
    quirk_from_logits: bool = False

    @property
    def seed(self) -> str:
        """Deprecated alias of :attr:`source`."""
        warnings.warn("Recipe.seed is deprecated; use Recipe.source", DeprecationWarning,
                      stacklevel=2)
        return self.source


_LOVI07 = "Lovi07/Advanced-Classification-using-Machine-Learning-in-HealthCare"
_DOGUILMAK = "doguilmak/Classify-X-Ray-Images-with-Convolutional-Neural-Network"
_SHAFAYET98 = "shafayet98/ML-Pneumonia-Classification"
_ELWATANY = ("SaraElwatany/Pneumonia-Detection-using-Deep-learning-Approach-and-using-Grad-CAM-"
             "for-Visualization")
_MALTANNO = "Maltanno/Phase4_Project"
_ELWATANY_NOTE = "SaraElwatany trained torchvision models with Adam and cross-entropy, batch 32"
RECIPES: dict[str, Recipe] = {
    recipe.task: recipe
    for recipe in (
        Recipe("cam_cnn", _LOVI07, "adam", 1e-3, ("accuracy",),
               "Lovi07 serialised Adam(lr≈1e-6) with SparseCategoricalCrossentropy("
               "from_logits=True) on a softmax output (a double softmax). We use Adam 1e-3 and "
               "a loss matching the head; reproduce_quirks=True restores both.",
               quirk_learning_rate=1e-6, quirk_from_logits=True),
        Recipe("two_block_cnn", _DOGUILMAK, "adam", 1e-3, ("accuracy",),
               "Adam at Keras' default rate, binary cross-entropy, accuracy; the project trained "
               "with batch size 1 for one epoch of 3,000 steps, without class weights."),
        Recipe("four_block_cnn", _SHAFAYET98, "rmsprop", 1e-3, ("accuracy",),
               "RMSprop at Keras' default rate, categorical cross-entropy (sparse here: same "
               "values with integer labels), accuracy; batch 64, 45 epochs."),
        Recipe("five_block_cnn", _ELWATANY, "adam", 1e-6, ("accuracy",),
               f"{_ELWATANY_NOTE}; its CrossEntropyLoss got softmax outputs (a double softmax: "
               "reproduce_quirks=True gives from_logits=True). Epochs not published.",
               quirk_from_logits=True),
        Recipe("vgg16", _ELWATANY, "adam", 1e-6, ("accuracy",),
               f"{_ELWATANY_NOTE}; VGG16 with all layers trainable, 20 epochs."),
        Recipe("vgg19", _ELWATANY, "adam", 1e-6, ("accuracy",),
               f"{_ELWATANY_NOTE}; VGG19 with all layers trainable, 20 epochs."),
        Recipe("resnet50", _ELWATANY, "adam", 1e-3, ("accuracy",),
               f"{_ELWATANY_NOTE}; ResNet50 from scratch, 20 epochs (never run there)."),
        Recipe("mobilenet_v2", _ELWATANY, "adam", 1e-5, ("accuracy",),
               f"{_ELWATANY_NOTE}; MobileNetV2, 5 epochs (never run there)."),
        Recipe("densenet121", "CheXNet", "adam", 1e-3, ("accuracy",),
               "CheXNet: Adam (beta 0.9, 0.999) at 1e-3, binary cross-entropy, batch 16, the "
               "rate divided by 10 when the validation loss plateaus."),
        Recipe("dense_baseline", _MALTANNO, "sgd", 1e-2, ("accuracy", "precision", "recall"),
               "Maltanno did not publish the baseline's optimiser; we use its scratch CNN's: "
               "SGD (Keras' default rate), binary cross-entropy, accuracy/precision/recall."),
        Recipe("vgg19_finetune", _MALTANNO, "adam", 1e-4, ("accuracy", "precision", "recall"),
               "Maltanno did not publish the fine-tuning optimiser or rate; Adam 1e-4 is our "
               "choice for fine-tuning a pretrained block. Metrics as Maltanno's."),
    )
}
"""Every builder's source-project recipe, by (current) builder name."""


def recipe_for(task: str) -> Recipe:
    """The :class:`Recipe` of a builder (a former name warns and gives the current one's).

    Raises:
        InvalidInputError: An unknown task (the message lists the known ones).

    Example:
        >>> recipe_for("cam_cnn").quirk_from_logits
        True
    """
    task = current_name(task, stacklevel=3)
    if not isinstance(task, str) or task not in RECIPES:
        raise InvalidInputError(f"task: unknown {task!r}; known tasks: {', '.join(RECIPES)}")
    return RECIPES[task]


def metrics_for(model: keras.Model, names: Sequence[str] = ("accuracy",)) -> list[Any]:
    """Metric objects that fit a model's head and integer labels.

    ``"accuracy"`` is binary accuracy for sigmoid heads and sparse categorical accuracy for
    softmax heads (named ``accuracy`` either way); ``"precision"`` and ``"recall"`` (of class
    1) exist only for one-unit sigmoid heads and are skipped for others.

    Example:
        >>> [type(m).__name__ for m in metrics_for(model, ["accuracy"])]  # softmax head
        ['SparseCategoricalAccuracy']
        >>> binary = cx.models.build("two_block_cnn", input_shape=(32, 32, 1), num_classes=2)
        >>> [m.name for m in metrics_for(binary, ["accuracy", "precision", "recall"])]
        ['accuracy', 'precision', 'recall']
    """
    units, activation = head_of(model)
    binary = units == 1 or activation == "sigmoid"
    threshold = 0.0 if activation == "linear" else 0.5
    metrics: list[Any] = []
    for name in names:
        if name == "accuracy":
            metrics.append(keras.metrics.BinaryAccuracy(name="accuracy", threshold=threshold)
                           if binary else keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
        elif name in ("precision", "recall"):
            if units == 1 and activation == "sigmoid":
                cls = keras.metrics.Precision if name == "precision" else keras.metrics.Recall
                metrics.append(cls(name=name))
        else:
            raise InvalidInputError(
                f"metrics: unknown {name!r}; expected accuracy, precision or recall"
            )
    return metrics


def compile_for(
    model: keras.Model,
    task: str,
    *,
    reproduce_quirks: bool = False,
    learning_rate: float | None = None,
    **compile_options: Any,
) -> keras.Model:
    """Compile a model with the optimizer, loss and metrics of a builder's source project.

    Args:
        model: The model (any model whose head the task's loss fits).
        task: A builder name (:data:`RECIPES`).
        reproduce_quirks: Use the project's settings even where they are bugs (Lovi07's and
            SaraElwatany's ``from_logits=True`` on softmax outputs, Lovi07's 1e-6 rate).
        learning_rate: Override the recipe's rate.
        **compile_options: More keyword arguments for ``model.compile`` (``jit_compile``,
            ``steps_per_execution``, or ``loss=``/``metrics=`` to replace ours).

    Returns:
        The same model, compiled.

    Example:
        >>> import cxrexplain as cx
        >>> m = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=3)
        >>> m = cx.models.compile_for(m, "cam_cnn", reproduce_quirks=True)
        >>> m.loss.get_config()["from_logits"]
        True
    """
    recipe = recipe_for(current_name(task, stacklevel=3))
    rate = learning_rate
    if rate is None:
        rate = recipe.learning_rate
        if reproduce_quirks and recipe.quirk_learning_rate is not None:
            rate = recipe.quirk_learning_rate
    check_number(rate, "learning_rate", low=0.0, low_open=True)
    from_logits = True if reproduce_quirks and recipe.quirk_from_logits else None
    options: dict[str, Any] = {
        "optimizer": _OPTIMIZERS[recipe.optimizer](learning_rate=rate),
        "loss": loss_for(model, from_logits=from_logits),
        "metrics": metrics_for(model, recipe.metrics),
    }
    options.update(compile_options)
    model.compile(**options)
    return model


def compile_recommended(
    model: keras.Model,
    *,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    label_smoothing: float = 0.05,
    decay_steps: int | None = None,
    **compile_options: Any,
) -> keras.Model:
    """Compile with our recommended settings: AdamW, cosine decay, label smoothing.

    Args:
        model: The model.
        learning_rate: The initial rate.
        weight_decay: AdamW's decoupled weight decay.
        label_smoothing: Label smoothing of the cross-entropy (0.05 keeps the model from
            saturating on small chest X-ray sets).
        decay_steps: Steps of the cosine decay to 0 (``epochs * steps_per_epoch``); ``None``
            keeps the rate constant (then :func:`cxrexplain.training.fit` can reduce it on
            plateaus; it cannot change a schedule).
        **compile_options: More keyword arguments for ``model.compile``.

    Returns:
        The same model, compiled.

    Example:
        >>> import cxrexplain as cx
        >>> m = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2)
        >>> m = cx.models.compile_recommended(m, decay_steps=100)
        >>> type(m.optimizer).__name__
        'AdamW'
    """
    check_number(learning_rate, "learning_rate", low=0.0, low_open=True)
    check_number(weight_decay, "weight_decay", low=0.0)
    rate: Any = learning_rate
    if decay_steps is not None:
        check_int(decay_steps, "decay_steps")
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    options: dict[str, Any] = {
        "optimizer": keras.optimizers.AdamW(learning_rate=rate, weight_decay=weight_decay),
        "loss": loss_for(model, label_smoothing=label_smoothing),
        "metrics": metrics_for(model, ("accuracy",)),
    }
    options.update(compile_options)
    model.compile(**options)
    return model


