"""``cx.training.ExplanationCallback`` (issue 17): explanations of fixed films while a model
trains, checked against independent references: the logged lung share equals ``cx.audit``'s on
the trained model, the pointing game equals ``cx.metrics.pointing_game`` of a fresh explainer,
each epoch's maps equal a fresh explainer on a copy holding that epoch's weights (the one traced
pass follows the weights), and TensorBoard's own reader finds the grids and scalars. Nested
backbones, mixed precision and a two-replica MirroredStrategy on CPU work."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import pytest
from tiny_models import TWO_LOGICAL_CPUS, nested_vgg16

import cxrexplain as cx
from cxrexplain import _passes
from cxrexplain.cli import main
from cxrexplain.errors import InvalidInputError, MissingDependencyError
from cxrexplain.training import ExplanationCallback
from cxrexplain.training import explanation_callback as module

SIZE = 32
CLASSES = ("NORMAL", "PNEUMONIA")


# ------------------------------------------------------------------------------ helpers
def _phantoms(n: int, seed: int = 0, channels: int = 1) -> cx.synthetic.PhantomSet:
    return cx.synthetic.generate(n, size=SIZE, classes=CLASSES, seed=seed, channels=channels)


def _lesion_boxes(masks: np.ndarray) -> list[list[int] | None]:
    """The planted lesion's box (x, y, w, h) per film; None for a normal film."""
    boxes: list[list[int] | None] = []
    for lesion in masks:
        if not lesion.any():
            boxes.append(None)
            continue
        ys, xs = np.nonzero(lesion)
        boxes.append([int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                      int(ys.max() - ys.min() + 1)])
    return boxes


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return cx.models.build("cam_cnn", input_shape=(SIZE, SIZE, 1), num_classes=2,
                           filters=(4, 8))


class _Recording(ExplanationCallback):
    """Keeps each explained epoch's maps and the weights they were made with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.maps: list[np.ndarray] = []
        self.weights: list[list[np.ndarray]] = []
        self.traced: list[int] = []

    def explain_now(self, epoch: int) -> dict[str, float]:
        scalars = super().explain_now(epoch)
        assert self.last_explanation is not None
        self.maps.append(self.last_explanation.heatmaps.copy())
        self.weights.append([w.copy() for w in self.model.get_weights()])
        self.traced.append(_passes.traced(self.model))
        return scalars


def _events(folder: Path) -> Any:
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    events = accumulator.EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return events


# ---------------------------------------------------------------- the planted phantoms
def test_grids_scalars_and_event_file_against_references(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    train = _phantoms(24, seed=1)
    films = _phantoms(6, seed=2)
    boxes = _lesion_boxes(films.masks)
    model = _model()
    model.compile("adam", "sparse_categorical_crossentropy")
    watch = _Recording(films.images, out_dir=tmp_path / "png", tensorboard_dir=tmp_path / "tb",
                       masks=films.lung_masks, boxes=boxes, class_names=CLASSES, tolerance=2)
    log = tmp_path / "log.csv"
    history = model.fit(train.images, train.labels, epochs=3, batch_size=8, verbose=0,
                        callbacks=[watch, keras.callbacks.CSVLogger(str(log))])

    # one grid per epoch, named by the 1-based epoch
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert names == ["epoch_001.png", "epoch_002.png", "epoch_003.png"]
    assert watch.epochs_explained == [1, 2, 3]

    # the scalars, one per epoch, in History and in the CSV log
    shares = history.history["expl_lung_share"]
    hits = history.history["expl_pointing_game"]
    assert len(shares) == len(hits) == 3
    assert all(0.0 <= v <= 1.0 for v in shares + hits)
    with log.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["expl_lung_share"]) for r in rows] == pytest.approx(shares)

    # references on the trained model (plain model.fit keeps the last epoch's weights)
    clf = cx.Classifier(model, class_names=list(CLASSES))
    audit = cx.audit(clf, films.images, lungs=films.lung_masks, method="gradcam")
    assert shares[-1] == pytest.approx(float(np.nanmean(audit.lung_share)), abs=1e-6)
    fresh = cx.GradCAM(clf).explain(films.images)
    np.testing.assert_allclose(watch.maps[-1], fresh.heatmaps, atol=1e-6)
    chosen = [i for i, b in enumerate(boxes) if b is not None]
    expected = cx.metrics.pointing_game(fresh.heatmaps[chosen], [boxes[i] for i in chosen],
                                        tolerance=2).hit_rate
    assert hits[-1] == pytest.approx(expected)

    # TensorBoard's own reader: one grid per epoch (steps 0, 1, 2), the PNG's picture
    events = _events(tmp_path / "tb")
    assert {"explanations", "explanation/lung_share",
            "explanation/pointing_game"} <= set(events.Tags()["tensors"])
    images = events.Tensors("explanations")
    assert [e.step for e in images] == [0, 1, 2]
    width, height, encoded = images[0].tensor_proto.string_val
    decoded = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
    on_disk = cv2.imread(str(tmp_path / "png" / "epoch_001.png"), cv2.IMREAD_COLOR)
    assert decoded.shape == on_disk.shape == (int(height), int(width), 3)
    np.testing.assert_array_equal(decoded, on_disk)
    logged = [float(np.frombuffer(e.tensor_proto.tensor_content, np.float32)[0])
              if e.tensor_proto.tensor_content else e.tensor_proto.float_val[0]
              for e in events.Tensors("explanation/lung_share")]
    assert logged == pytest.approx(shares, abs=1e-6)


def test_maps_follow_the_weights_with_one_traced_pass(tmp_path: Path) -> None:
    train = _phantoms(16, seed=3)
    films = _phantoms(4, seed=4)
    model = _model(1)
    watch = _Recording(films.images)
    cx.training.fit(model, (train.images, train.labels), epochs=3, verbose=0, callbacks=[watch],
                    seed=0)
    assert len(watch.maps) == 3
    assert watch.traced[0] == watch.traced[-1]  # traced once, then reused
    assert any(not np.allclose(watch.maps[0], later, atol=1e-3) for later in watch.maps[1:])
    copy = keras.models.clone_model(model)
    for weights, maps in zip(watch.weights, watch.maps, strict=True):
        copy.set_weights(weights)
        np.testing.assert_allclose(maps, cx.GradCAM(copy).explain(films.images).heatmaps,
                                   atol=1e-5)


def test_every_two_explains_even_epochs_only(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    train = _phantoms(8, seed=5)
    films = _phantoms(3, seed=6)
    model = _model(2)
    model.compile("adam", "sparse_categorical_crossentropy")
    watch = ExplanationCallback(list(films.images), method="cam", every=2, out_dir=tmp_path,
                                tensorboard_dir=tmp_path / "tb", masks=list(films.lung_masks))
    watch.set_model(model)
    watch.explain_now(-1)  # a picture before training: epoch_000.png
    history = model.fit(train.images, train.labels, epochs=3, verbose=0, callbacks=[watch])
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["epoch_000.png", "epoch_002.png"]
    assert watch.epochs_explained == [0, 2]
    shares = history.history["expl_lung_share"]
    assert math.isnan(shares[0]) and math.isnan(shares[2]) and 0.0 <= shares[1] <= 1.0
    assert watch.last_explanation is not None and watch.last_explanation.method == "cam"
    assert [e.step for e in _events(tmp_path / "tb").Tensors("explanations")] == [-1, 1]


def test_films_of_other_sizes_and_boxes_in_their_own_pixels(tmp_path: Path) -> None:
    big = cx.synthetic.generate(2, size=64, classes=CLASSES, seed=7)
    paths = []
    for i, image in enumerate(big.images):
        path = tmp_path / f"film{i}.png"
        cv2.imwrite(str(path), np.round(image[..., 0] * 255).astype(np.uint8))
        paths.append(path)
    # a box around the whole 64-pixel film: every map's peak lies inside it
    watch = ExplanationCallback(paths, boxes=[[0, 0, 64, 64], None], masks=big.lung_masks,
                                tolerance=0)
    watch.set_model(_model(3))
    scalars = watch.explain_now(0)
    assert scalars["expl_pointing_game"] in (0.0, 1.0)
    assert watch._scaled_boxes is not None
    np.testing.assert_allclose(watch._scaled_boxes[0], [[0, 0, 32, 32]])
    assert watch._lungs is not None and watch._lungs.shape == (2, SIZE, SIZE)


# ---------------------------------------------------------------- models and devices
def test_nested_backbone(tmp_path: Path) -> None:
    """tf-explain's Grad-CAM callback fails on this ("Graph disconnected", tf-explain #165)."""
    keras.utils.set_random_seed(0)
    model = nested_vgg16()
    model.compile("adam", "sparse_categorical_crossentropy")
    films = _phantoms(4, seed=8, channels=3)
    watch = ExplanationCallback(films.images, layer="vgg16/block3_conv3", out_dir=tmp_path,
                                masks=films.lung_masks)
    history = model.fit(films.images, films.labels, epochs=1, verbose=0, callbacks=[watch])
    assert watch.last_explanation is not None
    assert watch.last_explanation.layer == "vgg16/block3_conv3"
    assert watch.last_explanation.raw.shape == (4, 8, 8)
    assert (tmp_path / "epoch_001.png").is_file()
    assert len(history.history["expl_lung_share"]) == 1


def test_mixed_precision(tmp_path: Path) -> None:
    before = keras.config.dtype_policy().name
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _model(4)
        assert model.get_layer("block1_conv").compute_dtype == "float16"
        model.compile("adam", "sparse_categorical_crossentropy")
        train = _phantoms(8, seed=9)
        watch = _Recording(train.images[:4], out_dir=tmp_path, masks=train.lung_masks[:4])
        history = model.fit(train.images, train.labels, epochs=2, verbose=0, callbacks=[watch])
    finally:
        keras.config.set_dtype_policy(before)
    assert keras.config.dtype_policy().name == before
    for maps in watch.maps:
        assert maps.dtype == np.float32 and np.isfinite(maps).all()
        assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert all(np.isfinite(v) for v in history.history["expl_lung_share"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_001.png", "epoch_002.png"]


def test_mirrored_strategy_over_two_logical_cpus(tmp_path: Path) -> None:
    """Logical devices must be set before TensorFlow starts: a fresh interpreter."""
    script = TWO_LOGICAL_CPUS + textwrap.dedent(f"""
        import numpy as np, keras
        import cxrexplain as cx
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        data = cx.synthetic.generate(16, size={SIZE}, seed=0)
        keras.utils.set_random_seed(0)
        model = cx.models.build("cam_cnn", input_shape=({SIZE}, {SIZE}, 1), num_classes=2,
                                filters=(4, 8))
        gaps = []
        class Check(cx.training.ExplanationCallback):
            def explain_now(self, epoch):
                scalars = super().explain_now(epoch)
                copy = keras.models.clone_model(model)  # outside the strategy: a reference
                copy.set_weights(self.model.get_weights())
                fresh = cx.GradCAM(copy).explain(data.images[:4]).heatmaps
                gaps.append(float(np.abs(fresh - self.last_explanation.heatmaps).max()))
                return scalars
        import importlib.util
        board = r"{tmp_path / 'tb'}" if importlib.util.find_spec("tensorboard") else None
        watch = Check(data.images[:4], out_dir=r"{tmp_path / 'png'}", tensorboard_dir=board,
                      masks=data.lung_masks[:4])
        history = cx.training.fit(model, (data.images, data.labels), epochs=2, verbose=0,
                                  strategy=strategy, callbacks=[watch], seed=0)
        print(json.dumps({{"replicas": strategy.num_replicas_in_sync,
                          "distributed": history.model.distribute_strategy is strategy,
                          "shares": history.history["expl_lung_share"], "gaps": gaps}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["distributed"]
    assert len(result["shares"]) == 2 and all(np.isfinite(result["shares"]))
    assert max(result["gaps"]) < 1e-5
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["epoch_001.png",
                                                                   "epoch_002.png"]
    if (tmp_path / "tb").is_dir():
        assert [e.step for e in _events(tmp_path / "tb").Tensors("explanations")] == [0, 1]


# ------------------------------------------------------------------------------ errors
def test_bad_arguments_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    films = _phantoms(2, seed=10)
    with pytest.raises(InvalidInputError, match="every: expected a whole number >= 1, got 0"):
        ExplanationCallback(films.images, every=0)
    with pytest.raises(InvalidInputError, match="every"):
        ExplanationCallback(films.images, every=1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="method: unknown explainer 'nope'"):
        ExplanationCallback(films.images, method="nope")
    with pytest.raises(InvalidInputError, match="images: the list is empty"):
        ExplanationCallback([])
    with pytest.raises(InvalidInputError, match="images: the batch is empty"):
        ExplanationCallback(np.zeros((0, SIZE, SIZE, 1), np.float32))
    with pytest.raises(cx.ImageLoadError, match=r"images\[0\]"):
        ExplanationCallback([tmp_path / "missing.png"])
    with pytest.raises(InvalidInputError, match="masks: expected 2 masks"):
        ExplanationCallback(films.images, masks=films.lung_masks[:1])
    with pytest.raises(InvalidInputError, match=r"boxes: expected one entry per film \(2\)"):
        ExplanationCallback(films.images, boxes=[[0, 0, 4, 4]] * 3)
    with pytest.raises(InvalidInputError, match="boxes: every entry is None"):
        ExplanationCallback(films.images, boxes=[None, None])
    with pytest.raises(InvalidInputError, match=r"boxes\[1\]"):
        ExplanationCallback(films.images, boxes=[[0, 0, 4, 4], [0, 0, -1, 4]])
    with pytest.raises(InvalidInputError, match="out_dir: expected a folder path"):
        ExplanationCallback(films.images, out_dir=3)  # type: ignore[arg-type]
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"cxrexplain\[tensorboard\]"):
        ExplanationCallback(films.images, tensorboard_dir=tmp_path)
    monkeypatch.undo()
    watch = ExplanationCallback(films.images, targets="EFFUSION", class_names=CLASSES)
    with pytest.raises(InvalidInputError, match="EFFUSION"):
        cx.training.fit(_model(5), (films.images, films.labels), epochs=1, verbose=0,
                        callbacks=[watch])


# --------------------------------------------------------------------------------- CLI
def test_cli_train_explain_every(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _phantoms(16, seed=11)
    for i, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
        path = tmp_path / "data" / CLASSES[label] / f"{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.round(image[..., 0] * 255).astype(np.uint8))
    out = tmp_path / "model.keras"
    args = ["train", str(tmp_path / "data"), "--out", str(out), "--image-size", str(SIZE),
            "--epochs", "2", "--batch-size", "8", "--validation-split", "0.25"]
    assert main([*args, "--explain-every", "0"]) == 1
    assert "--explain-every: expected a whole number >= 1, got 0" in capsys.readouterr().err
    assert main([*args, "--explain-every", "1", "--explain-images", "3"]) == 0
    printed = capsys.readouterr().out
    folder = tmp_path / "model.explanations"
    assert f"explaining 3 validation films after every 1 epoch(s) in '{folder}'" in printed
    assert sorted(p.name for p in folder.glob("*.png")) == ["epoch_001.png", "epoch_002.png"]
    grid = cv2.imread(str(folder / "epoch_001.png"))
    assert grid is not None and grid.shape[1] > 3 * 128  # three tiles side by side
    if (folder / "tensorboard").is_dir():
        steps = [e.step for e in _events(folder / "tensorboard").Tensors("explanations")]
        assert steps == [0, 1]
    assert out.is_file()
