"""The data-set audit: the per-film measures, ``cx.audit`` against a direct re-computation, the
ways to give lungs, the verdict rule, and the report's files.

The classifier is an untrained 32 px ``cam_cnn`` (filters 4, 8): the audit's numbers are held
to Grad-CAM and :func:`measure` run by hand, and :func:`measure` itself to NumPy.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import pytest
from rounding import output_tolerance
from tiny_models import conv_gap_dense

import cxrexplain as cx
from cxrexplain.auditing import AuditReport, AuditRule, border_band
from cxrexplain.auditing.measure import DEFAULT_MARGIN, dilate, measure
from cxrexplain.auditing.report import SUMMARY_COLUMNS
from cxrexplain.errors import InvalidInputError
from cxrexplain.lungs import LungSegmenter

SIZE = 32
NAMES = ("NORMAL", "PNEUMONIA")


@pytest.fixture(scope="module")
def clf() -> cx.Classifier:
    keras.utils.set_random_seed(0)
    model = cx.models.build("cam_cnn", input_shape=(SIZE, SIZE, 1), num_classes=2,
                            filters=(4, 8))
    return cx.Classifier(model, list(NAMES))


@pytest.fixture(scope="module")
def gradcam(clf: cx.Classifier) -> cx.GradCAM:
    """One explainer for the module: its compiled pass is traced once."""
    return cx.GradCAM(clf)


@pytest.fixture(scope="module")
def data() -> Any:
    return cx.synthetic.generate(8, size=SIZE, seed=0)


@pytest.fixture(scope="module")
def report(clf: cx.Classifier, data: Any) -> AuditReport:
    return cx.audit(clf, data.images, lungs=data.lung_masks)


def same_numbers(a: AuditReport, b: AuditReport, *, shares: float | np.ndarray = 1e-6,
                 probabilities: float = 1e-6) -> None:
    """The same films measured twice; the tolerances of two computations that round apart
    are :func:`rounding_tolerances`."""
    for share in ("lung_share", "border_share"):
        gap = np.abs(getattr(a, share) - getattr(b, share))
        assert (gap <= shares).all(), (share, gap, shares)
    np.testing.assert_array_equal(a.peak_in_lungs, b.peak_in_lungs)
    np.testing.assert_array_equal(a.targets, b.targets)
    np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=0, atol=probabilities)


def rounding_tolerances(clf: cx.Classifier, heatmaps: np.ndarray) -> dict[str, Any]:
    """How far another float32 computation (another batch size) may move each film's shares,
    and the probabilities (``tests/rounding.py``): a Grad-CAM heatmap value (a map over its
    peak) by up to ``2 * output_tolerance``, so a share of N pixels, a ratio of sums of them,
    by up to that times ``N / sum(heatmap)``."""
    move = 2 * output_tolerance(clf.model)
    pixels = heatmaps[0].size
    return {"shares": move * pixels / heatmaps.sum(axis=(1, 2)),
            "probabilities": output_tolerance(clf.model)}


def threshold_segmenter(cut: float = 0.5) -> LungSegmenter:
    """A one-layer mask model: lung wherever the film is brighter than ``cut``."""
    inputs = keras.Input((SIZE, SIZE, 1))
    layer = keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")
    outputs = layer(inputs)
    layer.set_weights([np.full((1, 1, 1, 1), 200.0, np.float32),
                       np.array([-200.0 * cut], np.float32)])
    return LungSegmenter(keras.Model(inputs, outputs, name="threshold"))


# ---------------------------------------------------------------- measures
def numpy_dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within Euclidean distance ``radius`` of a mask pixel (brute force)."""
    rows, cols = np.nonzero(mask)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    if not len(rows):
        return np.zeros(mask.shape, bool)
    d2 = (yy[..., None] - rows) ** 2 + (xx[..., None] - cols) ** 2
    near: np.ndarray = d2.min(axis=-1) <= radius**2
    return near


def numpy_band(height: int, width: int) -> np.ndarray:
    rows, cols = round(height / 8), round(width / 8)
    yy, xx = np.mgrid[:height, :width]
    band: np.ndarray = ((yy < rows) | (yy >= height - rows) | (xx < cols)
                        | (xx >= width - cols))
    return band


def test_border_band_is_the_outer_eighth() -> None:
    for height, width in ((24, 40), (8, 8), (64, 48), (17, 30)):
        band = border_band((height, width))
        np.testing.assert_array_equal(band, numpy_band(height, width))
    assert int(border_band((8, 8)).sum()) == 28
    assert border_band((6, 6)).sum() == 20  # at least one pixel: round(6/8) = 1


def test_dilate_is_a_euclidean_disc() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((3, 24, 40)) > 0.97
    masks[2] = False
    for margin in (0.0, 0.03, 0.1, 0.25):
        radius = round(margin * 40)
        grown = dilate(masks, margin)
        assert grown.dtype == bool
        for mask, out in zip(masks, grown, strict=True):
            np.testing.assert_array_equal(out, numpy_dilate(mask, radius) if radius else mask)
    dot = np.zeros((1, 9, 9), bool)
    dot[0, 4, 4] = True
    assert int(dilate(dot, 0.25).sum()) == 13  # radius 2: 1 + 4 + 4 + 4


def test_measure_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    heat = rng.random((4, 24, 40)) ** 4
    heat[3] = 0.0  # no mass
    lungs = np.zeros((4, 24, 40), bool)
    lungs[:, 5:19, 6:18] = True
    lungs[:, 5:19, 22:34] = True
    lungs[1] = False
    lungs[1, 10:12, 10:12] = True
    margin = 0.1  # radius 4
    out = measure(heat, lungs, margin=margin)
    band = numpy_band(24, 40)
    for i in range(3):
        grown = numpy_dilate(lungs[i], 4)
        assert out.lung_share[i] == pytest.approx((heat[i] * grown).sum() / heat[i].sum())
        assert out.border_share[i] == pytest.approx((heat[i] * band).sum() / heat[i].sum())
        row, col = np.unravel_index(heat[i].argmax(), heat[i].shape)
        assert bool(out.peak_in_lungs[i]) == bool(grown[row, col])
        np.testing.assert_allclose(out.peak[i], [(row + 0.5) / 24, (col + 0.5) / 40])
    assert 0.0 < out.lung_share[1] < out.lung_share[0] < 1.0
    assert math.isnan(out.lung_share[3]) and math.isnan(out.border_share[3])
    assert not out.peak_in_lungs[3]
    corner = np.zeros((1, 16, 16))
    corner[0, 0, 0] = 1.0
    inside = np.zeros((1, 16, 16), bool)
    inside[0, 4:12, 4:12] = True
    at_corner = measure(corner, inside, margin=0.0)
    assert (at_corner.lung_share[0], at_corner.border_share[0]) == (0.0, 1.0)
    assert not at_corner.peak_in_lungs[0]
    with pytest.raises(InvalidInputError, match="lung_margin"):
        measure(corner, inside, margin=0.7)


# ---------------------------------------------------------------- cx.audit
def test_audit_equals_a_direct_recomputation(clf: cx.Classifier, data: Any,
                                             report: AuditReport) -> None:
    count = len(data.images)
    for values in (report.lung_share, report.border_share, report.peak_in_lungs,
                   report.targets):
        assert values.shape == (count,)
    assert report.probabilities.shape == (count, 2)
    exp = cx.GradCAM(clf).explain(data.images)
    direct = measure(exp.heatmaps, data.lung_masks, margin=DEFAULT_MARGIN)
    np.testing.assert_allclose(report.lung_share, direct.lung_share, atol=1e-6)
    np.testing.assert_allclose(report.border_share, direct.border_share, atol=1e-6)
    np.testing.assert_array_equal(report.peak_in_lungs, direct.peak_in_lungs)
    np.testing.assert_allclose(report.peak, direct.peak)
    np.testing.assert_array_equal(report.targets, exp.targets)
    np.testing.assert_allclose(report.probabilities, clf.predict_proba(data.images), rtol=0,
                               atol=output_tolerance(clf.model))  # explain vs predict pass
    assert report.paths is None and report.groups is None
    assert (report.method, report.layer) == ("gradcam", exp.layer)
    assert len(report) == count
    for row in report.summary:  # the class rows summarise the films explained for the class
        chosen = report.lung_share[report.targets == NAMES.index(row["name"])]
        assert row["by"] == "class" and row["count"] == len(chosen)
        if len(chosen):
            assert row["lung_share_mean"] == pytest.approx(np.nanmean(chosen))
            assert row["lung_share_median"] == pytest.approx(np.nanmedian(chosen))


def test_audit_resizes_masks_to_the_map(clf: cx.Classifier, gradcam: cx.GradCAM) -> None:
    big = cx.synthetic.generate(5, size=64, seed=3)
    rep = cx.audit(clf, big.images, lungs=big.lung_masks, method=gradcam, lung_margin=0.1)
    exp = gradcam.explain(big.images)
    small = np.stack([cv2.resize(m.astype(np.uint8), (SIZE, SIZE),
                                 interpolation=cv2.INTER_NEAREST) for m in big.lung_masks])
    direct = measure(exp.heatmaps, small.astype(bool), margin=0.1)
    np.testing.assert_allclose(rep.lung_share, direct.lung_share, atol=1e-6)
    np.testing.assert_array_equal(rep.peak_in_lungs, direct.peak_in_lungs)
    assert rep.lung_margin == 0.1


def test_audit_batch_size_does_not_change_results(clf: cx.Classifier, gradcam: cx.GradCAM,
                                                  data: Any, report: AuditReport) -> None:
    small = cx.audit(clf, data.images, lungs=data.lung_masks, method=gradcam, batch_size=3)
    same_numbers(small, report, **rounding_tolerances(clf, gradcam.explain(data.images).heatmaps))
    assert [g.index for g in small.gallery] == [g.index for g in report.gallery]
    assert [g.index for g in report.gallery] == report.worst(len(report.gallery)).tolist()


def test_audit_targets(clf: cx.Classifier, gradcam: cx.GradCAM, data: Any) -> None:
    rep = cx.audit(clf, data.images, lungs=data.lung_masks, method=gradcam,
                   targets="PNEUMONIA")
    assert rep.targets.tolist() == [1] * len(data.images)
    normal = cx.audit(clf, data.images, lungs=data.lung_masks, method=gradcam, targets=0)
    exp = gradcam.explain(data.images, 0)
    direct = measure(exp.heatmaps, data.lung_masks)
    np.testing.assert_allclose(normal.lung_share, direct.lung_share, atol=1e-6)
    with pytest.raises(InvalidInputError, match="targets"):
        cx.audit(clf, data.images, lungs=data.lung_masks, targets=5)
    with pytest.raises(InvalidInputError, match="targets"):
        cx.audit(clf, data.images, lungs=data.lung_masks, targets=[0, 1])


def _write_films(folder: Path, data: Any) -> tuple[list[Path], list[Path]]:
    """Films in two hospital folders (3 and 5) and their masks in one flat folder."""
    films, masks = [], []
    for i, (image, lungs) in enumerate(zip(data.images, data.lung_masks, strict=True)):
        hospital, name = ("hospA", f"a{i}") if i < 3 else ("hospB", f"b{i}")
        film = folder / "films" / hospital / f"{name}.png"
        film.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(film), np.round(image[..., 0] * 255).astype(np.uint8))
        mask = folder / "masks" / f"{name}_mask.png"
        mask.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(mask), lungs.astype(np.uint8) * 255)
        films.append(film)
        masks.append(mask)
    return films, masks


def test_audit_paths_groups_and_mask_files(tmp_path: Path, clf: cx.Classifier,
                                           gradcam: cx.GradCAM, data: Any) -> None:
    films, masks = _write_films(tmp_path, data)
    loaded = np.stack([cx.load_image(f) for f in films])
    reference = cx.audit(clf, loaded, lungs=data.lung_masks, method=gradcam)
    rep = cx.audit(clf, tmp_path / "films", lungs=masks, method=gradcam, groups="folder")
    assert rep.paths == [str(f) for f in films]
    same_numbers(rep, reference)
    assert rep.groups == ["hospA"] * 3 + ["hospB"] * 5
    groups = {row["name"]: row for row in rep.summary if row["by"] == "group"}
    assert sorted(groups) == ["hospA", "hospB"]
    assert (groups["hospA"]["count"], groups["hospB"]["count"]) == (3, 5)
    assert groups["hospB"]["lung_share_mean"] == pytest.approx(np.nanmean(rep.lung_share[3:]))
    by_folder = cx.audit(clf, films, lungs=tmp_path / "masks", method=gradcam)  # by name
    same_numbers(by_folder, reference)
    labelled = cx.audit(clf, films, lungs=masks, method=gradcam, groups=list("xxyyyyyy"))
    assert [r["count"] for r in labelled.summary if r["by"] == "group"] == [2, 6]
    with pytest.raises(InvalidInputError, match=r"groups: expected one label per film \(8\)"):
        cx.audit(clf, films, lungs=masks, groups=["x", "y"])
    with pytest.raises(InvalidInputError, match="groups: 'folder' needs film paths"):
        cx.audit(clf, data.images, lungs=data.lung_masks, groups="folder")
    with pytest.raises(InvalidInputError, match="groups"):
        cx.audit(clf, films, lungs=masks, groups="hospital")
    with pytest.raises(InvalidInputError, match="lungs: a folder of masks .* needs film paths"):
        cx.audit(clf, data.images, lungs=tmp_path / "masks")
    with pytest.raises(InvalidInputError, match="lungs: expected one mask per film, got 7"):
        cx.audit(clf, films, lungs=masks[:7])
    (tmp_path / "masks" / "b7_mask.png").unlink()
    with pytest.raises(InvalidInputError, match=r"^lungs: 1 image\(s\) have no mask") as err:
        cx.audit(clf, films, lungs=tmp_path / "masks")
    assert "b7.png" in str(err.value)


def test_audit_lungs_from_a_segmenter(tmp_path: Path, clf: cx.Classifier,
                                      gradcam: cx.GradCAM, data: Any) -> None:
    seg = threshold_segmenter()
    masks = seg.segment(data.images)
    assert isinstance(masks, np.ndarray) and masks.any(axis=(1, 2)).all()
    reference = cx.audit(clf, data.images, lungs=masks, method=gradcam)
    same_numbers(cx.audit(clf, data.images, lungs=seg, method=gradcam), reference)
    same_numbers(cx.audit(clf, data.images, lungs=seg.model, method=gradcam), reference)
    path = seg.save(tmp_path / "lungs.keras")
    same_numbers(cx.audit(clf, data.images, lungs=str(path), method=gradcam), reference)
    assert not np.allclose(reference.lung_share, cx.audit(
        clf, data.images, lungs=data.lung_masks, method=gradcam).lung_share)


def test_audit_lung_errors(tmp_path: Path, clf: cx.Classifier, data: Any) -> None:
    images, lungs = data.images, data.lung_masks
    with pytest.raises(InvalidInputError, match="lungs: expected one mask per film, got 5 "
                                                "masks for 8 films"):
        cx.audit(clf, images, lungs=lungs[:5])
    with pytest.raises(InvalidInputError, match=r"lungs\[0\]: the mask is 16x16 but its film "
                                                "is 32x32"):
        cx.audit(clf, images, lungs=lungs[:, ::2, ::2])
    empty = lungs.copy()
    empty[3] = False
    with pytest.raises(InvalidInputError, match=r"lungs: 1 mask\(s\) are empty .*positions 3"):
        cx.audit(clf, images, lungs=empty)
    files = []
    for i, mask in enumerate(lungs[:2]):
        files.append(tmp_path / f"m{i}.png")
        cv2.imwrite(str(files[-1]), mask.astype(np.uint8) * 255 if i == 0 else
                    np.zeros((SIZE, SIZE), np.uint8))
    cv2.imwrite(str(tmp_path / "small.png"), np.full((16, 16), 255, np.uint8))
    with pytest.raises(InvalidInputError, match="lungs '.*m1.png': the mask is empty"):
        cx.audit(clf, images[:2], lungs=files)
    with pytest.raises(InvalidInputError, match="lungs '.*small.png': the mask is 16x16"):
        cx.audit(clf, images[:1], lungs=[tmp_path / "small.png"])
    for bad in (42, [1, 2], b"mask"):
        with pytest.raises(InvalidInputError, match="lungs: expected a LungSegmenter"):
            cx.audit(clf, images, lungs=bad)
    with pytest.raises(InvalidInputError, match="lungs: the mask arrays differ in size"):
        cx.audit(clf, images[:2], lungs=[lungs[0], lungs[1, :16]])
    with pytest.raises(InvalidInputError, match="lungs: .*one mask channel"):
        cx.audit(clf, images, lungs=conv_gap_dense(2, size=SIZE))


# ---------------------------------------------------------------- the verdict
def make_report(lung: list[float], targets: list[int], *, names: tuple[str, ...] = NAMES,
                peaks_in: list[bool] | None = None, rule: AuditRule | None = None
                ) -> AuditReport:
    count = len(lung)
    share = np.array(lung, np.float64)
    probabilities = np.full((count, len(names)), 1 / len(names), np.float32)
    return AuditReport.from_measures(
        lung_share=share, border_share=1.0 - share,
        peak_in_lungs=np.array(peaks_in if peaks_in is not None else share > 0.5, bool),
        peak=np.full((count, 2), 0.5), targets=np.array(targets, np.int64),
        probabilities=probabilities, class_names=names, rule=rule)


def test_verdict_flags_a_finding_outside_the_lungs() -> None:
    rep = make_report([0.9] * 5 + [0.3, 0.2, 0.4, 0.9, 0.1], [0] * 5 + [1] * 5)
    assert rep.flagged
    assert rep.reason.startswith("PNEUMONIA (5 films): mean lung share 0.38 < 0.5")
    assert "NORMAL" not in rep.reason
    peaks = make_report([0.9] * 5 + [0.6] * 5, [0] * 5 + [1] * 5, peaks_in=[True] * 6
                        + [False] * 4)
    assert peaks.flagged and peaks.reason == ("PNEUMONIA (5 films): 80% of peaks outside the "
                                              "lungs > 50%")


def test_verdict_all_inside_is_not_flagged() -> None:
    rep = make_report([0.8, 0.7, 0.9, 0.6, 0.75] * 2, [0, 1] * 5)
    assert not rep.flagged
    assert rep.reason.startswith("most evidence lies inside the lungs")
    assert "PNEUMONIA 0.75" in rep.reason  # 0.7, 0.6, 0.8, 0.9, 0.75


@pytest.mark.parametrize("negative", ["NORMAL", "No Finding", "no_finding", "Healthy"])
def test_verdict_skips_the_negative_class_by_default(negative: str) -> None:
    names = (negative, "Effusion")
    shares = [0.1] * 5 + [0.9] * 5
    rep = make_report(shares, [0] * 5 + [1] * 5, names=names)
    assert not rep.flagged
    judged = make_report(shares, [0] * 5 + [1] * 5, names=names,
                         rule=AuditRule(negative=None))
    assert judged.flagged and judged.reason.startswith(f"{negative} (5 films)")
    named = make_report(shares, [0] * 5 + [1] * 5, names=names,
                        rule=AuditRule(negative=["Effusion"]))
    assert named.flagged


def test_verdict_needs_min_images() -> None:
    shares, targets = [0.9] * 5 + [0.1] * 4, [0] * 5 + [1] * 4
    rep = make_report(shares, targets)
    assert not rep.flagged
    assert rep.reason == ("not judged: no class of PNEUMONIA has 5 or more films explained "
                          "for it")
    assert make_report(shares, targets, rule=AuditRule(min_images=4)).flagged
    with pytest.raises(InvalidInputError, match="min_lung_share"):
        AuditRule(min_lung_share=2.0)
    with pytest.raises(InvalidInputError, match="negative"):
        AuditRule(negative="NORMAL")  # a str is not a list of names


def test_verdict_ignores_all_zero_maps() -> None:
    rep = make_report([float("nan")] * 5 + [0.9], [1] * 6, rule=AuditRule(min_images=1))
    row = next(r for r in rep.summary if r["name"] == "PNEUMONIA")
    assert row["lung_share_mean"] == 0.9 and row["count"] == 6
    assert not rep.flagged


# ---------------------------------------------------------------- the report's views and files
def nan_report() -> AuditReport:
    return make_report([0.5, float("nan"), 0.1, 0.3, 0.3], [1, 0, 1, 1, 0])


def test_worst_orders_by_lung_share_nan_last() -> None:
    rep = nan_report()
    assert rep.worst(5).tolist() == [2, 3, 4, 0, 1]
    assert rep.worst(2).tolist() == [2, 3]
    assert rep.worst().tolist() == [2, 3, 4, 0, 1]
    with pytest.raises(InvalidInputError, match="k"):
        rep.worst(0)


def test_to_json_parses_with_nan_as_null() -> None:
    rep = nan_report()
    text = rep.to_json()
    assert "NaN" not in text
    document = json.loads(text)
    assert document["flagged"] is rep.flagged and document["reason"] == rep.reason
    assert document["class_names"] == list(NAMES)
    films = document["films"]
    assert [f["lung_share"] for f in films] == [0.5, None, 0.1, 0.3, 0.3]
    assert [f["target"] for f in films] == ["PNEUMONIA", "NORMAL", "PNEUMONIA", "PNEUMONIA",
                                            "NORMAL"]
    assert document["rule"]["min_images"] == 5
    assert len(document["summary"]) == 2


def test_to_csv_round_trips_the_numbers(tmp_path: Path, report: AuditReport) -> None:
    for rep in (report, nan_report()):
        path = rep.to_csv(tmp_path / "audit.csv")
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == len(rep)
        header = path.read_text().splitlines()[0].split(",")
        assert header[:5] == ["image", "group", "target", "probability", "lung_share"]
        for i, row in enumerate(rows):
            share = float(row["lung_share"]) if row["lung_share"] else float("nan")
            np.testing.assert_equal(share, rep.lung_share[i])
            assert float(row["border_share"] or "nan") == pytest.approx(
                rep.border_share[i], nan_ok=True)
            assert row["peak_in_lungs"] == str(bool(rep.peak_in_lungs[i]))
            assert row["target"] == rep.class_names[rep.targets[i]]
            for c, name in enumerate(rep.class_names):
                assert np.float32(row[f"p_{name}"]) == rep.probabilities[i, c]
        back = AuditReport.from_rows(rows, class_names=rep.class_names, paths=False)
        np.testing.assert_array_equal(back.lung_share, rep.lung_share)
        assert (back.flagged, back.reason) == (rep.flagged, rep.reason)


def test_to_html_writes_the_verdict(tmp_path: Path, report: AuditReport) -> None:
    pytest.importorskip("cxrexplain.auditing.html")
    import html

    index = report.to_html(tmp_path / "page")
    assert index == tmp_path / "page" / "index.html"
    text = index.read_text()
    assert ("FLAGGED" if report.flagged else "Not flagged") in text
    assert html.escape(report.reason) in text


def test_summary_intervals_are_the_bootstrap_of_each_class() -> None:
    """The summary's [low, high] is the percentile bootstrap of the class's films (seed 0)."""
    lung = [0.9, 0.8, 0.7, 0.95, 0.3, 0.2, 0.4, 0.9, 0.1, 0.5]
    rep = make_report(lung, [0] * 4 + [1] * 6)
    pneumonia = np.array(lung[4:])
    draws = np.random.default_rng(0).integers(0, 6, (1000, 6))
    means = pneumonia[draws].mean(axis=1)
    row = next(r for r in rep.summary if r["name"] == "PNEUMONIA")
    assert row["lung_share_low"] == pytest.approx(np.quantile(means, 0.025))
    assert row["lung_share_high"] == pytest.approx(np.quantile(means, 0.975))
    assert row["lung_share_low"] < row["lung_share_mean"] < row["lung_share_high"]
    border = 1.0 - pneumonia
    assert row["border_share_low"] == pytest.approx(np.quantile(border[draws].mean(axis=1),
                                                                0.025))
    outside = (pneumonia <= 0.5)[draws].mean(axis=1)
    assert row["peaks_outside_lungs_high"] == pytest.approx(np.quantile(outside, 0.975))
    assert set(row) == set(SUMMARY_COLUMNS)
