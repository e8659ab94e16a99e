"""Data sets on Ray Data (issue 17): the callables, ``explain_dataset`` and the command.

A local Ray with 2 CPUs is started once for the module. 200 shared films (every fourth of
``../shared/data/cxr``, sorted) plus a corrupt and a missing file are explained by two Ray
actors into Parquet; the probabilities, targets and maps must equal the single-process path
(``cx.GradCAM(clf).explain``, maps through the same resize) to 1e-5, and the bad files must be
error rows. The model is an untrained 64 px ``cam_cnn`` of three classes (the numbers compared
do not depend on training). Tests that need Ray skip with the reason when it is not installed;
the ones that check what happens without Ray do not need it.
"""

from __future__ import annotations

import ast
import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from rounding import output_tolerance

import cxrexplain as cx
from cxrexplain.cli import main
from cxrexplain.distributed import (
    Audit,
    Explain,
    Predict,
    heatmap_from_png,
    read_results,
    resize_heatmaps,
)
from cxrexplain.errors import InvalidInputError, MissingDependencyError

SIZE = 64
NAMES = ["COVID", "NORMAL", "PNEUMONIA"]
FILMS = 200
LOW = 32  # the heatmap column's side
NO_RAY = "Ray is not installed (pip install 'cxrexplain[ray]'; CI installs it with [dev])"
PACKAGE = Path(cx.__file__).parent / "distributed"


# --------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """A local Ray with 2 CPUs for the module (shut down at its end)."""
    ray = pytest.importorskip("ray", reason=NO_RAY)
    pytest.importorskip("ray.data", reason=NO_RAY)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, object_store_memory=200 * 1024**2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keras.utils.set_random_seed(0)
    model = cx.models.build("cam_cnn", input_shape=(SIZE, SIZE, 1), num_classes=len(NAMES))
    path = tmp_path_factory.mktemp("model") / "cam_cnn.keras"
    cx.Classifier(model, class_names=NAMES).save(path)
    return path


@pytest.fixture(scope="module")
def clf(model_file: Path) -> cx.Classifier:
    return cx.Classifier.load(model_file)


@pytest.fixture(scope="module")
def films(data_dir: Path) -> list[Path]:
    """200 shared films, deterministic: every fourth of the sorted ``cxr/*/*.png``."""
    chosen = sorted((data_dir / "cxr").glob("*/*.png"))[::4][:FILMS]
    assert len(chosen) == FILMS
    return chosen


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A corrupt PNG (a header and rubbish) and a path that does not exist."""
    folder = tmp_path_factory.mktemp("bad")
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"rubbish" * 20)
    return [corrupt, folder / "missing.png"]


@pytest.fixture(scope="module")
def run(ray_local: Any, films: list[Path], bad_files: list[Path], model_file: Path,
        tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The 200 films and the two bad files explained by two Ray actors into Parquet."""
    out = tmp_path_factory.mktemp("ray") / "maps"
    summary = cx.distributed.explain_dataset(
        [str(p) for p in [*films, *bad_files]], model_file, method="gradcam", out=out,
        concurrency=2, batch_size=32, heatmap_size=LOW, progress=False)
    return {"summary": summary, "out": out, "table": read_results(out)}


@pytest.fixture(scope="module")
def reference(clf: cx.Classifier, films: list[Path]) -> cx.Explanation:
    """The single-process path on the same films."""
    return cx.GradCAM(clf).explain([str(p) for p in films], batch_size=32)


# --------------------------------------------------------------------- without Ray at all
def test_the_package_imports_no_ray_at_import_time() -> None:
    for module in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in tree.body:  # top-level statements only
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in {"ray", "pyarrow"} for n in names), module.name


def test_explain_dataset_without_ray_names_the_extra(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ray", "ray.data"):
        monkeypatch.setitem(sys.modules, name, None)  # "import ray" now fails
    with pytest.raises(MissingDependencyError, match=r'pip install "cxrexplain\[ray\]"'):
        cx.distributed.explain_dataset(["a.png"], tmp_path / "m.keras", out=tmp_path / "o")


def test_the_callables_run_without_ray(model_file: Path, clf: cx.Classifier,
                                       data_dir: Path) -> None:
    paths = sorted((data_dir / "cxr" / "NORMAL").glob("*.png"))[:3]
    by_path = Predict(model_file)({"path": np.array([str(p) for p in paths], object)})
    by_bytes = Predict(model_file)({"bytes": np.array([p.read_bytes() for p in paths], object),
                                    "id": np.array(["x", "y", "z"], object)})
    assert "bytes" not in by_bytes
    assert by_bytes["id"].tolist() == ["x", "y", "z"]
    assert by_path["probabilities"].shape == (3, 3)
    assert by_path["probabilities"].dtype == np.float32
    np.testing.assert_allclose(by_bytes["probabilities"], by_path["probabilities"], atol=1e-6)
    np.testing.assert_allclose(by_path["probabilities"],
                               clf.predict_proba([str(p) for p in paths]), atol=1e-5)
    assert by_path["label"].tolist() == [p.label for p in clf.decide(by_path["probabilities"])]
    full = Explain(model_file, heatmap_size=None, png=False)(
        {"path": np.array([str(paths[0])], object), "label_given": np.array(["NORMAL"])})
    assert full["heatmap"].shape == (1, SIZE, SIZE)
    assert "heatmap_png" not in full
    assert full["label_given"].tolist() == ["NORMAL"]  # other columns pass through


def test_bad_arguments_and_batches_are_named(model_file: Path) -> None:
    with pytest.raises(InvalidInputError, match="method"):
        Explain(model_file, method="nope")
    with pytest.raises(InvalidInputError, match="heatmap_size"):
        Explain(model_file, heatmap_size=0)
    with pytest.raises(InvalidInputError, match="model"):
        Predict(object())  # type: ignore[arg-type]
    with pytest.raises(cx.ModelLoadError, match="missing.keras"):
        Predict(model_file.with_name("missing.keras"))
    predict = Predict(model_file)
    with pytest.raises(InvalidInputError, match="batch: expected a 'path' column"):
        predict({"file": np.array(["a.png"])})
    with pytest.raises(InvalidInputError, match="'id'"):
        predict({"bytes": np.array([b"x"], object)})


def test_an_address_where_nothing_listens_fails_fast() -> None:
    from cxrexplain.distributed._ray import check_reachable

    with pytest.raises(InvalidInputError, match="address: nothing answers at '127.0.0.1:1'"):
        check_reachable("127.0.0.1:1", timeout=2.0)
    check_reachable("auto")  # left to Ray


def test_a_worker_error_comes_back_as_the_library_error() -> None:
    from cxrexplain.distributed.dataset import _library_error

    text = ("ray::MapWorker(MapBatches(Explain)).submit()\n"
            "cxrexplain.errors.InvalidInputError: batch: expected a 'path' column\n\nmore")
    mapped = _library_error(RuntimeError(text), Path("out"))
    assert isinstance(mapped, InvalidInputError)
    assert str(mapped).startswith("batch: expected a 'path' column")
    other = _library_error(RuntimeError("a node died"), Path("out"))
    assert type(other) is cx.CxrExplainError
    assert "a node died" in str(other) and "resume" in str(other)


def test_heatmap_png_round_trip() -> None:
    maps = np.random.default_rng(0).random((3, 20, 20)).astype(np.float32)
    from cxrexplain.distributed.maps import heatmap_png

    back = np.stack([heatmap_from_png(heatmap_png(m)) for m in maps])
    assert np.abs(back - maps).max() <= 0.5 / 255 + 1e-6
    with pytest.raises(cx.ImageLoadError):
        heatmap_from_png(b"")


# ---------------------------------------------------------------------------- on Ray Data
def test_ray_matches_the_single_process_path(run: dict[str, Any],
                                             reference: cx.Explanation,
                                             films: list[Path]) -> None:
    table = run["table"]
    good = slice(0, FILMS)
    assert table["index"].tolist() == list(range(FILMS + 2))
    assert table["path"][good].tolist() == [str(p.absolute()) for p in films]
    assert all(e == "" for e in table["error"][good])
    assert np.abs(table["probabilities"][good] - reference.probabilities).max() < 1e-5
    assert table["target"][good].tolist() == reference.targets.tolist()
    assert np.abs(table["score"][good] - reference.scores).max() < 1e-5
    assert table["heatmap"].shape == (FILMS + 2, LOW, LOW)
    low = resize_heatmaps(reference.heatmaps, LOW)
    assert np.abs(table["heatmap"][good] - low).max() < 1e-5
    pngs = np.stack([heatmap_from_png(b) for b in table["heatmap_png"][good]])
    assert pngs.shape == reference.heatmaps.shape
    assert np.abs(pngs - reference.heatmaps).max() <= 0.5 / 255 + 1e-5


def test_bad_files_are_error_rows(run: dict[str, Any], bad_files: list[Path]) -> None:
    table = run["table"]
    corrupt, missing = (str(table["error"][i]) for i in (FILMS, FILMS + 1))
    assert "corrupt.png" in corrupt and "PNG data is corrupt" in corrupt
    assert "missing.png" in missing and "no such file" in missing
    bad = slice(FILMS, FILMS + 2)
    assert np.isnan(table["probabilities"][bad]).all()
    assert np.isnan(table["heatmap"][bad]).all()
    assert table["target"][bad].tolist() == [-1, -1]
    assert table["heatmap_png"][bad].tolist() == [b"", b""]
    assert run["summary"].rows == FILMS + 2
    assert run["summary"].errors == 2


def test_the_parquet_files_read_with_pyarrow_alone(run: dict[str, Any]) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(run["out"])
    assert table.num_rows == FILMS + 2
    assert {"path", "error", "probabilities", "target", "score", "heatmap",
            "heatmap_png"} <= set(table.column_names)
    assert run["summary"].files == len(list(run["out"].glob("*.parquet")))


def test_resume_redoes_only_files_cut_short(run: dict[str, Any], films: list[Path],
                                            bad_files: list[Path], model_file: Path,
                                            tmp_path: Path) -> None:
    paths = [str(p) for p in [*films, *bad_files]]
    with pytest.raises(InvalidInputError, match="out: .* already holds"):
        cx.distributed.explain_dataset(paths, model_file, out=run["out"])
    same = cx.distributed.explain_dataset(paths, model_file, out=run["out"], resume=True)
    assert (same.new, same.workers, same.rows) == (0, 0, FILMS + 2)  # nothing left to do
    copy = tmp_path / "maps"
    shutil.copytree(run["out"], copy)
    victim = sorted(copy.glob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:100])  # a crash while the file was written
    finished = cx.distributed.explain_dataset(paths, model_file, out=copy, resume=True,
                                              heatmap_size=LOW, concurrency=1,
                                              progress=False)
    assert finished.rows == FILMS + 2 and 0 < finished.new < FILMS
    table = read_results(copy)
    assert table["index"].tolist() == list(range(FILMS + 2))  # each film once
    np.testing.assert_allclose(table["heatmap"][:FILMS], run["table"]["heatmap"][:FILMS],
                               atol=1e-5)


def test_audit_on_ray_matches_cx_audit(ray_local: Any, model_file: Path, clf: cx.Classifier,
                                       data_dir: Path) -> None:
    films = sorted((data_dir / "cxr" / "COVID").glob("*.png"))[:6]
    masks = [data_dir / "cxr" / "lung_masks" / "COVID" / p.name for p in films]
    rows = [{"path": str(f), "lungs": str(m), "n": i}
            for i, (f, m) in enumerate(zip(films, masks, strict=True))]
    rows.append({"path": str(films[0]), "lungs": str(data_dir / "nope.png"), "n": 6})
    dataset = ray_local.data.from_items(rows).map_batches(
        Audit, fn_constructor_kwargs={"model": str(model_file), "lungs": None},
        concurrency=1, batch_size=4)
    out = sorted(dataset.take_all(), key=lambda r: r["n"])
    report = cx.audit(clf, films, lungs=masks)
    got = {k: np.array([r[k] for r in out[:6]])
           for k in ("lung_share", "border_share", "peak_in_lungs", "target", "probabilities")}
    # batches of 4 against one of 6 round apart: a Grad-CAM heatmap value moves by up to
    # 2 * output_tolerance (a map over its peak), a share of N pixels by that times
    # N / sum(heatmap) (rounding.py)
    heat = cx.GradCAM(clf).explain(films).heatmaps
    shares = 2 * output_tolerance(clf.model) * heat[0].size / heat.sum(axis=(1, 2))
    assert (np.abs(got["lung_share"] - report.lung_share) <= shares).all()
    assert (np.abs(got["border_share"] - report.border_share) <= shares).all()
    assert got["peak_in_lungs"].tolist() == report.peak_in_lungs.tolist()
    assert got["target"].tolist() == report.targets.tolist()
    np.testing.assert_allclose(got["probabilities"], report.probabilities, rtol=0,
                               atol=output_tolerance(clf.model))
    assert out[6]["error"].startswith("lungs: ") and "nope.png" in out[6]["error"]
    assert np.isnan(out[6]["lung_share"])


def test_the_command_with_engine_ray(ray_local: Any, model_file: Path, films: list[Path],
                                     bad_files: list[Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "films"
    folder.mkdir()
    for film in films[:6]:
        (folder / film.name).symlink_to(film)
    shutil.copy(bad_files[0], folder / "corrupt.png")
    code = main(["explain", str(model_file), str(folder), "--out", str(tmp_path / "out"),
                 "--engine", "ray", "--workers", "1", "--batch-size", "4", "--no-progress"])
    assert code == 0
    assert "wrote 7 rows (1 error)" in capsys.readouterr().out
    table = read_results(tmp_path / "out")
    assert len(table["path"]) == 7
    assert sum(1 for e in table["error"] if e) == 1
    assert table["heatmap"].shape == (7, 64, 64)
