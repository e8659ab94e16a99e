"""Crashes lose nothing, links keep their names: ``cxrexplain explain`` killed and resumed.

The kill test starts the real command as a subprocess on a nested folder of symbolic links to
real films, kills it with ``SIGKILL`` at seeded random moments after its CSV has started
growing, finishes with ``--resume`` and checks the result against an uninterrupted run.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from tiny_models import conv_gap_dense

import cxrexplain as cx
from cxrexplain._resumable import ResumableTable
from cxrexplain.cli import main
from cxrexplain.io import find_images

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLASSES = ["COVID", "NORMAL", "PNEUMONIA"]
# where each class's links go inside the folder given to the command (nested on purpose)
LAYOUT = {"COVID": "covid", "NORMAL": "normal/frontal", "PNEUMONIA": "pneumonia/a/b"}
PER_CLASS = 14
KILLS = 3
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def films() -> Path:
    """``../shared/data/cxr`` (real X-rays); the tests skip when it is absent."""
    folder = DATA / "cxr"
    if not all((folder / c).is_dir() for c in CLASSES):
        pytest.skip(f"real data not found at {folder}")
    return folder


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny three-class CNN with random weights, saved by :class:`cxrexplain.Classifier`."""
    model = conv_gap_dense(len(CLASSES), "softmax", size=48, filters=(4, 4), padding="same")
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    return cx.Classifier(model, class_names=CLASSES).save(path)


def _link_folder(root: Path, films: Path, per_class: int) -> Path:
    """``root/films``: nested links to ``per_class`` films of each class, and ``bad.png``."""
    folder = root / "films"
    for name, where in LAYOUT.items():
        target = folder / where
        target.mkdir(parents=True)
        for film in sorted((films / name).glob("*.png"))[:per_class]:
            (target / film.name).symlink_to(film)
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    return folder


def _command(model: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cxrexplain", "explain", str(model), "films", "--out",
            str(out), "--batch-size", "2", "--no-progress", *extra]


def _lines(table: Path) -> int:
    """Complete lines in the CSV so far (0 before it exists)."""
    try:
        return table.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _rows(table: Path) -> list[dict[str, str]]:
    with table.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _check_well_formed(table: Path, images: list[str]) -> list[dict[str, str]]:
    """Every record complete, the file ends with a newline, exactly one row per image."""
    text = table.read_text(encoding="utf-8")
    assert text.endswith("\n")
    with table.open(newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    header = records[0]
    assert all(len(record) == len(header) for record in records)
    rows = _rows(table)
    assert sorted(r["image"] for r in rows) == sorted(images)  # one row each, no duplicates
    return rows


def _check_overlays(out: Path, rows: list[dict[str, str]]) -> None:
    """Each readable image's overlay decodes and mirrors its path as given under ``films``."""
    written = {p.relative_to(out).as_posix() for p in (out / "overlays").rglob("*.png")}
    expected = set()
    for row in rows:
        if row["error"]:
            assert row["overlay"] == ""
            continue
        mirrored = (Path("overlays") / Path(row["image"]).relative_to("films")).as_posix()
        assert Path(row["overlay"]).as_posix() == mirrored
        assert cv2.imread(str(out / row["overlay"])) is not None
        expected.add(mirrored)
    assert written == expected
    assert not list(out.rglob("*.partial*"))


@pytest.mark.slow
def test_sigkill_then_resume_loses_nothing(films: Path, saved_model: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _link_folder(tmp_path, films, PER_CLASS)
    monkeypatch.chdir(tmp_path)  # the command gets the relative path "films", as a user would
    images = [str(p) for p in find_images("films")]
    assert len(images) == len(CLASSES) * PER_CLASS + 1
    out = tmp_path / "out"
    table = out / "predictions.csv"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1"}
    rng = random.Random(12)
    left_at_kill: list[int] = []  # rows still to write when each kill struck
    with (tmp_path / "stderr.log").open("w") as log:
        for run in range(KILLS):
            before = max(_lines(table), 1)  # the header does not count as progress
            extra = ("--resume",) if run else ()
            process = subprocess.Popen(_command(saved_model, out, *extra), cwd=tmp_path,
                                       env=env, stdout=subprocess.DEVNULL, stderr=log)
            try:
                deadline = time.monotonic() + TIMEOUT_S
                while process.poll() is None and _lines(table) <= before:  # rows added yet?
                    assert time.monotonic() < deadline, "explain wrote no rows in time"
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.25))
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=TIMEOUT_S)
                    left_at_kill.append(len(images) - (_lines(table) - 1))
                process.wait(timeout=TIMEOUT_S)
        finished = subprocess.run(_command(saved_model, out, "--resume"), cwd=tmp_path,
                                  env=env, stdout=subprocess.DEVNULL, stderr=log,
                                  timeout=TIMEOUT_S, check=False)
    # A run that finished before its kill is no test; a kill that left work for the next
    # ``--resume`` (which may be a later loop run or the final one) is what we check.
    assert left_at_kill, "every run finished before it could be killed"
    assert max(left_at_kill) > 0, f"every kill came after the last row: {left_at_kill}"
    assert finished.returncode == 0, (tmp_path / "stderr.log").read_text()[-3000:]

    rows = _check_well_formed(table, images)
    errors = [r for r in rows if r["error"]]
    assert [r["image"] for r in errors] == [str(Path("films") / "bad.png")]
    _check_overlays(out, rows)

    reference = tmp_path / "reference"
    assert main(["explain", str(saved_model), "films", "--out", str(reference),
                 "--batch-size", "2", "--no-progress"]) == 0
    expected = {r["image"]: r["label"] for r in _rows(reference / "predictions.csv")}
    assert {r["image"]: r["label"] for r in rows} == expected


@pytest.mark.parametrize("cut", ["append_half_error_row", "last_row_cut_in_half"])
def test_resume_drops_a_line_cut_in_half(films: Path, saved_model: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, cut: str) -> None:
    _link_folder(tmp_path, films, 2)
    monkeypatch.chdir(tmp_path)
    images = [str(p) for p in find_images("films")]
    out = tmp_path / "out"
    table = out / "predictions.csv"
    command = ["explain", str(saved_model), "films", "--out", str(out), "--batch-size", "3",
               "--no-progress"]
    assert main(command) == 0
    complete = _rows(table)
    data = table.read_bytes()
    lines = data.splitlines(keepends=True)
    if cut == "append_half_error_row":  # cut inside the error text: every field is there
        error_line = next(line for line in lines if b"bad.png" in line)
        table.write_bytes(data + error_line[: len(error_line) - 12])
    else:  # the last image's row lost its second half: that image is done again
        table.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    # temporary files a kill left behind are removed by the resumed run
    (out / "overlays" / ".film.png.partial.png").write_bytes(b"half a png")
    (out / ".predictions.csv.partial.csv").write_text("image,la", encoding="utf-8")
    assert main([*command, "--resume"]) == 0
    rows = _check_well_formed(table, images)
    if cut == "append_half_error_row":
        assert rows == complete
    assert {r["image"]: (r["label"], r["error"]) for r in rows} == {
        r["image"]: (r["label"], r["error"]) for r in complete}
    _check_overlays(out, rows)


def test_links_keep_their_names_and_layout(films: Path, saved_model: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = sorted((films / "NORMAL").glob("*.png"))[:2]
    links = {
        "films/left/film.png": first,  # two links to one film in different folders ...
        "films/right/film.png": first,
        "films/left/another_name.png": first,  # ... a third under another name
        "films/deep/er/other.png": second,
    }
    for link, target in links.items():
        (tmp_path / link).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / link).symlink_to(target)
    # a link to a folder outside: its images keep the link folder's name
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "film.png").symlink_to(second)
    (tmp_path / "films" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    links["films/linked/film.png"] = second
    monkeypatch.chdir(tmp_path)
    found = find_images("films")  # the walker keeps the links' paths; it resolves nothing
    assert [p.as_posix() for p in found] == sorted(links)
    assert all(p.is_symlink() for p in found)
    out = tmp_path / "out"
    assert main(["explain", str(saved_model), "films", "--out", str(out),
                 "--no-progress"]) == 0
    rows = _rows(out / "predictions.csv")
    assert sorted(r["image"] for r in rows) == sorted(links)
    assert sorted(Path(r["overlay"]).as_posix() for r in rows) == sorted(
        "overlays/" + link.removeprefix("films/") for link in links)
    _check_overlays(out, rows)
    # files given one by one (through a path with "..") mirror the same way, links unresolved
    out2 = tmp_path / "out2"
    assert main(["explain", str(saved_model), "films/left/film.png",
                 "films/right/../right/film.png", "--out", str(out2), "--no-progress"]) == 0
    assert sorted(Path(r["overlay"]).as_posix() for r in _rows(out2 / "predictions.csv")) == [
        "overlays/left/film.png", "overlays/right/film.png"]


# ------------------------------------------------- the table explain and audit share, alone
def _table_rows(names: list[str]) -> list[dict[str, str]]:
    return [{"image": name, "label": "" if i % 3 == 2 else ("NORMAL", "COVID")[i % 2],
             "error": "image: cannot decode, \"quoted\"" if i % 3 == 2 else ""}
            for i, name in enumerate(names)]


TABLE_NAMES = [f"films/{i:02d}.png" for i in range(7)] + ["films/a, \"b\".png"]


def test_the_table_resumes_from_a_kill_at_any_byte(tmp_path: Path) -> None:
    columns = ["image", "label", "error"]
    path = tmp_path / "table.csv"
    table = ResumableTable(path, columns)
    assert table.start(TABLE_NAMES, resume=False) == {}
    rows = _table_rows(TABLE_NAMES)
    with table.appending() as writer:
        writer.write(rows)
    complete = path.read_bytes()
    assert _rows(path) == rows  # the reference: the csv module reads back what was written
    ends = [i + 1 for i, byte in enumerate(complete) if byte == ord("\n")]  # header, rows
    for cut in range(len(complete) + 1):
        path.write_bytes(complete[:cut])
        table = ResumableTable(path, columns)
        done = table.start(TABLE_NAMES, resume=True)
        whole = max(sum(end <= cut for end in ends) - 1, 0)  # complete rows before the cut
        assert list(done) == TABLE_NAMES[:whole], cut
        assert path.read_bytes() == complete[: ends[whole]]  # the header and those rows
        with table.appending() as writer:
            writer.write(rows[whole:])
        assert table.finish(TABLE_NAMES).read_bytes() == complete, cut


def test_the_table_restores_input_order_and_ignores_other_runs(tmp_path: Path) -> None:
    columns = ["image", "label", "error"]
    path = tmp_path / "table.csv"
    rows = _table_rows(TABLE_NAMES)
    table = ResumableTable(path, columns)
    table.start(TABLE_NAMES, resume=False)
    with table.appending() as writer:
        writer.write(rows)
    complete = path.read_bytes()
    # rows refused by ``keep`` (an overlay lost, say) are redone, and land in their place
    table = ResumableTable(path, columns)
    done = table.start(TABLE_NAMES, resume=True, keep=lambda row: row["image"][-5] in "0246")
    assert list(done) == [n for n in TABLE_NAMES if n[-5] in "0246"]
    with table.appending() as writer:
        writer.write([row for row in rows if row["image"] not in done])
    assert table.finish(TABLE_NAMES).read_bytes() == complete
    assert table.rows(TABLE_NAMES[::-1]) == rows[::-1]
    # a film not in this run is dropped; a table under another header is not resumed
    assert list(ResumableTable(path, columns).start(TABLE_NAMES[1:], resume=True)) \
        == TABLE_NAMES[1:]
    assert _rows(path) == rows[1:]
    assert ResumableTable(path, ["image", "label"]).start(TABLE_NAMES, resume=True) == {}
    assert path.read_text() == "image,label\n"
    # the temporary file of a killed atomic write is removed
    (tmp_path / ".table.csv.partial.csv").write_text("image,la")
    ResumableTable(path, columns).start(TABLE_NAMES, resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_explain_resumed_after_a_lost_middle_row_is_in_input_order(
        films: Path, saved_model: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _link_folder(tmp_path, films, 2)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    table = out / "predictions.csv"
    command = ["explain", str(saved_model), "films", "--out", str(out), "--batch-size", "2",
               "--no-progress"]
    assert main(command) == 0
    complete = _rows(table)
    assert [r["image"] for r in complete] == [str(p) for p in find_images("films")]
    lost = complete[2]
    (out / lost["overlay"]).unlink()  # its row stays, but the overlay is gone: redone
    lines = table.read_text().splitlines(keepends=True)
    table.write_text("".join(lines[:4] + lines[5:]))  # and another row is lost altogether
    assert main([*command, "--resume"]) == 0
    again = _check_well_formed(table, [r["image"] for r in complete])
    assert [r["image"] for r in again] == [r["image"] for r in complete]
    assert [r["label"] for r in again] == [r["label"] for r in complete]
    _check_overlays(out, again)
