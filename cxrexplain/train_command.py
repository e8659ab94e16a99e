"""``cxrexplain train``: build, train, evaluate and save a reference model from a folder.

Example:
    >>> from cxrexplain.train_command import train_from_folder
    >>> print(train_from_folder("chest_xray", model_name="cam_cnn", out="m.keras",
    ...                         image_size=128, epochs=10))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cxrexplain.classifier import Classifier
from cxrexplain.data import detect_layout, image_folder
from cxrexplain.errors import InvalidInputError
from cxrexplain.models import build
from cxrexplain.training import evaluate, fit

__all__ = ["train_from_folder"]


def train_from_folder(
    data_dir: str | os.PathLike[str],
    *,
    model_name: str = "cam_cnn",
    out: str | os.PathLike[str],
    image_size: int = 224,
    epochs: int = 20,
    batch_size: int = 32,
    classes: Sequence[str] | None = None,
    validation_split: float | None = 0.2,
    seed: int = 0,
    channels: int = 1,
) -> str:
    """Train a reference model on a class-folder or Kaggle ``chest_xray`` folder and save it.

    The training part is augmented (no flip); a stratified validation part watches training
    (early stopping, learning-rate reduction; a checkpoint beside ``out`` lets an interrupted
    run resume). The model is then evaluated on the Kaggle ``test/`` part when there is one,
    else on the validation part, and saved with its class names as one ``.keras`` file.

    Args:
        data_dir: The folder.
        model_name: A builder from :func:`cxrexplain.models.available`.
        out: Where to save the ``.keras`` file.
        image_size: Square input size.
        epochs: Maximum epochs.
        batch_size: Images per batch.
        classes: Class folders to use, in label order (default: all, sorted).
        validation_split: Validation fraction.
        seed: Seed of the split and of training.
        channels: 1 (gray) or 3.

    Returns:
        The evaluation report as text.

    Raises:
        InvalidInputError: Bad folder, model name or arguments.

    Example:
        >>> train_from_folder("data", out="m.keras", epochs=1)  # doctest: +SKIP
    """
    target = Path(os.fspath(out))
    if target.suffix != ".keras":
        raise InvalidInputError(f"--out: expected a file name ending in .keras, got '{target}'")
    layout = detect_layout(data_dir)
    parts = image_folder(data_dir, image_size=image_size, channels=channels, classes=classes,
                         batch_size=batch_size, validation_split=validation_split,
                         subset="both", seed=seed, augment=True)
    if not isinstance(parts, tuple):  # pragma: no cover - subset="both" gives a pair
        raise InvalidInputError("validation_split: a validation part is needed")
    train, val = parts
    names = list(train.class_names)
    model = build(model_name, input_shape=(image_size, image_size, channels),
                  num_classes=len(names))
    checkpoint = target.with_name(f"{target.stem}.checkpoint")
    print(f"training {model_name} on {len(names)} classes {names} from '{data_dir}' "
          f"({layout} layout); checkpoint in '{checkpoint}'", flush=True)
    fit(model, train, val, epochs=epochs, checkpoint_dir=checkpoint, resume=True, seed=seed)
    classifier = Classifier(model, names)
    test = val
    label = "validation part"
    if layout == "kaggle" and (Path(os.fspath(data_dir)) / "test").is_dir():
        test = image_folder(data_dir, image_size=image_size, channels=channels,
                            classes=names, batch_size=batch_size, subset="test")
        label = "test/"
    classifier.save(target)
    report = evaluate(classifier, test)
    return f"saved {target}\nevaluation on the {label}:\n{report.to_text()}"
