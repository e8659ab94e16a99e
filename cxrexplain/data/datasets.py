"""``tf.data`` pipelines of chest X-rays: :func:`image_folder` and :func:`from_files`.

Each element is a batch ``(images, labels)``: images float32 ``(N, H, W, C)`` in [0, 1]
decoded by :func:`cxrexplain.io.load_image` (PNG/JPEG/BMP/TIFF, 8- or 16-bit, gray or colour,
DICOM with the ``dicom`` extra; resized with area interpolation), labels int32 ``(N,)``. The
returned dataset carries, like Keras' ``image_dataset_from_directory``, the attributes
``class_names`` (label ``i`` is ``class_names[i]``: pass them to
:class:`cxrexplain.Classifier`), ``file_paths`` and ``labels`` (int32 array, in file order),
and ``skipped_folders``: the sub-folders of the root not taken as classes, ``{name: reason}``
(a mask folder, or one without images directly in it; see :mod:`cxrexplain.data.files`).
These attributes are lost if you ``.map()`` the dataset; keep a reference.

Pipeline: decode in parallel (``tf.numpy_function``) -> cache (memory by default; a path caches
on disk; False decodes every epoch) -> shuffle (training parts) -> batch -> augment
(training parts, when asked) -> prefetch. A file that cannot be decoded stops the iteration
with a TensorFlow error carrying the :class:`~cxrexplain.ImageLoadError` message that names it.

Example:
    >>> import cxrexplain as cx
    >>> train, val = cx.data.image_folder("chest_xray/train", image_size=224,
    ...                                   validation_split=0.2, seed=1)
    >>> train.class_names
    ['NORMAL', 'PNEUMONIA']
    >>> images, labels = next(iter(train))
    >>> images.shape, images.dtype, labels.dtype
    (TensorShape([8, 224, 224, 1]), tf.float32, tf.int32)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tensorflow as tf

from cxrexplain._checks import check_channels, check_int
from cxrexplain.data.augment import Augmentation
from cxrexplain.data.boxes import boxes_for, read_boxes
from cxrexplain.data.files import (
    KAGGLE_PARTS,
    LabeledFiles,
    detect_layout,
    list_images,
    scan_classes,
)
from cxrexplain.data.pipeline import (
    BOXES,
    IMAGES,
    LUNGS,
    augmentation_of,
    check_image_size,
    pipeline,
    segment_films,
)
from cxrexplain.data.splits import stratified_split
from cxrexplain.errors import InvalidInputError
from cxrexplain.lungs.segmenter import LungSegmenter, check_segmenter

__all__ = ["BOXES", "IMAGES", "LUNGS", "Subset", "from_files", "image_folder", "pipeline"]

Subset = Literal["training", "validation", "both", "test"]
_SUBSETS = ("training", "validation", "both", "test")


def from_files(
    files: LabeledFiles,
    *,
    image_size: int | tuple[int, int],
    channels: int = 1,
    batch_size: int = 32,
    shuffle: bool = False,
    augment: bool | Augmentation = False,
    flip: bool = False,
    cache: bool | str | os.PathLike[str] = True,
    seed: int = 0,
    boxes: str | os.PathLike[str] | Mapping[Any, Any] | None = None,
    lungs: LungSegmenter | None = None,
) -> tf.data.Dataset:
    """A batched dataset of the given files.

    Args:
        files: Paths, labels and class names (:func:`~cxrexplain.data.list_images`,
            :func:`~cxrexplain.data.k_folds`).
        image_size: Output size, an int or ``(height, width)``.
        channels: 1 (gray, the default) or 3.
        batch_size: Images per batch (the last batch may be smaller).
        shuffle: Reshuffle the images every epoch (seeded).
        augment: ``True`` for the default :class:`Augmentation`, an :class:`Augmentation`,
            or ``False``.
        flip: With ``augment=True``, also flip left-right (off by default for chest films).
        cache: Keep decoded images in memory (``True``), in a cache file (a path), or decode
            every epoch (``False``).
        seed: Seed of the shuffle and the augmentation.
        boxes: Radiologists' boxes: a box CSV or a mapping path -> boxes
            (:func:`~cxrexplain.data.read_boxes`; in each film's own pixels). The elements
            are then ``({"images": images, "boxes": masks}, labels)``, ``masks`` float32
            ``(N, H, W, 1)``: 1 inside a box of the film (rescaled with it, moved with it by
            the augmentation), all 0 for a film without boxes; the dataset's
            ``box_counts`` gives each film's number of boxes. For
            :class:`cxrexplain.training.Guide`'s box term; a plain ``fit`` drops them.
        lungs: A lung segmenter: each film's lung mask is computed **once**, here, at the
            output size (the segmenter's clean-up included), and travels with the film under
            the key ``"lungs"`` (moved by the augmentation, as boxes are). A
            :class:`~cxrexplain.training.Guide` then reads these masks instead of running its
            segmenter at every training step (the same masks, several times cheaper).
            An ``augment=Augmentation(background_swap=seg)`` segments the films the same way
            (with ``lungs`` when given, else with its own segmenter) and swaps their
            surroundings within each batch; its masks stay out of the elements unless
            ``lungs`` is given.

    Returns:
        A ``tf.data.Dataset`` of ``(images, labels)`` batches with ``class_names``,
        ``file_paths``, ``labels`` and ``skipped_folders`` attributes.

    Raises:
        InvalidInputError: No files, or a bad argument.

    Example:
        >>> from cxrexplain.data import list_images
        >>> ds = from_files(list_images("cxr"), image_size=64, batch_size=8)
        >>> [int(len(labels)) for _, labels in ds], ds.class_names
        ([8, 7], ['COVID', 'NORMAL', 'PNEUMONIA'])
    """
    size = check_image_size(image_size)
    check_channels(channels)
    check_int(batch_size, "batch_size")
    if not isinstance(files, LabeledFiles) or len(files) == 0:
        raise InvalidInputError("files: expected a non-empty LabeledFiles")
    transform = augmentation_of(augment, flip)

    table = None if boxes is None else read_boxes(boxes)
    film_boxes = None if table is None else boxes_for(files.paths, table)
    lung_masks = None
    if lungs is not None:
        check_segmenter(lungs, "lungs")
        lung_masks = segment_films(lungs, list(files.paths), size)
    dataset = pipeline(
        list(files.paths), files.label_array, size=size, channels=channels,
        batch_size=batch_size, shuffle=shuffle, transform=transform, cache=cache, seed=seed,
        film_boxes=film_boxes, lung_masks=lung_masks)
    dataset.class_names = list(files.class_names)
    dataset.file_paths = list(files.paths)
    dataset.labels = files.label_array
    dataset.skipped_folders = dict(files.skipped)
    if film_boxes is not None:
        dataset.box_counts = np.array([len(b) for b in film_boxes], np.int64)
    return dataset


def image_folder(
    root: str | os.PathLike[str],
    *,
    image_size: int | tuple[int, int],
    channels: int = 1,
    classes: Sequence[str] | None = None,
    batch_size: int = 32,
    validation_split: float | None = None,
    subset: Subset | None = None,
    seed: int = 0,
    augment: bool | Augmentation = False,
    flip: bool = False,
    shuffle: bool | None = None,
    cache: bool | str | os.PathLike[str] = True,
    boxes: str | os.PathLike[str] | Mapping[Any, Any] | None = None,
    lungs: LungSegmenter | None = None,
) -> tf.data.Dataset | tuple[tf.data.Dataset, tf.data.Dataset]:
    """Datasets of ``(image, label)`` batches from a folder of chest X-rays.

    **Class-folder root** (``root/<class>/<image>``): the whole folder, or with
    ``validation_split`` a stratified, seeded split into training and validation parts.

    **Kaggle root** (``root/train``, ``root/val``, ``root/test``, each with class folders):
    ``"training"`` is ``train/``, ``"validation"`` is ``val/`` and ``"test"`` is ``test/``.
    With ``validation_split`` the training and validation parts are instead a stratified split
    of ``train/`` and ``val/`` pooled (Kaggle's ``val/`` holds only 16 images, too few to
    watch a training run); ``test/`` is never touched by the split.

    Args:
        root: The folder.
        image_size: Output size, an int or ``(height, width)``.
        channels: 1 (gray, the default) or 3 (gray repeated when the file is gray).
        classes: Class folder names in label order; default: the folders with images
            directly in them, except mask folders (``lung_masks/``), sorted by name (a stable
            order; the datasets' ``class_names`` give it, their ``skipped_folders`` the
            folders left out and why).
        batch_size: Images per batch.
        validation_split: Validation fraction in (0, 1), or None.
        subset: ``"training"``, ``"validation"``, ``"both"`` (a ``(training, validation)``
            tuple) or ``"test"`` (Kaggle roots). ``None`` means ``"both"`` when there is a
            validation part (a ``validation_split``, or a Kaggle root with ``val/``), else
            the whole folder (for a Kaggle root without ``val/``: ``train/``).
        seed: Seed of the split, the shuffle and the augmentation.
        augment: Augment the training part (``True``: :class:`Augmentation` defaults, no
            flip; or an :class:`Augmentation`). Validation and test parts are never augmented.
        flip: With ``augment=True``, also flip left-right.
        shuffle: Reshuffle every epoch; default: the training part and a whole folder are
            shuffled, validation and test parts are not.
        cache: See :func:`from_files`.
        boxes: A box CSV (or mapping) for every part: see :func:`from_files`.
        lungs: A lung segmenter whose masks travel with the films: see :func:`from_files`.

    Returns:
        One ``tf.data.Dataset``, or a ``(training, validation)`` tuple for ``"both"``.

    Raises:
        InvalidInputError: The folder is missing or empty, has one class, ``subset`` does not
            fit the layout, or an argument is invalid.

    Example:
        >>> import cxrexplain as cx
        >>> ds = cx.data.image_folder("cxr", image_size=128)
        >>> ds.class_names, len(ds.file_paths)
        (['COVID', 'NORMAL', 'PNEUMONIA'], 15)
        >>> test = cx.data.image_folder("chest_xray", image_size=128, subset="test")
        >>> test.labels.tolist()
        [0, 0, 1, 1]
    """
    if subset is not None and subset not in _SUBSETS:
        raise InvalidInputError(f"subset: expected one of {', '.join(_SUBSETS)} or None, got "
                                f"{subset!r}")
    parts = _parts(root, classes, validation_split, seed)
    wanted = subset or ("both" if "validation" in parts else "whole")
    if wanted == "both":
        for name in ("training", "validation"):
            _require(parts, name, root, validation_split)
    elif wanted != "whole":
        _require(parts, wanted, root, validation_split)

    def make(name: str) -> tf.data.Dataset:
        training = name in ("training", "whole")
        return from_files(
            parts[name], image_size=image_size, channels=channels, batch_size=batch_size,
            shuffle=training if shuffle is None else shuffle,
            augment=augment if training else False, flip=flip, cache=cache, seed=seed,
            boxes=boxes, lungs=lungs,
        )

    if wanted == "both":
        return make("training"), make("validation")
    return make(wanted)


def _parts(
    root: str | os.PathLike[str],
    classes: Sequence[str] | None,
    validation_split: float | None,
    seed: int,
) -> dict[str, LabeledFiles]:
    """The available parts of a root: whole / training / validation / test."""
    parts: dict[str, LabeledFiles] = {}
    if detect_layout(root) == "classes":
        files = list_images(root, classes=classes)
        if validation_split is None:
            parts["whole"] = files
        else:
            parts["training"], parts["validation"] = stratified_split(
                files, validation_split, seed=seed)
        return parts
    folder = Path(os.fspath(root))
    train = list_images(folder / KAGGLE_PARTS[0], classes=classes)
    names = train.class_names
    val = scan_classes(folder / KAGGLE_PARTS[1], names, require_all=False)
    test = scan_classes(folder / KAGGLE_PARTS[2], names, require_all=False)
    if validation_split is None:
        parts["training"] = train
        if len(val):
            parts["validation"] = val
    else:
        parts["training"], parts["validation"] = stratified_split(
            train + val, validation_split, seed=seed)
    if len(test):
        parts["test"] = test
    parts["whole"] = parts["training"]
    return parts


def _require(parts: dict[str, LabeledFiles], name: str, root: str | os.PathLike[str],
             validation_split: float | None) -> None:
    if name in parts:
        return
    if name == "test":
        raise InvalidInputError(
            f"subset: 'test' needs a Kaggle-layout root with a test/ folder; '{root}' has none"
        )
    hint = "pass validation_split=" if validation_split is None else ""
    raise InvalidInputError(
        f"subset: '{root}' has no {name} part; {hint or 'check the folder'}"
    )
