"""The ``cxrexplain`` command: exit codes, predict, explain (streaming, resume), evaluate."""

from __future__ import annotations

import argparse
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


# ------------------------------------------------------------------------------------ audit
AUDITED = 8


@pytest.fixture
def phantom_films(tmp_path: Path) -> tuple[Path, Path]:
    """``films/fNN.png`` (phantoms) and ``lungs/fNN.png`` (their lung fields, 255 = lung)."""
    data = cx.synthetic.generate(AUDITED, size=40, seed=1)
    films, lungs = tmp_path / "films", tmp_path / "lungs"
    films.mkdir()
    lungs.mkdir()
    for i in range(AUDITED):
        cv2.imwrite(str(films / f"f{i:02d}.png"), np.round(data.images[i, ..., 0] * 255)
                    .astype(np.uint8))
        cv2.imwrite(str(lungs / f"f{i:02d}.png"), data.lung_masks[i].astype(np.uint8) * 255)
    return films, lungs


def _audit(model: Path, films: Path, lungs: Path, out: Path, *extra: str) -> int:
    return main(["audit", str(model), str(films), "--lungs", str(lungs), "--out", str(out),
                 "--target", "PNEUMONIA", "--batch-size", "3", "--no-progress", *extra])


def test_audit_matches_cx_audit_and_its_exit_code_is_the_verdict(
        saved_model: Path, phantom_films: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    films, lungs = phantom_films
    out = tmp_path / "audit"
    code = _audit(saved_model, films, lungs, out)
    summary = json.loads((out / "audit.json").read_text())
    assert code == (3 if summary["flagged"] else 0)
    printed = capsys.readouterr().out
    assert printed.startswith("FLAGGED: " if summary["flagged"] else "not flagged: ")
    assert (out / "index.html").is_file()
    # the reference: cx.audit on the same films and masks, loaded by hand
    paths = cx.io.find_images(films)
    masks = np.stack([cv2.imread(str(lungs / p.name), cv2.IMREAD_GRAYSCALE) > 127
                      for p in paths])
    expected = cx.audit(cx.Classifier.load(saved_model), paths, lungs=masks,
                        targets="PNEUMONIA")
    rows = _rows(out / "audit.csv")
    assert [r["image"] for r in rows] == [str(p) for p in paths]
    np.testing.assert_allclose([float(r["lung_share"] or "nan") for r in rows],
                               expected.lung_share, atol=1e-5)
    assert summary["flagged"] == expected.flagged
    # lungs everywhere: nothing lies outside them (exit 0); a corner only: flagged (exit 3)
    for name, exit_code in (("everywhere", 0), ("corner", 3)):
        folder = tmp_path / name
        folder.mkdir()
        mask = np.zeros((40, 40), np.uint8)
        mask[(slice(None) if name == "everywhere" else slice(0, 2)),
             (slice(None) if name == "everywhere" else slice(0, 2))] = 255
        for path in paths:
            cv2.imwrite(str(folder / path.name), mask)
        assert _audit(saved_model, films, folder, tmp_path / f"out-{name}") == exit_code


def test_audit_resume_keeps_the_finished_rows(saved_model: Path,
                                              phantom_films: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    films, lungs = phantom_films
    out = tmp_path / "audit"
    _audit(saved_model, films, lungs, out)
    table = out / "audit.csv"
    complete = _rows(table)
    # a run killed after three rows, half-way through the fourth; the first row is marked so
    # that a redone film would show
    lines = table.read_text().splitlines(keepends=True)
    marked = complete[0] | {"lung_share": "0.123456789"}
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(complete[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows([marked, *complete[1:3]])
        handle.write(lines[4][: len(lines[4]) // 2])
    (out / ".audit.csv.partial.csv").write_text("image,gr")  # a temporary file left behind
    _audit(saved_model, films, lungs, out, "--resume")
    again = _rows(table)
    assert [r["image"] for r in again] == [r["image"] for r in complete]  # input order
    assert again[0]["lung_share"] == "0.123456789"  # kept, not redone
    for row, reference in zip(again[1:], complete[1:], strict=True):
        assert row["target"] == reference["target"]
        assert float(row["lung_share"] or "nan") == pytest.approx(
            float(reference["lung_share"] or "nan"), abs=1e-5, nan_ok=True)
    assert not list(out.glob(".*partial*"))
    # a table from another model (another header) is not resumed: every film is redone
    table.write_text("image,score\nx,1\n")
    _audit(saved_model, films, lungs, out, "--resume")
    assert [r["image"] for r in _rows(table)] == [r["image"] for r in complete]
    assert _rows(table)[0]["lung_share"] == complete[0]["lung_share"]


# ---------------------------------------------------------------------------------- methods
def test_methods_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    registry = cx.explainers()
    assert [line.split()[0] for line in lines] == list(registry)
    for line, cls in zip(lines, registry.values(), strict=True):
        assert line.split(maxsplit=1)[1] == cls.__doc__.strip().splitlines()[0].strip()
    assert main(["methods", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == list(registry)


@pytest.mark.parametrize("command", ["explain", "audit", "evaluate"])
def test_an_unknown_method_fails_before_the_model_loads(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "no-model.keras")  # loading it would fail with another message
    argv = {"explain": ["explain", missing, str(tmp_path), "--out", str(tmp_path / "o"),
                        "--method", "magic"],
            "audit": ["audit", missing, str(tmp_path), "--lungs", str(tmp_path), "--out",
                      str(tmp_path / "o"), "--method", "magic"],
            "evaluate": ["evaluate", missing, str(tmp_path), "--methods", "gradcam,magic"]}
    assert main(argv[command]) == 1
    err = capsys.readouterr().err
    option = "--methods" if command == "evaluate" else "--method"
    assert err.startswith(f"cxrexplain: error: {option}: unknown explainer 'magic'; known: ")
    assert all(name in err for name in cx.explainers())
    assert main([*argv[command][:-1], "Grad-CAM++"]) == 1  # an alias passes: the model fails
    assert "model file" in capsys.readouterr().err


def test_every_public_module_of_the_command_package_is_a_subcommand() -> None:
    import pkgutil

    import cxrexplain.cli as cli

    modules = sorted(m.name for m in pkgutil.iter_modules(cli.__path__)
                     if not m.name.startswith("_"))
    commands = next(a for a in cli.build_parser()._actions
                    if isinstance(a, argparse._SubParsersAction))
    assert sorted(commands.choices) == modules
    assert list(commands.choices) == ["demo", "train", "predict", "explain", "evaluate",
                                      "audit", "lungs", "methods"]
