"""The ``cxrexplain`` command: exit codes, predict, explain (streaming, resume), evaluate."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_models import conv_gap_dense

import cxrexplain as cx
from cxrexplain.cli import main


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = conv_gap_dense(2, "softmax", size=32, padding="same")
    path = tmp_path_factory.mktemp("model") / "m.keras"
    return cx.Classifier(model, ["NORMAL", "PNEUMONIA"]).save(path)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "xrays"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(5):
        where = folder / "sub" if i % 2 else folder
        cv2.imwrite(str(where / f"img{i}.png"), rng.integers(0, 256, (40 + i, 48), np.uint8))
    return folder


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"cxrexplain {cx.__version__}"


def test_help_without_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "train", "predict", "explain", "evaluate"):
        assert command in out


def test_usage_error_exits_2() -> None:
    for argv in (["--no-such-option"], ["explain"], ["predict", "m.keras"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2


def test_library_error_is_one_line_exit_1(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "nope.keras"), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cxrexplain: error: model file")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(cx.ModelLoadError):
        main(["--debug", "predict", str(tmp_path / "nope.keras"), str(tmp_path)])


def test_predict_table_and_json(saved_model: Path, image_folder: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(saved_model), str(image_folder)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:2] == ["image", "label"]
    assert len(lines) == 6
    assert main(["predict", "--json", str(saved_model), str(image_folder)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    clf = cx.Classifier.load(saved_model)
    paths = cx.io.find_images(image_folder)
    probs = clf.predict_proba(paths)
    for row, path, p in zip(rows, paths, probs, strict=True):
        assert row["image"] == str(path)
        assert row["PNEUMONIA"] == pytest.approx(float(p[1]), abs=1e-6)


def _rows(table: Path) -> list[dict[str, str]]:
    with table.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_explain_writes_overlays_and_resumes(saved_model: Path, image_folder: Path,
                                             tmp_path: Path) -> None:
    out = tmp_path / "out"
    (image_folder / "broken.png").write_text("not an image")
    assert main(["explain", str(saved_model), str(image_folder), "--out", str(out),
                 "--batch-size", "2", "--no-progress"]) == 0
    table = out / "predictions.csv"
    rows = _rows(table)
    assert len(rows) == 6
    broken = [r for r in rows if r["error"]]
    assert len(broken) == 1
    assert "broken.png" in broken[0]["image"]
    done = [r for r in rows if not r["error"]]
    for row in done:
        picture = cv2.imread(str(out / row["overlay"]))
        source = cv2.imread(row["image"], cv2.IMREAD_GRAYSCALE)
        assert picture.shape[:2] == source.shape  # drawn on the X-ray at its own size
    assert (out / "overlays" / "sub" / "img1.png").is_file()
    # simulate an interruption: one overlay lost, the CSV's last row cut in half
    lost = out / done[0]["overlay"]
    lost.unlink()
    text = table.read_text()
    table.write_text(text[: len(text) - 20])
    stamps = {r["overlay"]: (out / r["overlay"]).stat().st_mtime_ns
              for r in done[1:-1]}
    assert main(["explain", str(saved_model), str(image_folder), "--out", str(out),
                 "--resume", "--no-progress"]) == 0
    again = _rows(table)
    assert sorted(r["image"] for r in again) == sorted(r["image"] for r in rows)
    assert lost.is_file()
    for overlay, stamp in stamps.items():  # done images were not redone
        assert (out / overlay).stat().st_mtime_ns == stamp
    assert not list(out.rglob("*.partial*"))  # .NAME.partial.SUFFIX (cxrexplain._files)


def test_explain_target_and_method(saved_model: Path, image_folder: Path,
                                   tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["explain", str(saved_model), str(image_folder / "img0.png"), "--out",
                 str(out), "--method", "cam", "--target", "PNEUMONIA", "--no-progress"]) == 0
    row = _rows(out / "predictions.csv")[0]
    assert row["target"] == "PNEUMONIA"
    assert row["method"] == "cam"
    assert main(["explain", str(saved_model), str(image_folder), "--out", str(out),
                 "--method", "magic"]) == 1


def test_evaluate_with_boxes_and_masks(saved_model: Path, image_folder: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,finding,x,y,width,height\nimg0.png,Pneumonia,10,10,20,20\n"
                     "img2.png,Pneumonia,0,0,24,24\n")
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("img0.png", "img2.png"):
        mask = np.zeros((40, 48), np.uint8)
        mask[:, :24] = 255
        cv2.imwrite(str(masks / name), mask)
    assert main(["evaluate", str(saved_model), str(image_folder), "--boxes", str(boxes),
                 "--masks", str(masks), "--methods", "cam,gradcam", "--steps", "4",
                 "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["images"] == 2
    assert [r["method"] for r in table["rows"]] == ["cam", "gradcam", "random",
                                                    "centre_gaussian"]
    assert "pointing_game" in table["metrics"]
    assert "mask_energy" in table["metrics"]


def test_console_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cxrexplain", "--help"], capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: cxrexplain" in result.stdout
