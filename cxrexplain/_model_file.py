"""The classifier file (private): one ``.keras`` archive plus a ``cxrexplain.json`` entry.

:meth:`cxrexplain.Classifier.save` and :meth:`~cxrexplain.Classifier.load` call these. The file
is a normal Keras archive (``keras.models.load_model`` reads it) with one extra zip entry that
holds the classifier's metadata; it is written atomically (:mod:`cxrexplain._files`) and read
with Keras ``safe_mode`` on, so loading never runs code stored in the file.

Example:
    >>> import tempfile, pathlib, keras
    >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
    ...     keras.layers.Dense(2, activation="softmax")])
    >>> path = write_model_file(pathlib.Path(tempfile.mkdtemp()) / "m.keras", model,
    ...                         {"class_names": ["A", "B"]})
    >>> loaded, meta = read_model_file(path)
    >>> meta["class_names"], loaded.output_shape
    (['A', 'B'], (None, 2))
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from cxrexplain._checks import first_line
from cxrexplain._files import atomic_path
from cxrexplain.errors import InvalidInputError, ModelLoadError

__all__ = ["METADATA_ENTRY", "METADATA_FORMAT", "read_model_file", "write_model_file"]

METADATA_ENTRY = "cxrexplain.json"
"""The zip entry that holds the classifier's metadata."""

METADATA_FORMAT = 1
"""The version of the metadata layout."""


def write_model_file(path: str | os.PathLike[str], model: keras.Model,
                     metadata: Mapping[str, Any]) -> Path:
    """Save ``model`` and ``metadata`` in one ``.keras`` file, atomically.

    Raises:
        InvalidInputError: The path does not end in ``.keras``.
    """
    target = Path(os.fspath(path))
    if target.suffix != ".keras":
        raise InvalidInputError(f"path: expected a file name ending in .keras, got '{target}'")
    with atomic_path(target) as partial:
        model.save(partial)
        with zipfile.ZipFile(partial, mode="a") as archive:
            archive.writestr(METADATA_ENTRY, json.dumps(dict(metadata), indent=2))
    return target


def read_model_file(
    path: str | os.PathLike[str], *, custom_objects: Mapping[str, Any] | None = None
) -> tuple[keras.Model, dict[str, Any]]:
    """Load the model (safe_mode on) and its metadata (``{}`` for a plain Keras file).

    Raises:
        ModelLoadError: The file is missing, a folder, not a Keras model, or its metadata is
            corrupt.
    """
    source = Path(os.fspath(path))
    if not source.is_file():
        what = "is a folder" if source.is_dir() else "no such file"
        raise ModelLoadError(f"model file '{source}': {what}")
    if source.suffix.lower() == ".keras" and not zipfile.is_zipfile(source):
        raise ModelLoadError(
            f"model file '{source}': not a Keras model (a .keras file is a zip archive of "
            "the model's config and weights; this one is not a zip archive)"
        )
    _register_builtin_layers()
    try:
        model = keras.models.load_model(
            source, custom_objects=dict(custom_objects or {}), compile=False, safe_mode=True
        )
    except Exception as err:  # Keras raises many types for a bad file
        raise ModelLoadError(
            f"model file '{source}': not a loadable Keras model ({type(err).__name__}: "
            f"{first_line(err)})"
        ) from err
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"model file '{source}': holds no Keras model")
    return model, _read_metadata(source)


def _read_metadata(path: Path) -> dict[str, Any]:
    if not zipfile.is_zipfile(path):
        return {}
    with zipfile.ZipFile(path) as archive:
        if METADATA_ENTRY not in archive.namelist():
            return {}
        try:
            meta = json.loads(archive.read(METADATA_ENTRY).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise ModelLoadError(
                f"model file '{path}': its cxrexplain metadata is corrupt"
            ) from err
    if not isinstance(meta, dict):
        raise ModelLoadError(f"model file '{path}': its cxrexplain metadata is corrupt")
    return meta


def _register_builtin_layers() -> None:
    """Import the modules that register cxrexplain's custom Keras layers, if present."""
    if importlib.util.find_spec("cxrexplain.models") is not None:
        importlib.import_module("cxrexplain.models")
