"""Atomic file writes (private): the one place that writes ``.partial`` then ``os.replace``.

A reader (or a run resumed after a crash) sees either the old file or the whole new one, never
half a file: the data goes to a hidden ``.NAME.partial`` file beside the target, which then
replaces the target in one ``os.replace`` (atomic on POSIX and Windows within one folder).

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_text(folder / "a.json", '{"ok": true}').read_text()
    '{"ok": true}'
    >>> sorted(p.name for p in folder.iterdir())
    ['a.json']
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "partial_path"]


def partial_path(path: Path) -> Path:
    """The hidden temporary file a write to ``path`` goes through (same folder and suffix).

    The suffix is kept (``.x.keras.partial.keras``) so writers that check it (Keras) accept it.

    Example:
        >>> partial_path(Path("out/model.keras")).as_posix()
        'out/.model.keras.partial.keras'
    """
    return path.with_name(f".{path.name}.partial{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    Parent folders are created. On an exception the temporary file is removed and ``path`` is
    left as it was.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "b.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    target = Path(os.fspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    try:
        yield partial
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    return _write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns the path."""
    return _write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(os.fspath(path))
