"""The audit's page: one self-contained ``index.html`` (verdict, table, histograms, worst films).

Everything is inline (CSS, and the images as base64 PNG ``data:`` URIs), so the page opens
offline and can be mailed or archived as one file. From top to bottom: the verdict, the
per-class and per-group table of :attr:`~cxrexplain.AuditReport.summary` (with a row per value
of each ``by`` column), the counterfactual section (the swap test's flip rate and accuracies,
when it ran), the subgroup table (:attr:`~cxrexplain.AuditReport.subgroups`) and the encoding
probe (:attr:`~cxrexplain.AuditReport.encoding`) when the audit had ``by``, histograms of the
lung and border shares, and a gallery of the films with the lowest lung share (the map over
the film, the lung outline in white and the map's peak as a magenta cross).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from cxrexplain.auditing.html import write_html
    >>> from cxrexplain.auditing.gallery import GalleryItem
    >>> from cxrexplain.auditing.report import AuditReport, AuditRule
    >>> lungs = np.zeros((32, 32), bool); lungs[8:28, 4:14] = lungs[8:28, 18:28] = True
    >>> heat = np.zeros((32, 32), np.float32); heat[1:4, 1:4] = 1.0  # a corner marker
    >>> rep = AuditReport.from_measures(
    ...     lung_share=np.array([0.1, 0.2, 0.9]), border_share=np.array([0.8, 0.7, 0.0]),
    ...     peak_in_lungs=np.array([False, False, True]), peak=np.full((3, 2), 0.5),
    ...     targets=np.array([1, 1, 0]), probabilities=np.array([[.2, .8], [.1, .9], [.7, .3]]),
    ...     class_names=("NORMAL", "PNEUMONIA"), rule=AuditRule(min_images=2),
    ...     gallery=[GalleryItem(0, np.full((32, 32), 0.5, np.float32), heat, lungs)])
    >>> page = write_html(rep, Path(tempfile.mkdtemp()) / "audit", k=12)
    >>> page.name, "FLAGGED" in page.read_text()
    ('index.html', True)
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from cxrexplain._files import atomic_write_text
from cxrexplain._tables import format_number, html_table_rows
from cxrexplain._version import __version__
from cxrexplain.auditing.gallery import GalleryItem
from cxrexplain.auditing.probe import EncodingRow
from cxrexplain.auditing.subgroups import MIN_SUBGROUP_FILMS, SubgroupRow
from cxrexplain.drawing.pixels import draw_mask, overlay
from cxrexplain.lungs.geometry import BORDER_FRACTION
from cxrexplain.metrics.swap import SwapTest

__all__ = ["AuditPage", "write_html"]


class _Rule(Protocol):
    """What the page reads of an :class:`~cxrexplain.auditing.AuditRule`."""

    @property
    def min_lung_share(self) -> float: ...

    def swap_verdict(self, test: SwapTest) -> tuple[bool | None, str]: ...

    def as_dict(self) -> dict[str, Any]: ...

    def judged(self, class_names: Sequence[str]) -> list[str]: ...


class AuditPage(Protocol):
    """What the page reads of a report: an :class:`~cxrexplain.AuditReport` has all of it.

    A protocol, so that this module does not import :mod:`cxrexplain.auditing.report` (which
    imports this one for :meth:`~cxrexplain.AuditReport.to_html`).
    """

    @property
    def lung_share(self) -> np.ndarray: ...
    @property
    def border_share(self) -> np.ndarray: ...
    @property
    def targets(self) -> np.ndarray: ...
    @property
    def probabilities(self) -> np.ndarray: ...
    @property
    def class_names(self) -> tuple[str, ...]: ...
    @property
    def paths(self) -> list[str] | None: ...
    @property
    def groups(self) -> list[str] | None: ...
    @property
    def method(self) -> str: ...
    @property
    def layer(self) -> str: ...
    @property
    def lung_margin(self) -> float: ...
    @property
    def rule(self) -> _Rule: ...
    @property
    def summary(self) -> list[dict[str, Any]]: ...
    @property
    def flagged(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def gallery(self) -> list[GalleryItem]: ...
    @property
    def counterfactual(self) -> SwapTest | None: ...
    @property
    def subgroups(self) -> list[SubgroupRow] | None: ...
    @property
    def encoding(self) -> list[EncodingRow] | None: ...

    def __len__(self) -> int: ...

TILE_WIDTH = 256
"""Width in pixels of each gallery film (resized from the map's size)."""

_LUNG_COLOR = (255, 255, 255)
_PEAK_COLOR = (255, 0, 255)
_MARK = 7
"""Half the peak cross's size, in pixels."""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 1100px; margin: 1.5em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: 0.3em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.verdict { padding: 0.8em 1.1em; border-radius: 6px; color: #fff; }
.verdict strong { font-size: 1.6em; display: block; }
.flagged { background: #c62828; } .passed { background: #2e7d32; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; }
dt { color: #555; } dd { margin: 0; }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:nth-child(-n+2), th:nth-child(-n+2) { text-align: left; }
img { max-width: 100%; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; width: 256px; font-size: 0.85em; }
figcaption { word-break: break-all; } .note { color: #555; font-size: 0.92em; }
.swap { border-left: 6px solid; padding: 0.4em 0.9em; margin: 0.6em 0; }
.reads { border-color: #c62828; background: #fdecea; }
.keeps { border-color: #2e7d32; background: #edf7ed; }
.unjudged { border-color: #888; background: #f3f3f3; }
"""


def write_html(report: AuditPage, folder: Path, *, k: int) -> Path:
    """Write the report's page, ``folder/index.html`` (atomically; the folder is created).

    Args:
        report: The audit.
        folder: The output folder.
        k: Films in the gallery (the first ``k`` of ``report.gallery``, lowest lung share
            first).

    Returns:
        The path of ``index.html``.

    Example:
        >>> write_html(rep, Path("audit-report"), k=4)  # doctest: +SKIP
        PosixPath('audit-report/index.html')
    """
    title = f"cxrexplain audit: {'FLAGGED' if report.flagged else 'Not flagged'}"
    page = "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        "<h1>Where the evidence lies: audit against the lungs</h1>",
        _verdict(report), _table(report), _counterfactual(report), _subgroups(report),
        _encoding(report), _histograms(report),
        _gallery(report, k),
        f'<p class="note">Made by cxrexplain {html.escape(__version__)}.</p>',
        "</body></html>", ""])
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(folder / "index.html", page)


# ------------------------------------------------------------------------------- sections
def _verdict(report: AuditPage) -> str:
    state, css = ("FLAGGED", "flagged") if report.flagged else ("Not flagged", "passed")
    rule = ", ".join(f"{key} = {value}" for key, value in report.rule.as_dict().items())
    judged = ", ".join(report.rule.judged(report.class_names)) or "none"
    details = [("Explainer", f"{report.method} (layer {report.layer or 'n/a'})"),
               ("Films", str(len(report))), ("Rule", rule), ("Judged classes", judged),
               ("Lung margin", f"{report.lung_margin:.1%} of the image side"),
               ("Border band", f"1/{round(1 / BORDER_FRACTION)} of each side")]
    rows = "\n".join(f"<dt>{html.escape(key)}</dt><dd>{html.escape(value)}</dd>"
                     for key, value in details)
    return (f'<div class="verdict {css}"><strong>{state}</strong>{html.escape(report.reason)}'
            f"</div>\n<dl>{rows}</dl>\n<p>The <b>lung share</b> is the share of the "
            "explanation's mass inside the lung mask dilated by the margin; the <b>border "
            f"share</b> is its mass within 1/{round(1 / BORDER_FRACTION)} of each edge, where "
            "markers and text lie. A model that looks at the lungs has a high lung share and a "
            "low border share.</p>")


def _counterfactual(report: AuditPage) -> str:
    """The swap test: flip rate, accuracy before and after, the drop and its verdict."""
    title = "<h2>Counterfactual: the lungs on other films' surroundings</h2>"
    test = report.counterfactual
    if test is None:
        return (f'{title}\n<p class="note">The swap test did not run: it runs when the '
                "films' labels are known (or with <code>counterfactual=True</code>, "
                "<code>--counterfactual</code>).</p>")
    donors = "a film of another class" if test.labels is not None else "another film"
    judged, why = report.rule.swap_verdict(test)
    css = {True: "reads", False: "keeps", None: "unjudged"}[judged]

    def percent(value: float) -> str:
        return f"{100 * value:.0f}%"

    rows = [["Decisions flipped", _interval(test.flip_rate, percent)]]
    if test.accuracy is not None and test.swapped_accuracy is not None:
        rows += [["Accuracy on the films", _interval(test.accuracy, percent)],
                 ["Accuracy with swapped surroundings",
                  _interval(test.swapped_accuracy, percent)],
                 ["Accuracy drop", f"{100 * (test.accuracy_drop or 0.0):.0f} points"]]
    head, body = html_table_rows([f"swap test ({test.n} films)", "value [95% CI]"], rows)
    return (f"{title}\n<p>A <b>swap</b> keeps each film's lungs (grown by the margin) and "
            f"takes everything outside them from {donors}: markers, text, tubes and "
            "collimation change, the lungs do not. A model that reads the lungs keeps its "
            f'decisions.</p>\n<div class="swap {css}">{html.escape(why)}</div>\n'
            f"<table>\n{head}\n{body}\n</table>")


def _interval(value: tuple[float, float, float], show: Callable[[float], str]) -> str:
    mean, low, high = value
    return f"{show(mean)} [{show(low)}, {show(high)}]"


def _table(report: AuditPage) -> str:
    header = ["by", "name", "count", "lung share mean [95% CI]", "lung share q1 / median / q3",
              "border share mean [95% CI]", "border share q1 / median / q3",
              "peaks outside lungs [95% CI]", "mean probability"]
    rows = []
    for row in report.summary:
        cells = [str(row["by"]), str(row["name"]), str(row["count"])]
        for label in ("lung_share", "border_share"):
            cells.append(_with_interval(row, label, lambda v: format_number(v, 2)))
            cells.append(" / ".join(format_number(row[f"{label}_{s}"], 2)
                                    for s in ("q1", "median", "q3")))
        cells.append(_with_interval(row, "peaks_outside_lungs", lambda v: f"{v:.0%}"))
        cells.append(format_number(row["probability_mean"], 2))
        rows.append(cells)
    head, body = html_table_rows(header, rows)
    return ("<h2>By class, group and subgroup</h2>\n"
            f"<table>\n{head}\n{body}\n</table>\n<p>[low, high]: "
            "95% percentile-bootstrap interval of the mean over the films (1000 resamples)."
            "</p>")


def _subgroups(report: AuditPage) -> str:
    """Accuracy, macro AUC and sensitivity per subgroup, with intervals and gaps."""
    rows_in = report.subgroups
    if not rows_in:
        return ""
    classes = list(rows_in[0].sensitivity)
    header = (["by", "value", "films", "accuracy [95% CI]", "gap to all",
               "macro AUC [95% CI]", "gap to all"]
              + [f"sensitivity {c} [95% CI]" for c in classes])

    def figure(value: tuple[float, float, float]) -> str:
        return _triple(value, lambda v: format_number(v, 2))

    def gap(value: tuple[float, float, float], films: int) -> str:
        text = _triple(value, lambda v: f"{v:+.2f}")
        clear = (value[1] > 0 or value[2] < 0) and films >= MIN_SUBGROUP_FILMS
        return f"{text} *" if clear else text

    rows = []
    for row in rows_in:
        whole = row.by == "all"
        cells = [row.by, row.value, str(row.n), figure(row.accuracy),
                 "" if whole else gap(row.accuracy_gap, row.n), figure(row.macro_auc),
                 "" if whole else gap(row.macro_auc_gap, row.n)]
        cells += [figure(row.sensitivity[c]) for c in classes]
        rows.append(cells)
    head, body = html_table_rows(header, rows)
    return ("<h2>Subgroups: performance by metadata</h2>\n<p>How well the model does on the "
            "films of each value of each metadata column. The <b>gap</b> is the subgroup's "
            "figure minus the whole set's, with a paired bootstrap interval (the whole set "
            "resampled, each resample's subgroup against that resample); <b>*</b> marks a gap "
            f"whose interval excludes 0, in a subgroup of {MIN_SUBGROUP_FILMS} films or more. "
            "The macro AUC averages one-vs-rest AUCs over the classes present in the "
            "subgroup.</p>\n"
            f"<table>\n{head}\n{body}\n</table>\n<p class=\"note\">[low, high]: 95% "
            "percentile-bootstrap interval over the subgroup's films (1000 resamples); n/a: "
            "a class absent from the subgroup. A subgroup of few films has intervals too "
            "narrow to trust (four films all right give [1.00, 1.00]), so its gaps are not "
            "starred.</p>")


def _encoding(report: AuditPage) -> str:
    """The encoding probe: AUC of each attribute from each feature set."""
    rows_in = report.encoding
    if not rows_in:
        return ""
    sets = list(dict.fromkeys(row.features for row in rows_in))
    titles = {"model": "trained model", "untrained": "untrained copy",
              "pixels": "pixel statistics"}
    header = (["attribute", "values", "films", "folds"]
              + [f"AUC: {titles.get(name, name)} [95% CI]" for name in sets])
    rows = []
    for attribute in dict.fromkeys(row.attribute for row in rows_in):
        mine = {row.features: row for row in rows_in if row.attribute == attribute}
        first = next(iter(mine.values()))
        folds = f"{first.folds}{' by patient' if first.grouped else ''}"
        cells = [attribute, ", ".join(first.values), str(first.n), folds]
        cells += [_triple(mine[name].auc, lambda v: format_number(v, 2)) if name in mine
                  else "n/a" for name in sets]
        rows.append(cells)
    head, body = html_table_rows(header, rows)
    return ("<h2>What the model encodes besides the disease</h2>\n<p>A cross-validated "
            "linear probe (L2 logistic regression on standardised features) reads each "
            "attribute from the model's penultimate features (the pooled vector before the "
            "head), from an <b>untrained copy</b> of the model (what the architecture alone "
            "gives) and from the films' <b>pixel statistics</b> (brightness, contrast, "
            "histogram). AUC 0.5 is chance; a trained model well above both baselines has "
            "learnt the attribute, and can use it as a shortcut where the attribute goes "
            "with the label.</p>\n"
            f"<table>\n{head}\n{body}\n</table>\n<p class=\"note\">Held-out AUC (macro one "
            "value against the rest for more than two values) with a 95% bootstrap interval "
            "over the films; n/a: fewer than two values with enough films.</p>")


def _triple(value: tuple[float, float, float], show: Callable[[float], str]) -> str:
    """``mean [low, high]``, ``mean`` without an interval, ``n/a`` without a value."""
    mean, low, high = value
    if np.isnan(mean):
        return "n/a"
    if np.isnan(low) or np.isnan(high):
        return show(mean)
    return f"{show(mean)} [{show(low)}, {show(high)}]"


def _with_interval(row: dict[str, Any], label: str, show: Callable[[float], str]) -> str:
    """``mean [low, high]`` of a summary figure (``n/a`` when it has no value)."""
    mean = row.get(label, row.get(f"{label}_mean"))
    if mean is None or np.isnan(mean):
        return "n/a"
    low, high = row.get(f"{label}_low", np.nan), row.get(f"{label}_high", np.nan)
    if np.isnan(low) or np.isnan(high):
        return show(mean)
    return f"{show(mean)} [{show(low)}, {show(high)}]"


def _histograms(report: AuditPage) -> str:
    figure = Figure(figsize=(10, 3.2), layout="constrained")
    bins = np.linspace(0.0, 1.0, 21)
    drawn = False
    for axes, values, name in zip(figure.subplots(1, 2),
                                  (report.lung_share, report.border_share),
                                  ("Lung share", "Border share"), strict=True):
        for c, class_name in enumerate(report.class_names):
            chosen = values[(report.targets == c) & ~np.isnan(values)]
            if len(chosen):
                axes.hist(chosen, bins=bins, alpha=0.5, label=f"{class_name} ({len(chosen)})")
                drawn = True
        if name == "Lung share":
            axes.axvline(report.rule.min_lung_share, color="k", linestyle="--", linewidth=1,
                         label="rule")
        axes.set(title=name, xlabel="share of the map's mass", ylabel="films", xlim=(0, 1))
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
    if not drawn:
        return "<h2>Distributions</h2>\n<p>No map has any mass: nothing to plot.</p>"
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return (f"<h2>Distributions</h2>\n<img alt=\"histograms of the lung and border shares\" "
            f'src="{_data_uri(buffer.getvalue())}">')


def _gallery(report: AuditPage, k: int) -> str:
    items = report.gallery[:k]
    if not items:
        return "<h2>Lowest lung share</h2>\n<p>The gallery is empty: no film was kept.</p>"
    tiles = "\n".join(_tile(report, item) for item in items)
    return (f"<h2>Lowest lung share ({len(items)} films)</h2>\n<p class=\"note\">The map over "
            "the film; the lung outline in white; the map's peak as a magenta cross.</p>\n"
            f'<div class="gallery">\n{tiles}\n</div>')


def _tile(report: AuditPage, item: GalleryItem) -> str:
    i = item.index
    path = report.paths[i] if report.paths is not None else f"#{i}"
    target = int(report.targets[i])
    lines = [f"<b>{html.escape(Path(path).name or path)}</b>",
             f"{html.escape(report.class_names[target])}, p = "
             f"{format_number(report.probabilities[i, target], 2)}",
             f"lung share {format_number(report.lung_share[i], 2)}, border share "
             f"{format_number(report.border_share[i], 2)}"]
    if report.groups is not None:
        lines.append(f"group {html.escape(report.groups[i])}")
    return (f'<figure title="{html.escape(path)}"><img alt="{html.escape(path)}" '
            f'src="{_data_uri(_png(_picture(item)))}"><figcaption>{"<br>".join(lines)}'
            "</figcaption></figure>")


# ------------------------------------------------------------------------------- pixels
def _picture(item: GalleryItem) -> npt.NDArray[np.uint8]:
    """The map over the film at :data:`TILE_WIDTH`, with the lung outline and the peak."""
    height, width = item.heatmap.shape
    size = (TILE_WIDTH, max(1, round(height * TILE_WIDTH / width)))
    shaded = overlay(np.clip(item.image, 0.0, 1.0), item.heatmap, alpha=0.4)
    shrink = width > TILE_WIDTH
    rgb = cv2.resize(shaded, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    lungs = cv2.resize(item.lungs.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    out = draw_mask(rgb, lungs.astype(bool), color=_LUNG_COLOR, alpha=0.0)
    row, col = np.unravel_index(int(np.argmax(item.heatmap)), item.heatmap.shape)
    # a peak at the very edge (a marker's corner) keeps its cross whole, just inside
    x = min(max(int((col + 0.5) * size[0] / width), _MARK), size[0] - 1 - _MARK)
    y = min(max(int((row + 0.5) * size[1] / height), _MARK), size[1] - 1 - _MARK)
    cv2.drawMarker(out, (x, y), _PEAK_COLOR, cv2.MARKER_CROSS, 2 * _MARK, 2)
    return out


def _png(rgb: npt.NDArray[np.uint8]) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB image as PNG
        raise RuntimeError("OpenCV failed to encode a PNG")
    return bytes(encoded.tobytes())


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
