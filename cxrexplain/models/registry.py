"""The registry of reference builders: :func:`build` and :func:`available`.

Each family module registers its builders with :func:`register`; :func:`build` checks the
arguments, builds under a mixed-precision policy when asked (restoring the global policy
afterwards), and loads weights from a local file. A renamed builder keeps its former names
(``register(former=...)``): :func:`build`, :func:`get_info` and
:func:`~cxrexplain.models.recipe_for` accept them with a ``DeprecationWarning``, and
:func:`available` lists only the current names (``seed_binary_cnn`` is now
``two_block_cnn``, ``seed_softmax_cnn`` ``four_block_cnn``, ``seed_proposed_cnn``
``five_block_cnn``).

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("cam_cnn", input_shape=(64, 64, 1), num_classes=3)
    >>> model.output_shape
    (None, 3)
"""

from __future__ import annotations

import contextlib
import inspect
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from cxrexplain._checks import check_int, first_line
from cxrexplain.errors import CxrExplainError, InvalidInputError, ModelLoadError
from cxrexplain.models._common import check_input_shape, check_num_classes

__all__ = [
    "ModelInfo",
    "available",
    "build",
    "dtype_policy_scope",
    "get_info",
    "load_weights_file",
    "register",
    "resolve_name",
]

Builder = Callable[..., keras.Model]


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`available` tells about one reference builder.

    Attributes:
        name: The registry name, as passed to :func:`build`.
        description: One line on the architecture.
        source: The project (or paper) the builder follows: its provenance. ``seed`` is a
            deprecated alias (from the "seed projects"; the word also means a random seed).
        head: ``"sigmoid"`` when ``num_classes=2`` gives one sigmoid unit, ``"softmax"`` when
            it gives two softmax units, ``"mask"`` for a segmenter (a sigmoid per pixel).
        min_size: The smallest height/width the builder takes with its default options.
        transfer: Whether it wraps a Keras Applications backbone (``weights="imagenet"``,
            ``freeze=`` and ``trainable_from=`` apply).
        options: The builder's keyword options and their defaults.

    Example:
        >>> import cxrexplain as cx
        >>> print(cx.models.available()["vgg16"].source)  # doctest: +ELLIPSIS
        SaraElwatany/Pneumonia-Detection-...
    """

    name: str
    description: str
    source: str
    head: str
    min_size: int
    transfer: bool
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def seed(self) -> str:
        """Deprecated alias of :attr:`source` ("seed" also means a random seed elsewhere)."""
        warnings.warn("ModelInfo.seed is deprecated; use ModelInfo.source", DeprecationWarning,
                      stacklevel=2)
        return self.source

    def __str__(self) -> str:
        return f"{self.name}: {self.description} [{self.source}]"


@dataclass(frozen=True)
class _Entry:
    info: ModelInfo
    builder: Builder


_REGISTRY: dict[str, _Entry] = {}
_FORMER: dict[str, str] = {}  # a former (deprecated) name -> the current one


def register(
    name: str, *, description: str, source: str | None = None, head: str, min_size: int,
    transfer: bool = False, seed: str | None = None, former: Sequence[str] = (),
) -> Callable[[Builder], Builder]:
    """Decorator that adds a builder ``fn(input_shape, num_classes, **options)`` to the registry.

    Args:
        name: Registry name.
        description: One line on the architecture.
        source: The project (or paper) it follows.
        head: ``"sigmoid"`` or ``"softmax"`` (what ``num_classes=2`` gives), or ``"mask"``.
        min_size: Smallest height/width with default options.
        transfer: Whether the builder takes ``weights="imagenet"`` itself.
        seed: Deprecated alias of ``source``.
        former: Earlier names of the builder, still accepted with a ``DeprecationWarning``
            (see :func:`resolve_name`).

    Returns:
        The decorator (it returns the builder unchanged).

    Example:
        >>> import keras
        >>> @register("tiny", description="Flatten -> Dense", source="none", head="softmax",
        ...           min_size=8)
        ... def tiny(input_shape, num_classes):
        ...     return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
        ...                              keras.layers.Dense(num_classes, activation="softmax")])
        >>> print(available()["tiny"])
        tiny: Flatten -> Dense [none]
        >>> build("tiny", input_shape=(8, 8, 1), num_classes=2).output_shape
        (None, 2)
    """

    if seed is not None:
        warnings.warn("register(seed=...) is deprecated; use source=", DeprecationWarning,
                      stacklevel=2)
        source = seed if source is None else source
    if source is None:
        raise InvalidInputError("source: name the project or paper the builder follows")
    provenance = source
    if isinstance(former, str):
        former = (former,)

    def decorate(builder: Builder) -> Builder:
        params = inspect.signature(builder).parameters
        options = tuple(
            (p.name, p.default) for p in params.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "weights"
        )
        info = ModelInfo(name, description, provenance, head, min_size, transfer, options)
        _REGISTRY[name] = _Entry(info, builder)
        for old in former:
            _FORMER[old] = name
        return builder

    return decorate


def available() -> dict[str, ModelInfo]:
    """Every reference builder by its current name, with its description and provenance.

    Former names (:func:`resolve_name`) are not listed.

    Returns:
        A dict ``name -> ModelInfo`` in registration order; ``str(info)`` is a one-line
        summary.

    Example:
        >>> import cxrexplain as cx
        >>> "cam_cnn" in cx.models.available(), "seed_binary_cnn" in cx.models.available()
        (True, False)
        >>> print(cx.models.available()["two_block_cnn"])  # doctest: +ELLIPSIS
        two_block_cnn: 2x (Conv3x3 valid + MaxPool), Flatten -> Dense 128 -> sigmoid [doguilmak/...]
    """
    return {name: entry.info for name, entry in _REGISTRY.items()}


def resolve_name(name: str) -> str:
    """The current name of a builder: ``name`` itself, or the new name of a former one.

    A former name (such as ``"seed_binary_cnn"``, now ``"two_block_cnn"``) gives a
    ``DeprecationWarning``; any other name comes back unchanged (unknown ones too:
    :func:`build` and :func:`get_info` reject those).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     resolve_name("seed_binary_cnn"), resolve_name("cam_cnn")
        ('two_block_cnn', 'cam_cnn')
        >>> [w.category.__name__ for w in caught]
        ['DeprecationWarning']
    """
    return current_name(name, stacklevel=3)


def current_name(name: str, *, stacklevel: int) -> str:
    """:func:`resolve_name` for the package: the warning points ``stacklevel`` frames up."""
    if isinstance(name, str) and name in _FORMER and name not in _REGISTRY:
        current = _FORMER[name]
        warnings.warn(f"model name {name!r} is deprecated; use {current!r}",
                      DeprecationWarning, stacklevel=stacklevel)
        return current
    return name


def get_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of one builder.

    Raises:
        InvalidInputError: An unknown name (the message lists the known ones).

    Example:
        >>> get_info("vgg19_finetune").head
        'sigmoid'
    """
    return _entry(current_name(name, stacklevel=3)).info


def _entry(name: str) -> _Entry:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise InvalidInputError(
            f"name: unknown model {name!r}; available: {', '.join(_REGISTRY)}"
        )
    return _REGISTRY[name]


@contextlib.contextmanager
def dtype_policy_scope(policy: str | keras.DTypePolicy) -> Iterator[None]:
    """Set Keras' global dtype policy for the block and restore the previous one after it.

    Args:
        policy: A policy name (``"mixed_float16"``, ``"mixed_bfloat16"``, ``"float32"``) or
            object.

    Example:
        >>> import keras
        >>> with dtype_policy_scope("mixed_float16"):
        ...     layer = keras.layers.Dense(2)
        >>> layer.compute_dtype, keras.config.dtype_policy().name
        ('float16', 'float32')
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build(
    name: str,
    *,
    input_shape: Sequence[int],
    num_classes: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    mixed_precision: bool = False,
    **options: Any,
) -> keras.Model:
    """Build a reference model by name; nothing is compiled (see :func:`compile_for`).

    Args:
        name: A name from :func:`available` (``"cam_cnn"``, ``"vgg16"``, ...).
        input_shape: ``(height, width, channels)``, 1 (gray) or 3 channels. Images are
            float32 in [0, 1]; transfer builders adapt gray input and do their backbone's
            preprocessing inside the model.
        num_classes: Number of classes, >= 2; required for classifiers. Whether two classes
            give one sigmoid unit or two softmax units depends on the builder (see
            :func:`available`, ``head``). Mask builders (``head="mask"``, such as
            ``lung_unet``) take the number of mask channels instead, 1 by default.
        weights: ``None`` (random initialisation, the default: nothing is downloaded),
            ``"imagenet"`` (transfer builders only; Keras downloads the backbone weights), or
            the path of a local weights file: a whole-model weights file
            (``model.save_weights``) or, for transfer builders, a backbone weights file
            (such as Keras' ``*_notop.h5``).
        mixed_precision: Build under the ``mixed_float16`` policy (float16 compute, float32
            variables, float32 output layer); the global policy is restored afterwards.
            :func:`cxrexplain.training.fit` can also convert a float32 model for you.
        **options: The builder's own options (``dropout=``, ``freeze=``, ``head=``...);
            :attr:`ModelInfo.options` lists them.

    Returns:
        An uncompiled ``keras.Model`` named after the builder.

    Raises:
        InvalidInputError: Unknown name or option, a malformed or too small ``input_shape``,
            ``num_classes`` < 2, or ``weights="imagenet"`` for a builder trained from scratch.
        ModelLoadError: The weights file cannot be read or does not fit the model.

    Example:
        >>> import cxrexplain as cx
        >>> cx.models.build("two_block_cnn", input_shape=(64, 64, 3), num_classes=2
        ...                 ).output_shape
        (None, 1)
    """
    name = current_name(name, stacklevel=3)
    entry = _entry(name)
    info = entry.info
    accepted = dict(info.options)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        listed = ", ".join(accepted) or "none"
        raise InvalidInputError(
            f"options: {name} has no option {', '.join(map(repr, unknown))}; its options: "
            f"{listed}"
        )
    shape = check_input_shape(name, input_shape, min_size=info.min_size)
    if info.head == "mask":
        classes = 1 if num_classes is None else check_int(num_classes, "num_classes")
    elif num_classes is None:
        raise InvalidInputError(
            f"num_classes: {name} is a classifier; pass num_classes= (2 or more)"
        )
    else:
        classes = check_num_classes(num_classes)
    weights_file = _check_weights(name, weights, transfer=info.transfer)
    builder_weights: Any = None
    if info.transfer:
        builder_weights = weights if weights_file is None else weights_file
    scope = dtype_policy_scope("mixed_float16") if mixed_precision else contextlib.nullcontext()
    with scope:
        try:
            if info.transfer:
                model = entry.builder(shape, classes, weights=builder_weights, **options)
            else:
                model = entry.builder(shape, classes, **options)
        except CxrExplainError:
            raise
        except ValueError as err:
            given = ", ".join(f"{k}={v!r}" for k, v in options.items())
            raise InvalidInputError(
                f"input_shape/options: {name} cannot be built for input_shape={shape}"
                f"{', ' + given if given else ''} ({first_line(err)})"
            ) from err
    if weights_file is not None and not info.transfer:
        load_weights_file(model, weights_file)
    return model


def _check_weights(
    name: str, weights: str | os.PathLike[str] | None, *, transfer: bool
) -> Path | None:
    if weights is None:
        return None
    if weights == "imagenet":
        if not transfer:
            transfers = [n for n, e in _REGISTRY.items() if e.info.transfer]
            raise InvalidInputError(
                f"weights: {name} is trained from scratch and has no ImageNet weights; "
                f"weights='imagenet' is for {', '.join(transfers)}"
            )
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise InvalidInputError(
            f"weights: expected None, 'imagenet' or a file path, got {type(weights).__name__}"
        )
    path = Path(os.fspath(weights))
    if not path.is_file():
        raise ModelLoadError(
            f"weights: no such file '{path}' (pass None, 'imagenet' or a local weights file)"
        )
    return path


def load_weights_file(model: keras.Model, path: Path) -> None:
    """Load a whole-model weights file into ``model``.

    Raises:
        ModelLoadError: The file cannot be read or does not fit the model.

    Example:
        >>> model.save_weights("cam_cnn.weights.h5")
        >>> twin = build("cam_cnn", input_shape=(32, 32, 1), num_classes=2, filters=(4, 8))
        >>> load_weights_file(twin, Path("cam_cnn.weights.h5"))
        >>> all(np.array_equal(a, b) for a, b in zip(twin.get_weights(), model.get_weights()))
        True
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Keras' per-container notes
            model.load_weights(path)
    except (ValueError, OSError, KeyError, TypeError) as err:
        raise ModelLoadError(
            f"weights: '{path}' does not fit {model.name} ({first_line(err)})"
        ) from err

