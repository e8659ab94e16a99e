"""The audit's counterfactual section: the swap test inside ``cx.audit`` and ``cxrexplain audit``.

Two hand-built 32 px classifiers with known decisions (``tiny_models.patch_model``): one reads
only a marker in the top-left corner (outside every lung), one only a patch in the middle of
the film (inside every lung). The audit must report exactly what ``cx.metrics.swap_test``
finds on the same films and lungs, flag the first ("the decision reads the surroundings") and
pass the second; the rule's thresholds are checked on hand-built results.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_models import PLANTED_CENTER, PLANTED_CORNER, patch_model, planted

import cxrexplain as cx
from cxrexplain.auditing import AuditReport, AuditRule
from cxrexplain.cli import main
from cxrexplain.errors import InvalidInputError
from cxrexplain.metrics import SwapTest
from cxrexplain.metrics.bootstrap import Interval

NAMES = ["NORMAL", "PNEUMONIA"]
COUNT = 12
LUNGS_ONLY = AuditRule(min_lung_share=0.0, max_peaks_outside=1.0)
"""A rule whose lung-share checks never break: the verdict is the swap test's alone."""


@pytest.fixture(scope="module")
def shortcut() -> cx.Classifier:
    return cx.Classifier(patch_model(*PLANTED_CORNER), NAMES)


@pytest.fixture(scope="module")
def honest() -> cx.Classifier:
    return cx.Classifier(patch_model(*PLANTED_CENTER), NAMES)


@pytest.fixture(scope="module")
def shortcut_report(shortcut: cx.Classifier) -> AuditReport:
    films, labels, lungs = planted(COUNT)
    return cx.audit(shortcut, films, lungs=lungs, labels=labels, rule=LUNGS_ONLY, seed=2)


# ------------------------------------------------------------------ the planted shortcut
def test_a_model_reading_the_surroundings_is_flagged(shortcut: cx.Classifier,
                                                     shortcut_report: AuditReport) -> None:
    films, labels, lungs = planted(COUNT)
    rep = shortcut_report
    test = rep.counterfactual
    assert test is not None and test.n == COUNT
    # the audit reports exactly the swap test of the same films, lungs, margin and seed
    direct = cx.metrics.swap_test(shortcut, films, lungs=lungs, labels=labels, seed=2,
                                  margin=rep.lung_margin)
    for name in ("flip_rate", "accuracy", "swapped_accuracy", "accuracy_drop"):
        assert getattr(test, name) == getattr(direct, name)
    np.testing.assert_array_equal(test.donors, direct.donors)
    np.testing.assert_array_equal(test.swapped, direct.swapped)
    # every film takes a donor of the other class, and the corner marker comes with it
    np.testing.assert_array_equal(test.swapped, 1 - labels)
    assert test.flip_rate == (1.0, 1.0, 1.0) and test.accuracy_drop == 1.0
    assert rep.reads_surroundings is True and rep.flagged
    assert rep.reason == ("swap test (12 films): decisions flip on 100% of films > 5%; "
                          "accuracy drops 100 points > 3: the decision reads the surroundings")


def test_a_model_reading_the_lungs_keeps_its_decisions(honest: cx.Classifier) -> None:
    films, labels, lungs = planted(COUNT)
    rep = cx.audit(honest, films, lungs=lungs, labels=labels, rule=LUNGS_ONLY)
    test = rep.counterfactual
    assert test is not None
    assert test.flip_rate == (0.0, 0.0, 0.0) and test.accuracy_drop == 0.0
    assert test.accuracy == (1.0, 1.0, 1.0)
    assert rep.reads_surroundings is False and not rep.flagged
    assert rep.reason.endswith(" | swap test (12 films): decisions flip on 0% of films, "
                               "accuracy drops 0 points: the decision does not read the "
                               "surroundings")


def test_the_lung_share_and_the_swap_test_both_speak(shortcut: cx.Classifier) -> None:
    """Under the default rule a lung-share problem and the swap test are both listed."""
    films, labels, lungs = planted(COUNT)
    rep = cx.audit(shortcut, films, lungs=lungs, labels=labels,
                   rule=AuditRule(min_lung_share=1.0, min_images=2, negative=None))
    parts = rep.reason.split(" | ")
    assert rep.flagged and len(parts) >= 2
    assert parts[-1].endswith("the decision reads the surroundings")
    assert all("mean lung share" in p for p in parts[:-1])


# ------------------------------------------------------------------ when it runs
def test_default_runs_with_labels_only(honest: cx.Classifier) -> None:
    films, labels, lungs = planted(6)
    plain = cx.audit(honest, films, lungs=lungs)
    assert plain.counterfactual is None and plain.reads_surroundings is None
    assert json.loads(plain.to_json())["counterfactual"] is None
    assert cx.audit(honest, films, lungs=lungs, counterfactual=False).reason == plain.reason
    assert cx.audit(honest, films, lungs=lungs, labels=labels).counterfactual is not None
    assert cx.audit(honest, films, lungs=lungs, labels=labels,
                    counterfactual=False).counterfactual is None
    by_name = cx.audit(honest, films, lungs=lungs, labels=[NAMES[i] for i in labels])
    assert by_name.counterfactual is not None
    np.testing.assert_array_equal(by_name.counterfactual.labels, labels)
    # one class only: the default skips it, asking for it fails before the audit runs
    assert cx.audit(honest, films, lungs=lungs, labels=[0] * 6).counterfactual is None
    with pytest.raises(InvalidInputError, match="counterfactual: every film has the same"):
        cx.audit(honest, films, lungs=lungs, labels=[0] * 6, counterfactual=True)
    # forced without labels: any other film is a donor, no accuracy
    forced = cx.audit(honest, films, lungs=lungs, counterfactual=True)
    assert forced.counterfactual is not None and forced.counterfactual.accuracy is None
    assert forced.counterfactual.labels is None
    with pytest.raises(InvalidInputError, match="counterfactual: the swap test needs at least"):
        cx.audit(honest, films[:1], lungs=lungs[:1], counterfactual=True)
    with pytest.raises(InvalidInputError, match="counterfactual: expected True, False or None"):
        cx.audit(honest, films, lungs=lungs, counterfactual="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="labels: expected one label per image"):
        cx.audit(honest, films, lungs=lungs, labels=[0, 1])


# ------------------------------------------------------------------ the rule
def swap_result(n: int, flips: float, drop: float | None) -> SwapTest:
    """A hand-made swap test with the given flip rate and accuracy drop."""
    zeros = np.zeros(n, np.int64)
    accuracy = None if drop is None else Interval(0.9, 0.8, 1.0)
    swapped = None if drop is None else Interval(0.9 - drop, 0.7 - drop, 1.0 - drop)
    return SwapTest(n=n, flip_rate=Interval(flips, 0.0, 1.0), accuracy=accuracy,
                    swapped_accuracy=swapped, accuracy_drop=drop, original=zeros,
                    swapped=zeros, donors=zeros, probabilities_swapped=np.zeros((n, 2)),
                    class_names=tuple(NAMES))


@pytest.mark.parametrize(("n", "flips", "drop", "expected"), [
    (20, 0.05, 0.03, False),   # at the thresholds: not above them
    (20, 0.06, 0.0, True),
    (20, 0.0, 0.04, True),
    (20, 0.0, None, False),    # no labels: the flip rate alone
    (20, 0.5, None, True),
    (4, 1.0, 1.0, None),       # fewer than min_images films: not judged
])
def test_the_swap_rule(n: int, flips: float, drop: float | None, expected: bool | None
                       ) -> None:
    judged, why = AuditRule().swap_verdict(swap_result(n, flips, drop))
    assert judged is expected
    if expected:
        assert why.endswith(": the decision reads the surroundings")
    rep = AuditReport.from_measures(
        lung_share=np.full(n, 0.9), border_share=np.zeros(n), peak_in_lungs=np.ones(n, bool),
        peak=np.full((n, 2), 0.5), targets=np.ones(n, np.int64),
        probabilities=np.full((n, 2), 0.5, np.float32), class_names=tuple(NAMES),
        counterfactual=swap_result(n, flips, drop))
    assert rep.flagged is bool(expected) and rep.reads_surroundings is expected
    assert why in rep.reason
    strict = AuditRule(max_flip_rate=0.01, max_accuracy_drop=0.0)
    assert strict.as_dict()["max_flip_rate"] == 0.01
    with pytest.raises(InvalidInputError, match="max_flip_rate"):
        AuditRule(max_flip_rate=1.5)


# ------------------------------------------------------------------ the files
def test_json_round_trips_the_section(shortcut_report: AuditReport) -> None:
    document = json.loads(shortcut_report.to_json())
    section = document["counterfactual"]
    assert section["reads_surroundings"] is True and section["labels"] is True
    assert section["flip_rate"] == {"mean": 1.0, "low": 1.0, "high": 1.0}
    assert document["rule"]["max_flip_rate"] == 0.05
    assert document["rule"]["max_accuracy_drop"] == 0.03
    back = SwapTest.from_dict(section)
    test = shortcut_report.counterfactual
    assert test is not None
    for name in ("n", "flip_rate", "accuracy", "swapped_accuracy", "accuracy_drop",
                 "class_names", "seed", "margin"):
        assert getattr(back, name) == getattr(test, name), name
    for name in ("original", "swapped", "donors", "labels", "probabilities_swapped"):
        np.testing.assert_array_equal(getattr(back, name), getattr(test, name))
    assert back.probabilities_swapped.dtype == np.float32
    with pytest.raises(InvalidInputError, match="document: not a swap test"):
        SwapTest.from_dict({"n": 3})


def test_counterfactual_csv(shortcut_report: AuditReport, tmp_path: Path) -> None:
    path = shortcut_report.to_counterfactual_csv(tmp_path / "swap.csv")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    test = shortcut_report.counterfactual
    assert test is not None and len(rows) == COUNT
    assert list(rows[0]) == ["image", "label", "decision", "swapped_decision", "flipped",
                             "donor", "donor_image", "p_swapped_NORMAL", "p_swapped_PNEUMONIA"]
    for i, row in enumerate(rows):
        assert row["image"] == str(i) and int(row["donor"]) == test.donors[i]
        assert row["flipped"] == "True" and row["label"] != row["swapped_decision"]
        assert np.float32(row["p_swapped_PNEUMONIA"]) == test.probabilities_swapped[i, 1]
    plain = AuditReport.from_measures(
        lung_share=np.ones(2), border_share=np.zeros(2), peak_in_lungs=np.ones(2, bool),
        peak=np.zeros((2, 2)), targets=np.zeros(2, np.int64),
        probabilities=np.ones((2, 2), np.float32), class_names=tuple(NAMES))
    with pytest.raises(InvalidInputError, match="counterfactual: this audit ran without"):
        plain.to_counterfactual_csv(tmp_path / "none.csv")


def test_html_has_the_section(shortcut_report: AuditReport, honest: cx.Classifier,
                              tmp_path: Path) -> None:
    text = shortcut_report.to_html(tmp_path / "page").read_text()
    assert "Counterfactual" in text and "A <b>swap</b> keeps each film's lungs" in text
    assert "a film of another class" in text
    assert '<div class="swap reads">swap test (12 films): decisions flip on 100%' in text
    assert "100% [100%, 100%]" in text and "100 points" in text
    films, _, lungs = planted(6)
    plain = cx.audit(honest, films, lungs=lungs).to_html(tmp_path / "plain").read_text()
    assert "The swap test did not run" in plain


# ------------------------------------------------------------------ the command
def _write(folder: Path, films: np.ndarray, labels: np.ndarray, lungs: np.ndarray
           ) -> tuple[Path, Path]:
    """``films/NORMAL|PNEUMONIA/fNN.png`` and ``lungs/fNN.png``."""
    for i, (film, label, mask) in enumerate(zip(films, labels, lungs, strict=True)):
        where = folder / "films" / NAMES[label]
        where.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(where / f"f{i:02d}.png"), np.round(film[..., 0] * 255).astype(np.uint8))
        (folder / "lungs").mkdir(exist_ok=True)
        cv2.imwrite(str(folder / "lungs" / f"f{i:02d}.png"), mask.astype(np.uint8) * 255)
    return folder / "films", folder / "lungs"


def test_command_counterfactual_flags_and_resumes(shortcut: cx.Classifier, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    films, lungs = _write(tmp_path, *planted(COUNT))
    model = shortcut.save(tmp_path / "m.keras")

    def run(out: str, *extra: str) -> int:
        return main(["audit", str(model), str(films), "--lungs", str(lungs), "--out",
                     str(tmp_path / out), "--batch-size", "5", "--no-progress", *extra])

    assert run("off") in (0, 3)
    assert not (tmp_path / "off" / "counterfactual.csv").exists()
    assert json.loads((tmp_path / "off" / "audit.json").read_text())["counterfactual"] is None
    assert "The swap test did not run" in (tmp_path / "off" / "index.html").read_text()
    capsys.readouterr()
    assert run("on", "--labels", "folder") == 3
    printed = capsys.readouterr().out
    assert "the decision reads the surroundings" in printed
    assert "counterfactual.csv" in printed
    section = json.loads((tmp_path / "on" / "audit.json").read_text())["counterfactual"]
    assert section["flip_rate"]["mean"] == 1.0 and section["accuracy_drop"] == 1.0
    rows = list(csv.DictReader((tmp_path / "on" / "counterfactual.csv").open(newline="")))
    paths = cx.io.find_images(films)
    assert [r["image"] for r in rows] == [str(p) for p in paths]
    assert all(Path(r["donor_image"]).parent.name != Path(r["image"]).parent.name
               for r in rows)
    # the same swap test as the library's, on the same files
    direct = cx.metrics.swap_test(shortcut, paths, lungs=lungs, labels=[p.parent.name
                                                                        for p in paths])
    assert [int(r["donor"]) for r in rows] == direct.donors.tolist()
    # audit.csv keeps its columns with or without the swap test: a resume keeps every row
    on, off = (tmp_path / d / "audit.csv" for d in ("on", "off"))
    assert on.read_text().splitlines()[0] == off.read_text().splitlines()[0]
    table = on.read_text().splitlines()
    marked = table[1].split(",")
    marked[4] = "0.123456789"  # lung_share: a redone film would lose the mark
    on.write_text("\n".join([table[0], ",".join(marked), *table[2:]]) + "\n")
    swapped = (tmp_path / "on" / "counterfactual.csv").read_text()
    (tmp_path / "on" / "counterfactual.csv").unlink()
    assert run("on", "--labels", "folder", "--resume", "--seed", "0") == 3
    assert on.read_text().splitlines()[1].split(",")[4] == "0.123456789"
    assert (tmp_path / "on" / "counterfactual.csv").read_text() == swapped  # run again
    assert run("no", "--labels", "folder", "--no-counterfactual") in (0, 3)
    assert not (tmp_path / "no" / "counterfactual.csv").exists()
    with pytest.raises(SystemExit):
        main(["audit", str(model), str(films), "--lungs", str(lungs), "--out",
              str(tmp_path / "x"), "--labels", "path"])
