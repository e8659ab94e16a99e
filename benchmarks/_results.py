"""What the benchmark scripts share: the machine's description, their JSON-lines result files,
and writing their section of ``benchmarks/RESULTS.md`` without touching the other sections."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

SHARED_FILMS = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr"
"""The shared X-rays, one folder per class (read at run time, never copied)."""


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (or "unknown CPU")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine() -> str:
    """``"2 x <CPU model>, no GPU; Python 3.11.7, TensorFlow 2.21.0"`` (or the GPUs TensorFlow
    sees). Imports TensorFlow."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    gpu = f"GPU: {len(gpus)} x {gpus[0].device_type}" if gpus else "no GPU"
    details = [tf.config.experimental.get_device_details(g).get("device_name", "") for g in gpus]
    if any(details):
        gpu = "GPU: " + ", ".join(d for d in details if d)
    return (f"{os.cpu_count()} x {cpu_model()}, {gpu}; Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}")


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace the section that starts with the line ``heading`` (up to the next ``## ``
    heading) by ``text``, or append it; atomic (a partial file, then a rename)."""
    current = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmark results\n"
    lines = current.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        body = current.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        after = "\n".join(lines[end:])
        body = ("\n".join(lines[:start]).rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
                + ("\n" + after + "\n" if after else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(body, encoding="utf-8")
    os.replace(partial, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines result file, in order (none if it does not exist yet)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def publish(path: Path, heading: str, text: str) -> None:
    """Print a finished section, write it into ``path`` (see :func:`write_section`), say so."""
    print()
    print(text)
    write_section(path, heading, text)
    print(f"wrote the section to {path}")


def linked_films(folder: Path, count: int, *, per_folder: int = 1000) -> Path:
    """``folder`` holding ``count`` symbolic links to the shared films (each linked in turn,
    ``per_folder`` links per sub-folder); reused when it already holds ``count`` films."""
    import shutil

    if folder.is_dir() and sum(1 for _ in folder.rglob("*.png")) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    films = sorted(SHARED_FILMS.glob("*/*.png"))
    if not films:
        raise SystemExit(f"no films under {SHARED_FILMS}")
    for i in range(count):
        source = films[i % len(films)]
        link = (folder / f"part{i // per_folder:02d}"
                / f"{i:05d}_{source.parent.name}_{source.name}")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source.resolve())
    return folder


def untrained_cam_cnn(path: Path, size: int = 224) -> Path:
    """``path``: the three-class ``cam_cnn`` at ``size`` px with its seeded initial weights,
    saved as a classifier (speed does not depend on training); built once."""
    if not path.is_file():
        import keras

        import cxrexplain as cx

        keras.utils.set_random_seed(0)
        model = cx.models.build("cam_cnn", input_shape=(size, size, 1), num_classes=3)
        path.parent.mkdir(parents=True, exist_ok=True)
        cx.Classifier(model, class_names=["COVID", "NORMAL", "PNEUMONIA"]).save(path)
    return path
