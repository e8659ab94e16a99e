"""The set-up of the ``>>>`` examples in ``cxrexplain/`` (``--doctest-modules``, pyproject.toml).

Every example runs in its own temporary working folder, so examples may write files
(``clf.save("pneumonia.keras")``, figures, reports). The folder holds links to small fake
inputs:

* ``xray.png``, ``a.png``, ``b.png``: 64 x 64 gray phantoms (:mod:`cxrexplain.synthetic`);
* ``chest_xray/``: the Kaggle layout, ``train/`` (5 images per class), ``val/`` (1) and
  ``test/`` (2), classes ``NORMAL`` and ``PNEUMONIA``;
* ``cxr/``: one folder per class, ``COVID``, ``NORMAL`` and ``PNEUMONIA``, 5 images each;
* ``pneumonia.keras``: ``clf`` below, saved;
* for the examples of ``training/checkpoint.py`` only, ``runs/cam_cnn/``: the checkpoint of a
  finished two-epoch :func:`cxrexplain.training.fit` run (a copy, which they may change).

and these names are ready (built once, in a few seconds on a CPU):

* ``np``, ``keras``, ``cx`` (``cxrexplain``), ``Path``;
* ``model``: an untrained ``cam_cnn`` for 32 x 32 gray images, 2 classes (softmax),
  ``filters=(4, 8)`` (so its layers are ``block1_conv`` ... ``block2_relu``, ``gap``,
  ``dropout``, ``predictions``); ``clf``: ``cx.Classifier(model, ["NORMAL", "PNEUMONIA"])``.
  Their weights and threshold are put back before every example (and the model registry
  after it);
* ``batch`` (also ``images``): 4 phantoms ``(4, 32, 32, 1)``, labels NORMAL, PNEUMONIA,
  NORMAL, PNEUMONIA; ``labels``; ``masks`` (the planted lesions) and ``lungs`` (the lung
  fields), ``(4, 32, 32)`` bool; ``boxes``: ``(4, 4)`` ``x, y, width, height`` of each lesion
  (of the lung fields for a normal image); ``img``: ``batch[0]``;
* ``exp``: ``cx.GradCAM(clf).explain(batch)``;
* ``train``, ``val``, ``test``: ``(images, labels)`` tuples of 8, 4 and 4 phantoms;
* ``data``: :func:`cxrexplain.synthetic.generate` of 8 phantoms ``32 x 32`` (``.images``,
  ``.lung_masks``); ``seg``: an untrained ``LungSegmenter`` for 32 x 32 (also saved as
  ``lungs.keras``); ``rep``: an ``AuditReport`` of three films (two PNEUMONIA films looking
  outside the lungs: flagged);
* ``report``: an evaluation report of three classes (COVID, NORMAL, PNEUMONIA) on 10 images;
  ``result``: a two-fold cross-validation result of such reports; ``fold``: its first fold.

Tests under ``tests/`` see none of this.
"""

from __future__ import annotations

import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PACKAGE = Path(__file__).resolve().parent / "cxrexplain"

collect_ignore = ["cxrexplain/__main__.py"]  # runs the command line when imported

_CLASSES = ("NORMAL", "PNEUMONIA")


def _boxes(masks: Any, lungs: Any) -> Any:
    import numpy as np

    rows = []
    for lesion, fields in zip(masks, lungs, strict=True):
        ys, xs = np.nonzero(lesion if lesion.any() else fields)
        rows.append([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
    return np.array(rows, np.float64)


def _write_png(path: Path, image: Any) -> None:
    import cv2
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.round(image[..., 0] * 255).astype(np.uint8))


def _write_folders(folder: Path, count: int, classes: tuple[str, ...], seed: int) -> None:
    import cxrexplain as cx

    data = cx.synthetic.generate(count, size=64, classes=classes, seed=seed)
    for i, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
        _write_png(folder / data.class_names[label] / f"{i:02d}.png", image)


def _reports() -> tuple[Any, Any]:
    import numpy as np

    from cxrexplain.training import report_from_predictions
    from cxrexplain.training.cv_results import CrossValidationResult, FoldResult

    names = ("COVID", "NORMAL", "PNEUMONIA")
    labels = np.array([0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    probabilities = np.array(
        [[0.8, 0.1, 0.1], [0.3, 0.2, 0.5], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1],
         [0.1, 0.6, 0.3], [0.1, 0.3, 0.6], [0.1, 0.2, 0.7], [0.2, 0.1, 0.7],
         [0.1, 0.4, 0.5], [0.3, 0.5, 0.2]], np.float32)
    report = report_from_predictions(labels, probabilities, names)
    second = report_from_predictions(labels, probabilities[[0, 9, 2, 3, 4, 5, 6, 7, 8, 1]],
                                     names)
    folds = tuple(FoldResult(i, r, 2.0, 3, 40, 60.0) for i, r in enumerate((report, second)))
    return report, CrossValidationResult(folds, names, 2)


@pytest.fixture(scope="session")
def doctest_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The ready names of the examples and the folder of fake files (``"_files"``)."""
    import keras
    import numpy as np

    import cxrexplain as cx

    keras.utils.set_random_seed(0)
    model = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2, filters=(4, 8))
    clf = cx.Classifier(model, class_names=list(_CLASSES))
    data = cx.synthetic.generate(4, size=32, classes=_CLASSES, seed=0)
    train = cx.synthetic.generate(8, size=32, classes=_CLASSES, seed=1)
    val = cx.synthetic.generate(4, size=32, classes=_CLASSES, seed=2)
    test = cx.synthetic.generate(4, size=32, classes=_CLASSES, seed=3)
    report, result = _reports()

    files = tmp_path_factory.mktemp("doctest_files")
    singles = cx.synthetic.generate(3, size=64, classes=_CLASSES, seed=5).images
    for name, image in zip(("xray.png", "a.png", "b.png"), singles, strict=True):
        _write_png(files / name, image)
    for part, count in (("train", 10), ("val", 2), ("test", 4)):
        _write_folders(files / "chest_xray" / part, count, _CLASSES, seed=len(part))
    _write_folders(files / "cxr", 15, ("COVID", "NORMAL", "PNEUMONIA"), seed=4)
    clf.save(files / "pneumonia.keras")
    audit_data = cx.synthetic.generate(8, size=32, classes=_CLASSES, seed=6)
    seg = cx.lungs.LungSegmenter(cx.models.build("lung_unet", input_shape=(32, 32, 1),
                                                 filters=(4, 8)))
    seg.save(files / "lungs.keras")
    from cxrexplain.auditing.report import AuditReport, AuditRule

    rep = AuditReport.from_measures(
        lung_share=np.array([0.1, 0.2, 0.9]), border_share=np.array([0.8, 0.7, 0.0]),
        peak_in_lungs=np.array([False, False, True]), peak=np.full((3, 2), 0.5),
        targets=np.array([1, 1, 0]),
        probabilities=np.array([[.2, .8], [.1, .9], [.7, .3]], np.float32),
        class_names=_CLASSES, rule=AuditRule(min_images=2))

    return {
        "np": np, "keras": keras, "cx": cx, "Path": Path,
        "model": model, "clf": clf, "batch": data.images, "images": data.images,
        "labels": data.labels, "masks": data.masks, "lungs": data.lung_masks,
        "boxes": _boxes(data.masks, data.lung_masks), "img": data.images[0],
        "exp": cx.GradCAM(clf).explain(data.images),
        "train": (train.images, train.labels), "val": (val.images, val.labels),
        "test": (test.images, test.labels),
        "report": report, "result": result, "fold": result.folds[0],
        "data": audit_data, "seg": seg, "rep": rep,
        "_files": files, "_weights": model.get_weights(),
    }


@pytest.fixture(scope="session")
def doctest_run(tmp_path_factory: pytest.TempPathFactory,
                doctest_objects: dict[str, Any]) -> Path:
    """A finished two-epoch checkpoint folder, ``runs/cam_cnn`` (for ``training/checkpoint.py``)."""
    import cxrexplain as cx

    runs = tmp_path_factory.mktemp("doctest_runs")
    model = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2, filters=(4, 8))
    cx.training.fit(model, doctest_objects["train"], doctest_objects["val"], epochs=2,
                    checkpoint_dir=runs / "cam_cnn", seed=0, verbose=0)
    return runs


@pytest.fixture(autouse=True)
def _doctest_setup(request: pytest.FixtureRequest) -> Iterator[None]:
    """For the examples in ``cxrexplain/``: the ready names and a fresh working folder."""
    if not Path(str(request.node.path)).resolve().is_relative_to(PACKAGE):
        yield
        return
    objects: dict[str, Any] = request.getfixturevalue("doctest_objects")
    namespace: dict[str, Any] = request.getfixturevalue("doctest_namespace")
    work: Path = request.getfixturevalue("tmp_path")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    files: Path = objects["_files"]
    for entry in files.iterdir():
        (work / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    if Path(str(request.node.path)).name == "checkpoint.py":
        shutil.copytree(request.getfixturevalue("doctest_run"), work / "runs")
    monkeypatch.chdir(work)
    from cxrexplain.models import registry

    # an example may register a builder: it is gone after the example
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    objects["model"].set_weights(objects["_weights"])
    objects["clf"].threshold = None
    namespace.update({k: v for k, v in objects.items() if not k.startswith("_")})
    yield
