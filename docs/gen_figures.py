"""Build-time figures for the documentation site, rendered from synthetic phantoms only.

Used two ways:

* as an MkDocs hook (``mkdocs.yml``: ``hooks: [docs/gen_figures.py]``): ``on_files`` renders
  the figures (or takes them from the cache) and adds them to the site as generated files, so
  pages can link ``images/generated/*.png`` and ``mkdocs build --strict`` checks the links.
  Nothing is written into the repository.
* as a script: ``python docs/gen_figures.py OUT_DIR`` writes the figures into ``OUT_DIR``.

The figure: a small GAP -> Dense CNN trained for a few seconds on procedural chest X-ray
phantoms (:mod:`cxrexplain.synthetic`, no patient data), then every explainer on held-out
phantoms with the planted lesion outlined. Rendering runs in a subprocess on the CPU (about
15-30 s, TensorFlow's import included) and is cached under ``$CXREXPLAIN_DOCS_CACHE`` (default
``~/.cache/cxrexplain-docs``), keyed by this script and the package's sources, so rebuilds
and ``mkdocs serve`` reuse it until the code changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FIGURES = ("phantom_explanations.png",)
"""The files rendered, published under ``images/generated/``."""

SITE_FOLDER = "images/generated"
_ROOT = Path(__file__).resolve().parents[1]
_log = logging.getLogger("mkdocs.hooks.gen_figures")


# ------------------------------------------------------------------------------ MkDocs hook
def on_files(files: Any, config: Any) -> Any:
    """Add the rendered figures to the site's files (MkDocs >= 1.6 event)."""
    from mkdocs.structure.files import File

    folder = _rendered()
    for name in FIGURES:
        uri = f"{SITE_FOLDER}/{name}"
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, abs_src_path=str(folder / name)))
    return files


def _rendered() -> Path:
    """The cache folder holding the figures, rendering them first when missing."""
    cache = Path(os.environ.get("CXREXPLAIN_DOCS_CACHE",
                                Path.home() / ".cache" / "cxrexplain-docs")).expanduser()
    folder = cache / _fingerprint()
    if all((folder / name).is_file() for name in FIGURES):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
    _log.info("gen_figures: rendering %s from synthetic phantoms", ", ".join(FIGURES))
    started = time.perf_counter()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1",
               PYTHONHASHSEED="0", MPLBACKEND="Agg")
    try:
        result = subprocess.run([sys.executable, __file__, str(partial)], env=env,
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"docs/gen_figures.py failed (exit {result.returncode}):\n"
                f"{result.stderr[-4000:]}"
            )
        folder.mkdir(exist_ok=True)
        for name in FIGURES:  # atomic per file, so a concurrent build never sees half a PNG
            os.replace(partial / name, folder / name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    _log.info("gen_figures: done in %.0f s (cached in %s)", time.perf_counter() - started,
              folder)
    _prune(cache, keep=3)
    return folder


def _prune(cache: Path, *, keep: int) -> None:
    """Remove all but the ``keep`` most recent renderings from the cache."""
    renderings = sorted((p for p in cache.iterdir() if p.is_dir() and len(p.name) == 16
                         and all(c in "0123456789abcdef" for c in p.name)),
                        key=lambda p: p.stat().st_mtime, reverse=True)
    for old in renderings[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _fingerprint() -> str:
    """Hash of this script and the package's Python sources."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted((_ROOT / "cxrexplain").rglob("*.py")):
        digest.update(str(path.relative_to(_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------------ rendering
def render(out_dir: Path) -> list[Path]:
    """Train a tiny CAM model on phantoms, explain held-out phantoms, save the figure."""
    import keras
    import numpy as np

    import cxrexplain as cx

    keras.utils.set_random_seed(0)
    size, classes = 80, ("NORMAL", "PNEUMONIA")
    train = cx.synthetic.generate(400, size=size, classes=classes, seed=1)
    test = cx.synthetic.generate(24, size=size, classes=classes, seed=2)

    def block(filters: int) -> list[Any]:
        return [keras.layers.Conv2D(filters, 3, padding="same", use_bias=False),
                keras.layers.BatchNormalization(momentum=0.8), keras.layers.ReLU()]

    model = keras.Sequential([
        keras.Input((size, size, 1)),
        *block(16), keras.layers.MaxPooling2D(),
        *block(32), keras.layers.MaxPooling2D(),
        *block(64), keras.layers.MaxPooling2D(),
        *block(64),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(len(classes), activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train.images, train.labels, epochs=8, batch_size=32, verbose=0)

    clf = cx.Classifier(model, class_names=list(classes))
    probabilities = clf.predict_proba(test.images)
    sick = np.flatnonzero((test.labels == 1) & (probabilities[:, 1] >= 0.5))
    if len(sick) < 3:  # the model did not learn: show the first sick phantoms anyway
        sick = np.flatnonzero(test.labels == 1)
    shown = sick[:3]
    batch = test.images[shown]
    methods = [cx.CAM, cx.GradCAM, cx.GradCAMPlusPlus, cx.HiResCAM, cx.LayerCAM, cx.ScoreCAM]
    explanations = [method(clf).explain(batch, targets="PNEUMONIA") for method in methods]
    figure = cx.plot_explanations(batch, explanations, class_names=clf.class_names,
                                  masks=test.masks[shown], alpha=0.45)
    figure.set_size_inches(14, 6.2)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FIGURES[0]
    cx.save_figure(figure, path, dpi=72)
    return [path]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python docs/gen_figures.py OUT_DIR")
    for written in render(Path(sys.argv[1])):
        print(written)
