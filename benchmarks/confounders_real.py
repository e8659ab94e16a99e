"""Confounders on the real chest X-rays (issue 24): subgroups and what the model encodes.

The shared films (``../shared/data/cxr``) with their metadata (``cxr/metadata.csv``, read by
``cx.data.read_csv``) and the five plain three-class models of the issue-23 benchmark
(``guided_real.py``: ``plain_fold{0..4}.keras`` at 128 px, each with its test films in
``plain_fold{k}.json``), so that every film is judged by the model that did not train on it.

1. Per fold: ``cx.audit(clf, recs.subset(test films), lungs=segmenter, by=[view, sex, age])``
   (Grad-CAM, no swap test, no probe: its probabilities and lung shares), and the probe's
   three feature sets of the test films (the model's penultimate features, an untrained copy's
   (seed 0), pixel statistics); fold 0's model also on all 886 films.
2. Pooled over the five test folds: the subgroup table (:func:`cxrexplain.auditing.
   subgroup_table`: view, sex, age band) and the lung share by subgroup and class.
3. The encoding probe (:func:`cxrexplain.auditing.encoding_probe`, 5 folds grouped by patient,
   L2 = 1): (a) fold 0's model on all 886 films, for view, sex, age band and, as a reference,
   the label; (b) the same within each class (the view goes with the label: 68% of NORMAL
   films are AP, 57% of PNEUMONIA films PA, so a probe that reads the disease reads the view
   too; within a class it cannot); (c) each fold's model on its own 177 test films, the mean
   and range of the five AUCs.

Writes under ``benchmarks/out/confounders/`` (``fold{k}.npz``, ``all_fold0.npz`` are kept,
so a rerun only recomputes the tables) and prints the Markdown tables (also in
``tables.md``).

    python benchmarks/confounders_real.py              # about 5 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "out" / "confounders"
MAIN_OUT = ROOT.parent / "main" / "benchmarks" / "out"
BY = ("view", "sex", "age")


def _default(relative: str) -> Path:
    """``benchmarks/out/<relative>`` of this checkout, else of the main checkout."""
    mine = ROOT / "benchmarks" / "out" / relative
    return mine if mine.exists() else MAIN_OUT / relative


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=_default("guided_real/three_class"))
    parser.add_argument("--recipe", default="plain")
    parser.add_argument("--lungs", type=Path, default=_default("segmenter_306.keras"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import cxrexplain as cx

    OUT.mkdir(parents=True, exist_ok=True)
    recs = cx.data.read_csv(DATA / "cxr" / "metadata.csv", labels="label")
    index = {os.path.relpath(p, DATA / "cxr"): i for i, p in enumerate(recs.paths)}
    folds = [_fold(cx, recs, index, args, k) for k in range(args.folds)]
    everything = _all_films(cx, recs, args)
    tables = _tables(cx, recs, folds, everything, args)
    (OUT / "tables.md").write_text(tables)
    print(tables)
    return 0


def _fold(cx: Any, recs: Any, index: dict[str, int], args: argparse.Namespace, k: int
          ) -> dict[str, np.ndarray]:
    """Fold k's test films: their rows, labels, probabilities, lung shares, feature sets."""
    path = OUT / f"fold{k}.npz"
    if path.is_file():
        return dict(np.load(path))
    from cxrexplain.auditing.features import FeatureSets, collect_features

    info = json.loads((args.models / f"{args.recipe}_fold{k}.json").read_text())
    rows = np.array([index[f] for f in info["films"]], np.int64)
    sub = recs.subset(rows)
    clf = cx.Classifier.load(args.models / f"{args.recipe}_fold{k}.keras")
    start = time.perf_counter()
    rep = cx.audit(clf, sub, lungs=cx.lungs.LungSegmenter.load(args.lungs), by=list(BY),
                   counterfactual=False, encoding=False)
    audit_seconds = time.perf_counter() - start
    labels = np.array([clf.class_names.index(n) for n in _label_names(sub)], np.int64)
    if not np.array_equal(labels, np.array(info["labels"])):
        raise SystemExit(f"fold {k}: the metadata's labels differ from the benchmark's")
    drift = float(np.abs(rep.probabilities - np.array(info["probabilities"])).max())
    features = collect_features(FeatureSets.of(clf, args.seed), clf, list(sub.paths))
    result = {"rows": rows, "labels": labels, "probabilities": rep.probabilities,
              "lung_share": rep.lung_share, "targets": rep.targets,
              "audit_seconds": np.array(audit_seconds), "drift": np.array(drift),
              **{f"features_{name}": value for name, value in features.items()}}
    np.savez(path, **result)
    print(f"fold {k}: {len(rows)} films, audit {audit_seconds:.0f} s, probabilities within "
          f"{drift:.1e} of the benchmark's", flush=True)
    return result


def _all_films(cx: Any, recs: Any, args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Fold 0's model's feature sets of all the films."""
    path = OUT / "all_fold0.npz"
    if path.is_file():
        return dict(np.load(path))
    from cxrexplain.auditing.features import FeatureSets, collect_features

    clf = cx.Classifier.load(args.models / f"{args.recipe}_fold0.keras")
    features = collect_features(FeatureSets.of(clf, args.seed), clf, list(recs.paths))
    result = {f"features_{name}": value for name, value in features.items()}
    np.savez(path, **result)
    return result


def _label_names(recs: Any) -> list[str]:
    return [recs.class_names[i] for i in np.argmax(np.nan_to_num(recs.targets), axis=1)]


def _attributes(recs: Any, with_label: bool = False) -> dict[str, list[str | None]]:
    from cxrexplain.auditing.attributes import film_attributes

    found = film_attributes(recs, BY, len(recs))
    if with_label:
        found["label"] = list(_label_names(recs))
    return found


# ------------------------------------------------------------------------------- tables
def _tables(cx: Any, recs: Any, folds: list[dict[str, np.ndarray]],
            everything: dict[str, np.ndarray], args: argparse.Namespace) -> str:
    from cxrexplain._tables import markdown_table
    from cxrexplain.auditing import encoding_probe, subgroup_table

    rows = np.concatenate([f["rows"] for f in folds])
    pooled = recs.subset(rows)
    labels = np.concatenate([f["labels"] for f in folds])
    probabilities = np.concatenate([f["probabilities"] for f in folds])
    lung = np.concatenate([f["lung_share"] for f in folds])
    names = recs.class_names
    attributes = _attributes(pooled)
    seconds = sum(float(f["audit_seconds"]) for f in folds)
    parts = [f"Pooled test folds: {len(rows)} films, each judged by the plain model of the "
             f"fold that held it out (128 px; audit {seconds:.0f} s "
             "on this machine; probabilities within "
             f"{max(float(f['drift']) for f in folds):.0e} of the issue-23 benchmark's).", ""]

    table = subgroup_table(labels, probabilities, attributes, class_names=names,
                           seed=args.seed)
    header = ["by", "value", "films", "accuracy [95% CI]", "gap to all", "macro AUC [95% CI]",
              "gap to all", *[f"sensitivity {n}" for n in names]]
    lines = []
    for r in table:
        whole = r.by == "all"
        lines.append([r.by, r.value, str(r.n), _ci(r.accuracy),
                      "" if whole else _gap(r.accuracy_gap), _ci(r.macro_auc),
                      "" if whole else _gap(r.macro_auc_gap),
                      *[_ci(r.sensitivity[n]) for n in names]])
    parts += ["**Subgroup performance** (`subgroup_table`; * a gap whose 95% interval "
              "excludes 0):", "", markdown_table(header, lines, numeric=[False, False]
                                                  + [True] * (len(header) - 2)), ""]

    mix = []
    for column in ("view", "sex"):
        for value in sorted({v for v in attributes[column] if v is not None}):
            member = np.array([v == value for v in attributes[column]])
            counts = [int((member & (labels == c)).sum()) for c in range(len(names))]
            mix.append([column, value, *[f"{n} ({n / max(1, member.sum()):.0%})"
                                         for n in counts]])
    parts += ["Class mix of each subgroup (films):", "",
              markdown_table(["by", "value", *names], mix, numeric=[False, False, True,
                                                                    True, True]), ""]

    lung_rows = []
    for column in ("view", "sex"):
        for value in sorted({v for v in attributes[column] if v is not None}):
            member = np.array([v == value for v in attributes[column]])
            cells = [column, value, _ci(cx.metrics.bootstrap_ci(lung[member]))]
            for c in range(len(names)):
                chosen = member & (labels == c)
                cells.append(_ci(cx.metrics.bootstrap_ci(lung[chosen])) if chosen.sum() >= 5
                             else "n/a")
            lung_rows.append(cells)
    parts += ["**Where the evidence lies by subgroup**: mean Grad-CAM lung share (lungs of "
              "`segmenter_306.keras`, 3% margin) [95% CI], all films and by true class:", "",
              markdown_table(["by", "value", "all", *names], lung_rows,
                             numeric=[False, False, True, True, True, True]), ""]

    # (a) fold 0's model on all films
    feats = {n: everything[f"features_{n}"] for n in ("model", "untrained", "pixels")}
    patients = [p or None for p in recs.patient.tolist()]
    probe = encoding_probe(feats, _attributes(recs, with_label=True), patients=patients,
                           seed=args.seed)
    parts += ["**Encoding probe**, fold 0's model on all 886 films (5-fold linear probe "
              "grouped by patient; held-out AUC [95% CI]; `label` is the disease, for "
              "reference):", "", _probe_table(probe), ""]

    # (b) within each class
    within = []
    all_names = _label_names(recs)
    for c in names:
        member = np.array([n == c for n in all_names])
        sub = recs.subset(np.flatnonzero(member))
        found = encoding_probe({n: v[member] for n, v in feats.items()},
                               {k: v for k, v in _attributes(sub).items() if k != "age"},
                               patients=[p for p, m in zip(patients, member, strict=True)
                                         if m], seed=args.seed)
        within += [type(r)(f"{r.attribute} within {c}", r.features, r.n, r.values, r.folds,
                           r.grouped, r.auc) for r in found]
    parts += ["Within each class (the view and the sex among films of one class only, so "
              "the disease cannot carry them):", "", _probe_table(within), ""]

    # (c) each fold's model on its own test films
    per_fold: dict[tuple[str, str], list[float]] = {}
    for fold in folds:
        sub = recs.subset(fold["rows"])
        found = encoding_probe({n: fold[f"features_{n}"] for n in ("model", "untrained",
                                                                     "pixels")},
                               _attributes(sub, with_label=True),
                               patients=[p or None for p in sub.patient.tolist()],
                               seed=args.seed, n_resamples=10)
        for r in found:
            per_fold.setdefault((r.attribute, r.features), []).append(r.auc.mean)
    fold_rows = []
    for attribute in ("view", "sex", "age", "label"):
        cells = [attribute]
        for name in ("model", "untrained", "pixels"):
            aucs = np.array(per_fold[attribute, name])
            cells.append(f"{np.nanmean(aucs):.2f} ({np.nanmin(aucs):.2f}-{np.nanmax(aucs):.2f})")
        fold_rows.append(cells)
    parts += ["Each fold's model on its own ~177 test films (mean AUC of the five folds, "
              "range):", "",
              markdown_table(["attribute", "trained model", "untrained copy",
                              "pixel statistics"], fold_rows), ""]
    return "\n".join(parts)


def _probe_table(rows: list[Any]) -> str:
    from cxrexplain._tables import markdown_table

    out = []
    for attribute in dict.fromkeys(r.attribute for r in rows):
        mine = {r.features: r for r in rows if r.attribute == attribute}
        first = mine["model"]
        out.append([attribute, ", ".join(first.values), str(first.n),
                    *[_ci(mine[n].auc) for n in ("model", "untrained", "pixels")]])
    return markdown_table(["attribute", "values", "films", "trained model", "untrained copy",
                           "pixel statistics"], out, numeric=[False, False, True, True, True,
                                                             True])


def _ci(value: Any) -> str:
    mean, low, high = value
    if np.isnan(mean):
        return "n/a"
    if np.isnan(low):
        return f"{mean:.2f}"
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def _gap(value: Any) -> str:
    mean, low, high = value
    if np.isnan(mean):
        return "n/a"
    star = " *" if low > 0 or high < 0 else ""
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]{star}"


if __name__ == "__main__":
    raise SystemExit(main())
