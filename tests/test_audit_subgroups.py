"""The audit's metadata sections: subgroup performance, the encoding probe, ``by=`` and the CLI.

The subgroup figures are held to a NumPy re-derivation (pairwise AUCs, loops over the same
bootstrap draws); the probe to a planted attribute: films whose "view" is a bright marker in
the top-left corner, read by a hand-built model that looks only at that corner
(``tiny_models.patch_model``: the probe must find the view, AUC near 1) and by one that looks
only at the middle (it cannot: AUC near 0.5), while an attribute drawn at random stays at
chance for both.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_models import PLANTED_CENTER, PLANTED_CORNER, PLANTED_SIZE, conv_gap_dense, patch_model

import cxrexplain as cx
from cxrexplain._stats import bootstrap_weights, weighted_auc
from cxrexplain.auditing import (
    AuditReport,
    EncodingRow,
    SubgroupRow,
    band_labels,
    encoding_probe,
    subgroup_table,
)
from cxrexplain.auditing.attributes import film_attributes, parse_by, records_labels
from cxrexplain.auditing.features import pixel_statistics, untrained_copy
from cxrexplain.auditing.probe import logistic_fit, probe_folds
from cxrexplain.cli import main
from cxrexplain.data import Records
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.metrics import bootstrap_ci

NAMES = ["NORMAL", "PNEUMONIA"]
COUNT = 48


def pairwise_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """The AUC over all (positive, negative) pairs, ties counting one half."""
    pos, neg = scores[truth], scores[~truth]
    if not len(pos) or not len(neg):
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def macro(labels: np.ndarray, p: np.ndarray) -> float:
    aucs = [pairwise_auc(labels == c, p[:, c]) for c in range(p.shape[1])]
    finite = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(finite)) if finite else float("nan")


def view_films(count: int = COUNT, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str],
                                                          np.ndarray]:
    """Noise films; labels 0, 1, 0, 1, ...; view AP (a bright corner marker) on films 0, 1,
    4, 5, 8, 9, ... (so each view has both labels); the lungs, a fixed box."""
    rng = np.random.default_rng(seed)
    films = (rng.random((count, PLANTED_SIZE, PLANTED_SIZE, 1)) * 0.4).astype(np.float32)
    labels = np.arange(count) % 2
    ap = (np.arange(count) // 2) % 2 == 0
    films[ap, PLANTED_CORNER[0], PLANTED_CORNER[1]] = 1.0
    lungs = np.zeros((count, PLANTED_SIZE, PLANTED_SIZE), bool)
    lungs[:, 8:26, 6:27] = True
    return films, labels, ["AP" if a else "PA" for a in ap], lungs


# ------------------------------------------------------------------------ statistics
def test_weighted_auc_is_the_pairwise_auc_of_each_resample() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random(60) < 0.4
    scores = np.round(rng.random(60), 1)  # ties
    weights = bootstrap_weights(60, 20, seed=5)
    picks = np.random.default_rng(5).integers(0, 60, (20, 60))  # bootstrap_ci's draw
    expected = [pairwise_auc(truth[i], scores[i]) for i in picks]
    np.testing.assert_allclose(weighted_auc(truth, scores, weights), expected, atol=1e-12)
    assert np.isnan(weighted_auc(np.zeros(3, bool), np.arange(3.0), np.ones((1, 3)))[0])


def test_subgroup_table_matches_a_numpy_rederivation() -> None:
    rng = np.random.default_rng(0)
    n, resamples = 90, 40
    labels = rng.integers(0, 3, n)
    labels[:3] = 0  # "F" gets no class-2 film below
    p = rng.dirichlet([1, 1, 1], n)
    p[np.arange(n), labels] += rng.random(n)  # better than chance
    p /= p.sum(axis=1, keepdims=True)
    sex = np.where(np.arange(n) < 20, "F", "M").astype(object)
    sex[(labels == 2) & (sex == "F")] = "M"
    sex[25] = None  # unknown: out of the sex subgroups, in the whole set
    rows = subgroup_table(labels, p, {"sex": list(sex)}, class_names=("A", "B", "C"),
                          n_resamples=resamples, seed=4)
    assert [(r.by, r.value) for r in rows] == [("all", "all"), ("sex", "F"), ("sex", "M")]
    hits = np.argmax(p, axis=1) == labels
    for row in rows:
        member = np.ones(n, bool) if row.by == "all" else sex == row.value
        idx = np.flatnonzero(member)
        assert row.n == len(idx)
        # the accuracy's interval is bootstrap_ci's on the subgroup's hits, exactly
        assert row.accuracy == bootstrap_ci(hits[idx], n_resamples=resamples, seed=4)
        assert row.macro_auc.mean == pytest.approx(macro(labels[idx], p[idx]), abs=1e-12)
        draws = idx[np.random.default_rng(4).integers(0, len(idx), (resamples, len(idx)))]
        aucs = [macro(labels[d], p[d]) for d in draws]
        assert (row.macro_auc.low, row.macro_auc.high) == pytest.approx(
            tuple(np.quantile(aucs, [0.025, 0.975])), abs=1e-12)
        for c, name in enumerate("ABC"):
            of_class = labels[idx] == c
            expected = hits[idx][of_class].mean() if of_class.any() else np.nan
            assert row.sensitivity[name].mean == pytest.approx(expected, nan_ok=True)
    assert np.isnan(rows[1].sensitivity["C"].mean)  # no class-C film among "F"
    # the gap: the subgroup minus the whole set, both on the same resamples of the whole set
    whole_draws = np.random.default_rng(4).integers(0, n, (resamples, n))
    female = sex == "F"
    gaps = [hits[d][female[d]].mean() - hits[d].mean() for d in whole_draws]
    gap = rows[1].accuracy_gap
    assert gap.mean == pytest.approx(hits[female].mean() - hits.mean())
    assert (gap.low, gap.high) == pytest.approx(tuple(np.quantile(gaps, [0.025, 0.975])))
    auc_gaps = [macro(labels[d][female[d]], p[d][female[d]]) - macro(labels[d], p[d])
                for d in whole_draws]
    assert (rows[1].macro_auc_gap.low, rows[1].macro_auc_gap.high) == pytest.approx(
        tuple(np.nanquantile(auc_gaps, [0.025, 0.975])))
    # rows survive their JSON form
    for row in rows:
        back = SubgroupRow.from_dict(json.loads(json.dumps(row.as_dict())))
        assert back.as_dict() == row.as_dict()


def test_subgroup_table_errors() -> None:
    p = np.full((4, 2), 0.5)
    with pytest.raises(InvalidInputError, match="labels"):
        subgroup_table(np.array([0, 1, 2, 0]), p, {})
    with pytest.raises(InvalidInputError, match="3 values for 4 films"):
        subgroup_table(np.array([0, 1, 1, 0]), p, {"view": ["AP", "PA", "AP"]})


def test_age_bands_and_metadata_columns() -> None:
    assert band_labels([39.9, 40, 60, 79, 80, None, float("nan"), "61"]) == [
        "<40", "40-60", "60-80", "60-80", ">=80", None, None, "60-80"]
    assert band_labels([5, 15], (10,)) == ["<10", ">=10"]
    with pytest.raises(InvalidInputError, match="increasing"):
        band_labels([1], (60, 40))
    assert parse_by("view, sex") == ("view", "sex")
    with pytest.raises(InvalidInputError, match="twice"):
        parse_by(["view", "view"])
    recs = Records(["d/b.png", "d/a.png"], NAMES, [[0, 1], [1, 0]], view=["PA", "AP Supine"],
                   age=[30, 85], metadata={"site": ["x", "y"]})
    # matched by path: the films in another order than the records
    films = ["/x/d/a.png", "/x/d/b.png"]
    found = film_attributes(recs, ["view", "age", "site"], 2, paths=films)
    assert found == {"view": ["AP", "PA"], "age": [">=80", "<40"], "site": ["y", "x"]}
    assert records_labels(recs, NAMES, paths=films) == ["NORMAL", "PNEUMONIA"]
    assert records_labels(recs, NAMES, paths=["/x/c.png", *films]) is None  # c: no label
    assert records_labels(recs, ["COVID", "NORMAL"]) is None  # classes the model lacks
    with pytest.raises(InvalidInputError, match="no column 'race'"):
        film_attributes({"view": ["AP"]}, ["race"], 1)
    with pytest.raises(InvalidInputError, match="2 values for 3 films"):
        film_attributes({"view": ["AP", "PA"]}, ["view"], 3)
    with pytest.raises(InvalidInputError, match="metadata"):
        film_attributes(None, ["view"], 3)


# ------------------------------------------------------------------------ the probe
@pytest.mark.parametrize("shape", [(60, 4), (20, 50)])  # fewer, then more, features than films
def test_logistic_fit_solves_the_penalised_likelihood(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape)
    y = (x[:, 0] + rng.normal(size=shape[0]) > 0).astype(float)
    w, b = logistic_fit(x, y, l2=0.7)
    p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
    # the optimum: the gradient of sum(log-loss) + 0.35 ||w||^2 is zero
    np.testing.assert_allclose(x.T @ (p - y) + 0.7 * w, 0.0, atol=1e-8)
    assert abs((p - y).sum()) < 1e-8


def test_probe_folds_keep_patients_together() -> None:
    labels = np.array([0, 1] * 10)
    patients = [f"p{i // 4}" for i in range(20)]
    folds = probe_folds(labels, patients, 3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(20))
    for fold in folds:
        inside = {patients[i] for i in fold}
        outside = {patients[i] for i in range(20) if i not in set(fold.tolist())}
        assert not inside & outside


def test_encoding_probe_finds_a_planted_attribute_and_not_a_random_one() -> None:
    rng = np.random.default_rng(0)
    n = 120
    planted = np.array(["AP", "PA"] * (n // 2))
    features = rng.normal(size=(n, 30))
    features[:, 3] += 4.0 * (planted == "PA")
    random_attribute = list(rng.choice(["a", "b", "c"], n))
    rows = encoding_probe({"model": features}, {"view": planted, "coin": random_attribute},
                          patients=[str(i // 2) for i in range(n)], n_resamples=300)
    view, coin = rows
    assert (view.attribute, view.values, view.n, view.folds, view.grouped) == (
        "view", ("AP", "PA"), n, 5, True)
    assert view.auc.mean > 0.95 and view.auc.low > 0.9
    assert coin.values == ("a", "b", "c") and coin.auc.low < 0.5 < coin.auc.high
    assert EncodingRow.from_dict(json.loads(json.dumps(view.as_dict()))) == view


def test_encoding_probe_leaves_out_rare_values() -> None:
    features = np.random.default_rng(0).normal(size=(12, 3))
    values = ["AP"] * 9 + ["PA"] * 3  # PA: fewer than k films
    row, = encoding_probe({"pixels": features}, {"view": values}, k=4, n_resamples=10)
    assert row.values == ("AP",) and np.isnan(row.auc.mean) and row.folds == 0


def test_pixel_statistics_and_the_untrained_copy() -> None:
    films = np.zeros((2, 8, 8, 1), np.float32)
    films[1] = 1.0
    films[0, :4] = 0.5
    stats = pixel_statistics(films)
    np.testing.assert_allclose(stats[:, 0], [0.25, 1.0])  # means
    np.testing.assert_allclose(stats[:, 1], [0.25, 0.0])  # standard deviations
    np.testing.assert_allclose(stats[0, 9:], np.eye(16)[0] * 0.5 + np.eye(16)[8] * 0.5)
    np.testing.assert_allclose(stats[1, 9:], np.eye(16)[15])
    model = conv_gap_dense(size=16)
    first, again, other = (untrained_copy(model, seed=s) for s in (0, 0, 1))
    kernel = model.get_weights()[0]
    assert not np.allclose(first.get_weights()[0], kernel)
    np.testing.assert_array_equal(first.get_weights()[0], again.get_weights()[0])
    assert not np.allclose(first.get_weights()[0], other.get_weights()[0])


# ------------------------------------------------------------------------ cx.audit(by=...)
@pytest.fixture(scope="module")
def corner_report() -> AuditReport:
    films, labels, view, lungs = view_films()
    coin = list(np.random.default_rng(7).choice(["H", "T"], COUNT))
    ages = [25 + 3 * i for i in range(COUNT)]
    clf = cx.Classifier(patch_model(*PLANTED_CORNER), NAMES)
    return cx.audit(clf, films, lungs=lungs, labels=labels, by=["view", "coin", "age"],
                    metadata={"view": view, "coin": coin, "age": ages,
                              "patient": [str(i // 2) for i in range(COUNT)]},
                    counterfactual=False)


def test_audit_by_reports_subgroups_lung_share_and_encoding(corner_report: AuditReport
                                                            ) -> None:
    rep = corner_report
    view = view_films()[2]
    assert rep.attributes is not None and rep.attributes["view"] == view
    # the corner model calls every AP film (marker) PNEUMONIA and every PA film NORMAL
    assert rep.subgroups is not None
    table = {(r.by, r.value): r for r in rep.subgroups}
    ap, pa = table["view", "AP"], table["view", "PA"]
    assert (ap.n, pa.n) == (COUNT // 2, COUNT // 2)
    assert ap.accuracy.mean == pa.accuracy.mean == 0.5
    assert (ap.sensitivity["PNEUMONIA"].mean, ap.sensitivity["NORMAL"].mean) == (1.0, 0.0)
    assert (pa.sensitivity["PNEUMONIA"].mean, pa.sensitivity["NORMAL"].mean) == (0.0, 1.0)
    assert [r.value for r in rep.subgroups if r.by == "age"] == [
        "<40", "40-60", "60-80", ">=80"]
    # where the evidence lies, by view: a summary row per value, its count
    summary = {(r["by"], r["name"]): r for r in rep.summary}
    assert summary["view", "AP"]["count"] == COUNT // 2
    ap_films = np.array(view) == "AP"
    assert summary["view", "AP"]["lung_share_mean"] == pytest.approx(
        float(np.nanmean(rep.lung_share[ap_films])))
    # the probe: the corner model's features hold the view, not the coin
    assert rep.encoding is not None
    probe = {(r.attribute, r.features): r for r in rep.encoding}
    assert set(probe) == {(a, f) for a in ("view", "coin", "age")
                          for f in ("model", "untrained", "pixels")}
    assert probe["view", "model"].auc.mean > 0.95 and probe["view", "model"].grouped
    assert probe["coin", "model"].auc.low < 0.5 < probe["coin", "model"].auc.high


def test_a_model_blind_to_the_marker_does_not_encode_the_view() -> None:
    films, _, view, lungs = view_films()
    clf = cx.Classifier(patch_model(*PLANTED_CENTER), NAMES)
    rep = cx.audit(clf, films, lungs=lungs, by="view", metadata={"view": view})
    assert rep.subgroups is None  # no labels
    probe = {r.features: r for r in rep.encoding or []}
    assert probe["model"].auc.low < 0.5 < probe["model"].auc.high
    assert not probe["model"].grouped  # no patient column
    assert probe["pixels"].auc.mean > 0.95  # the marker's bright pixels


def test_report_files_carry_the_sections(tmp_path: Path, corner_report: AuditReport) -> None:
    document = json.loads(corner_report.to_json())
    assert document["attributes"]["coin"] == corner_report.attributes["coin"]  # type: ignore
    assert [(r["by"], r["value"]) for r in document["subgroups"]][:3] == [
        ("all", "all"), ("view", "AP"), ("view", "PA")]
    assert {r["features"] for r in document["encoding"]} == {"model", "untrained", "pixels"}
    with (corner_report.to_subgroups_csv(tmp_path / "s.csv")).open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows[1]["value"] == "AP" and float(rows[1]["sensitivity_PNEUMONIA"]) == 1.0
    with (corner_report.to_encoding_csv(tmp_path / "e.csv")).open() as handle:
        assert len(list(csv.DictReader(handle))) == 9
    page = corner_report.to_html(tmp_path / "html").read_text()
    assert "Subgroups: performance by metadata" in page
    assert "What the model encodes besides the disease" in page


def test_audit_takes_records_as_the_films(tmp_path: Path) -> None:
    films, labels, view, lungs = view_films(12)
    paths = []
    for i, film in enumerate(films):
        paths.append(tmp_path / f"{i:02d}.png")
        cv2.imwrite(str(paths[-1]), np.round(film[..., 0] * 255).astype(np.uint8))
    recs = Records(paths, NAMES, np.eye(2)[labels], view=view, sex=["F", "M"] * 6,
                   patient=[str(i) for i in range(12)])
    clf = cx.Classifier(conv_gap_dense(size=PLANTED_SIZE), NAMES)
    rep = cx.audit(clf, recs, lungs=lungs, by=["view", "sex"], counterfactual=False)
    assert rep.paths == [str(p) for p in paths]
    assert rep.subgroups is not None and rep.subgroups[0].n == 12  # labels from the targets
    assert rep.encoding is not None and len(rep.encoding) == 6
    assert [r["name"] for r in rep.summary if r["by"] == "sex"] == ["F", "M"]


def test_audit_by_errors() -> None:
    films, _, view, lungs = view_films(8)
    clf = cx.Classifier(patch_model(*PLANTED_CORNER), NAMES)
    with pytest.raises(InvalidInputError, match="needs the films' metadata"):
        cx.audit(clf, films, lungs=lungs, by=["view"])
    with pytest.raises(InvalidInputError, match="encoding: the probe reads the by= columns"):
        cx.audit(clf, films, lungs=lungs, encoding=True)
    no_dense = cx.Classifier(_no_dense_model(), NAMES)
    with pytest.raises(ModelStructureError, match="no Dense layer"):
        cx.audit(no_dense, films, lungs=lungs, by="view", metadata={"view": view},
                 encoding=True)
    rep = cx.audit(no_dense, films, lungs=lungs, by="view", metadata={"view": view})
    assert rep.encoding is None and rep.attributes is not None  # the probe skipped


def _no_dense_model() -> object:
    import keras

    inputs = keras.Input((PLANTED_SIZE, PLANTED_SIZE, 1))
    x = keras.layers.Conv2D(2, 3, padding="same")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Softmax()(x))


# ------------------------------------------------------------------------ the command line
def test_cli_audit_metadata_by(tmp_path: Path) -> None:
    films, labels, view, lungs = view_films(24)
    folder, masks = tmp_path / "films", tmp_path / "masks"
    lines = ["image,label,patient,view,sex,age"]
    for i, film in enumerate(films):
        name = f"{NAMES[labels[i]]}/{i:02d}.png"
        for root, image in ((folder, film[..., 0]), (masks, lungs[i].astype(np.float32))):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / name), np.round(image * 255).astype(np.uint8))
        lines.append(f"{name},{NAMES[labels[i]]},p{i // 2},{view[i]},{'FM'[i % 2]},{30 + i}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    model = tmp_path / "corner.keras"
    cx.Classifier(patch_model(*PLANTED_CORNER), NAMES).save(model)
    out = tmp_path / "audit"
    code = main(["audit", str(model), str(folder), "--lungs", str(masks), "--out", str(out),
                 "--metadata", str(folder / "metadata.csv"), "--by", "view,sex",
                 "--no-counterfactual", "--no-progress"])
    assert code in (0, 3)
    with (out / "subgroups.csv").open() as handle:
        rows = {(r["by"], r["value"]): r for r in csv.DictReader(handle)}
    assert float(rows["view", "AP"]["sensitivity_PNEUMONIA"]) == 1.0
    assert float(rows["view", "PA"]["sensitivity_PNEUMONIA"]) == 0.0
    assert int(rows["sex", "F"]["n"]) == 12
    with (out / "encoding.csv").open() as handle:
        probe = {(r["attribute"], r["features"]): r for r in csv.DictReader(handle)}
    assert float(probe["view", "model"]["auc"]) > 0.95 and probe["view", "model"]["grouped"]
    document = json.loads((out / "audit.json").read_text())
    assert {r["by"] for r in document["summary"]} == {"class", "view", "sex"}
    assert main(["audit", str(model), str(folder), "--lungs", str(masks), "--out",
                 str(out), "--by", "view", "--no-progress"]) == 1  # --by without --metadata



def test_a_small_subgroups_gap_is_never_starred() -> None:
    """Four films all right give the interval [1, 1] and a gap that excludes 0: shown, but not
    marked as clear (``MIN_SUBGROUP_FILMS``); the same gap in a large subgroup is marked."""
    from types import SimpleNamespace

    from cxrexplain.auditing.html import _subgroups
    from cxrexplain.auditing.subgroups import MIN_SUBGROUP_FILMS

    labels = np.array([0, 1] * 40)
    probabilities = np.eye(2)[labels] * 0.8 + 0.1
    probabilities[4:40] = probabilities[4:40, ::-1]  # films 4..39 wrong: "all" at 0.55
    values = ["few"] * 4 + ["rest"] * 76
    rows = cx.auditing.subgroup_table(labels, probabilities, {"site": values})
    few = next(r for r in rows if r.value == "few")
    assert few.n < MIN_SUBGROUP_FILMS and few.accuracy_gap[1] > 0  # the interval excludes 0
    page = _subgroups(SimpleNamespace(subgroups=rows))  # type: ignore[arg-type]
    few_row = page[page.index("<td>few</td>"):].split("</tr>")[0]
    assert "*" not in few_row
    many = cx.auditing.subgroup_table(labels, probabilities,
                                      {"site": ["few"] * 40 + ["rest"] * 40})
    many_page = _subgroups(SimpleNamespace(subgroups=many))  # type: ignore[arg-type]
    assert "*" in many_page[many_page.index("<td>few</td>"):].split("</tr>")[0]
