"""Training with a lung focus: ``cxrexplain train --lungs``, ``train_from_folder(lungs=...)``
and ``cross_validate(lungs=...)`` (issue 14).

Everything is tiny: 48 px phantoms, a 32 px lung U-Net with filters (4, 8) trained for one
epoch, one training epoch.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import pytest

import cxrexplain as cx
from cxrexplain.cli import build_parser, main
from cxrexplain.cli.train.from_folder import train_from_folder
from cxrexplain.errors import InvalidInputError, ModelLoadError
from cxrexplain.models.lung_focus import MODES, LungFocus
from cxrexplain.training import cross_validation

SIZE = 48
CLASSES = ("NORMAL", "PNEUMONIA")


@pytest.fixture(scope="module")
def lungs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = cx.synthetic.generate(8, size=32, seed=0)
    keras.utils.set_random_seed(0)
    model = cx.models.build("lung_unet", input_shape=(32, 32, 1), filters=(4, 8))
    segmenter = cx.lungs.train(data.images, data.lung_masks, image_size=32, epochs=1,
                               model=model, verbose=0)
    return segmenter.save(tmp_path_factory.mktemp("lungs") / "lungs.keras")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("films")
    data = cx.synthetic.generate(16, size=SIZE, classes=CLASSES, seed=1)
    for i, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
        path = root / data.class_names[label] / f"{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.round(image[..., 0] * 255).astype(np.uint8))
    return root


def train_args(folder: Path, out: Path, *extra: str) -> list[str]:
    return ["train", str(folder), "--out", str(out), "--image-size", str(SIZE), "--epochs",
            "1", "--batch-size", "8", "--validation-split", "0.25", *extra]


def focus_of(model: keras.Model) -> LungFocus:
    layers = [layer for layer in model.layers if isinstance(layer, LungFocus)]
    assert len(layers) == 1, [layer.name for layer in model.layers]
    return layers[0]


# ------------------------------------------------------------------------------ the command
@pytest.mark.parametrize("mode", ["mask", "inverse"])
def test_the_command_trains_a_focused_model_with_the_segmenter_inside(
        folder: Path, lungs_file: Path, tmp_path: Path, mode: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "focused.keras"
    extra = ["--lungs", str(lungs_file), "--lung-mode", mode]
    assert main(train_args(folder, out, *extra)) == 0
    printed = capsys.readouterr().out
    assert f"with lung focus ({mode or 'mask'})" in printed and f"saved {out}" in printed
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".keras") == [out.name]

    clf = cx.Classifier.load(out)  # safe_mode on
    assert clf.class_names == list(CLASSES)
    assert clf.model.input_shape == (None, SIZE, SIZE, 1)
    focus = focus_of(clf.model)
    assert focus.mode == (mode or "mask")
    segmenter = cx.lungs.LungSegmenter.load(lungs_file)
    assert focus.threshold == segmenter.threshold
    saved = focus.segmenter.get_weights()
    given = segmenter.model.get_weights()
    assert len(saved) == len(given) > 0
    for before, after in zip(given, saved, strict=True):
        np.testing.assert_array_equal(before, after)
    films = cx.synthetic.generate(3, size=SIZE, seed=5).images
    probabilities = clf.predict_proba(films)
    assert probabilities.shape == (3, 2) and np.all(np.isfinite(probabilities))
    assert cx.GradCAM(clf).layer.startswith("cam_cnn/")  # the classifier's, not the U-Net's


def test_the_command_without_lungs_trains_a_plain_model(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain.keras"
    assert main(train_args(folder, out)) == 0
    model = cx.Classifier.load(out).model
    assert not any(isinstance(layer, LungFocus) for layer in model.layers)


@pytest.mark.parametrize(
    ("lungs", "message"),
    [
        ("missing.keras", r"--lungs: no such file '.*missing\.keras'"),
        ("notes.keras", r"--lungs: "),
        ("classifier.keras", r"--lungs: model file '.*classifier\.keras': holds a classifier"),
    ],
)
def test_a_bad_lungs_file_is_a_clear_error_before_training(
        folder: Path, tmp_path: Path, lungs: str, message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.keras").write_text("not a model")
    model = cx.models.build("cam_cnn", input_shape=(SIZE, SIZE, 1), num_classes=2,
                            filters=(4, 8))
    cx.Classifier(model, list(CLASSES)).save(tmp_path / "classifier.keras")
    out = tmp_path / "out.keras"
    assert main(train_args(folder, out, "--lungs", str(tmp_path / lungs))) == 1
    err = capsys.readouterr().err
    assert err.startswith("cxrexplain: error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert not out.exists() and not out.with_name("out.checkpoint").exists()


def test_lung_mode_needs_lungs_and_a_known_mode(folder: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.keras"
    assert main(train_args(folder, out, "--lung-mode", "inverse")) == 1
    assert "--lung-mode: needs --lungs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse: a usage error
        main(train_args(folder, out, "--lungs", "lungs.keras", "--lung-mode", "outside"))
    assert exit_info.value.code == 2
    assert "--lung-mode" in capsys.readouterr().err
    assert not out.exists()


def test_the_commands_lung_modes_are_the_libraries() -> None:
    commands = next(a for a in build_parser()._actions
                    if isinstance(a, argparse._SubParsersAction))
    train = commands.choices["train"]
    action = next(a for a in train._actions if a.dest == "lung_mode")
    assert action.choices is not None and tuple(action.choices) == MODES


# ------------------------------------------------------------------------------ Python helpers
def test_train_from_folder_takes_a_segmenter_object(folder: Path, lungs_file: Path,
                                                    tmp_path: Path) -> None:
    segmenter = cx.lungs.LungSegmenter.load(lungs_file)
    out = tmp_path / "m.keras"
    report = train_from_folder(folder, out=out, image_size=SIZE, epochs=1, batch_size=8,
                               validation_split=0.25, lungs=segmenter, lung_mode="inverse")
    assert f"saved {out}" in report
    assert focus_of(cx.Classifier.load(out).model).mode == "inverse"


def test_train_from_folder_bad_lung_arguments(folder: Path, lungs_file: Path,
                                              tmp_path: Path) -> None:
    out = tmp_path / "m.keras"
    with pytest.raises(InvalidInputError, match=r"^--lungs: expected a lung segmenter"):
        train_from_folder(folder, out=out, lungs=42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"^--lung-mode: 'inverse' needs a lung"):
        train_from_folder(folder, out=out, lung_mode="inverse")
    with pytest.raises(InvalidInputError, match=r"^--lung-mode: expected one of 'mask'"):
        train_from_folder(folder, out=out, lungs=lungs_file, lung_mode="outside")
    with pytest.raises(ModelLoadError, match=r"^--lungs: no such file"):
        train_from_folder(folder, out=out, lungs=tmp_path / "none.keras")
    assert not out.exists()



def recording_builder(built: list[keras.Model]) -> Callable[[cx.training.FoldSetup], keras.Model]:
    """A ``build_fn`` for ``cross_validate`` that keeps every model it builds in ``built``."""
    def build(setup: cx.training.FoldSetup) -> keras.Model:
        built.append(cx.models.build("cam_cnn", input_shape=setup.input_shape,
                                     num_classes=setup.num_classes, filters=(4, 8)))
        return built[-1]
    return build

def test_cross_validate_wraps_each_folds_model(folder: Path, lungs_file: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    segmenter = cx.lungs.LungSegmenter.load(lungs_file)
    trained: list[keras.Model] = []
    real_fit = cx.training.fit

    def spy(model: keras.Model, *args: Any, **kwargs: Any) -> Any:
        trained.append(model)
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(cross_validation, "fit", spy)
    built: list[keras.Model] = []
    build = recording_builder(built)

    results = tmp_path / "cv"
    options: dict[str, Any] = {"k": 2, "image_size": SIZE, "epochs": 1, "batch_size": 8,
                               "folds": [0], "validation_fraction": None,
                               "results_dir": results}
    result = cx.training.cross_validate(build, folder, lungs=segmenter, lung_mode="inverse",
                                        **options)
    assert len(result.folds) == 1 and result.folds[0].report.n == 8
    assert len(trained) == 1 and trained[0] is not built[0]
    focus = focus_of(trained[0])
    assert focus.mode == "inverse"
    assert trained[0].get_layer(built[0].name) is built[0]
    record = json.loads((results / "fold_0.json").read_text())["setup"]["lungs"]
    assert record["mode"] == "inverse" and len(record["weights"]) == 40

    # the recorded set-up keeps focused and plain results apart
    others: list[dict[str, Any]] = [{}, {"lungs": segmenter, "lung_mode": "mask"}]
    for other in others:
        with pytest.raises(InvalidInputError, match=r"another set-up \(differs in lungs\)"):
            cx.training.cross_validate(build, folder, **other, **options)
    assert len(trained) == 1  # refused before any training


def test_cross_validate_without_lungs_trains_the_built_model(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list[keras.Model] = []

    def stop(model: keras.Model, *args: Any, **kwargs: Any) -> Any:
        trained.append(model)
        raise RuntimeError("stop")

    monkeypatch.setattr(cross_validation, "fit", stop)
    built: list[keras.Model] = []
    build = recording_builder(built)

    with pytest.raises(RuntimeError, match="stop"):
        cx.training.cross_validate(build, folder, k=2, image_size=SIZE, epochs=1, folds=[0])
    assert trained == built


def test_cross_validate_bad_lung_arguments(folder: Path, lungs_file: Path) -> None:
    def build(setup: cx.training.FoldSetup) -> keras.Model:
        raise AssertionError("not reached")

    with pytest.raises(InvalidInputError, match=r"^lungs: expected a cx.lungs.LungSegmenter"):
        cx.training.cross_validate(build, folder, lungs=str(lungs_file))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"^lung_mode: 'inverse' needs a lung"):
        cx.training.cross_validate(build, folder, lung_mode="inverse")
    with pytest.raises(InvalidInputError, match=r"^lung_mode: expected one of 'mask', 'inverse'"):
        cx.training.cross_validate(build, folder, lungs=cx.lungs.LungSegmenter.load(lungs_file),
                                   lung_mode="both")


# ------------------------------------------------------------------ explanation guide
def test_lungs_alone_trains_the_recommended_guide(folder: Path, lungs_file: Path,
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from cxrexplain.training.guide import RECOMMENDED_WEIGHT

    out = tmp_path / "default.keras"
    assert main(train_args(folder, out, "--lungs", str(lungs_file))) == 0
    printed = capsys.readouterr().out
    assert ("guided (lungs x0.2, swap p=1, swap consistency x1)" in printed
            and "with lung focus" not in printed)
    assert not any(isinstance(layer, LungFocus) for layer in cx.Classifier.load(out).model.layers)
    commands = next(a for a in build_parser()._actions
                    if isinstance(a, argparse._SubParsersAction))
    guide_weight = next(a for a in commands.choices["train"]._actions
                        if a.dest == "guide_weight")
    assert guide_weight.default == RECOMMENDED_WEIGHT


def test_the_command_trains_a_guided_plain_model(folder: Path, lungs_file: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    boxes = tmp_path / "boxes.csv"
    films = sorted((folder / "PNEUMONIA").glob("*.png"))
    boxes.write_text("image,x,y,width,height\n"
                     + "".join(f"PNEUMONIA/{p.name},10,12,20,16\n" for p in films))
    out = tmp_path / "guided.keras"
    assert main(train_args(folder, out, "--lungs", str(lungs_file), "--guide", "lungs,boxes",
                           "--boxes", str(boxes), "--swap", "0.5")) == 0
    printed = capsys.readouterr().out
    assert "guided (lungs x0.2, boxes x0.2, swap p=0.5)" in printed
    assert "with lung focus" not in printed
    log = (tmp_path / "guided.checkpoint" / "log.csv").read_text().splitlines()[0]
    assert {"lung_outside", "box_outside", "val_lung_outside"} <= set(log.split(","))
    model = cx.Classifier.load(out).model  # the plain classifier: no focus, no guide
    assert not any(isinstance(layer, LungFocus) for layer in model.layers)
    assert len(model.inputs) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--guide", "lungs"], r"--guide lungs / --swap: need --lungs"),
        (["--guide", "ribs"], r"--guide: expected lungs, boxes or lungs,boxes"),
        (["--guide", "boxes"], r"--guide boxes: needs --boxes"),
        (["--swap", "2"], r"--swap"),
        (["--swap-consistency", "1"], r"--swap-consistency: needs --swap"),
    ],
)
def test_guide_arguments_are_checked_before_training(
        folder: Path, tmp_path: Path, extra: list[str], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(train_args(folder, tmp_path / "m.keras", *extra)) == 1
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "m.checkpoint").exists()
