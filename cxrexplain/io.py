"""Load chest X-rays from files, bytes or arrays as float32 images in [0, 1].

Every function in cxrexplain that takes images accepts what :func:`load_image` accepts:

* a path (``str`` or :class:`os.PathLike`) to a PNG, JPEG, BMP or TIFF file (8-bit or 16-bit;
  gray, RGB or RGBA, alpha dropped), or to a DICOM file (needs the ``dicom`` extra, which
  also installs the decoders for compressed files: JPEG baseline and lossless, JPEG-LS,
  JPEG 2000, RLE);
* the encoded bytes of such a file;
* a NumPy array ``(H, W)`` or ``(H, W, C)`` with C in 1, 3 or 4.

Pixel values are scaled to [0, 1] by their type: ``uint8`` by 255, ``uint16`` by 65535, other
integer arrays by 255 when they fit in 0..255 and by 65535 when they fit in 0..65535; float
arrays already in [0, 1] are kept, float arrays in [0, 255] (the common "forgot to rescale"
case) are divided by 255, and any other range is min-max scaled. Colour is converted to gray
with the ITU-R BT.601 weights; gray is repeated to three channels when ``channels=3``.
Resizing uses area interpolation when shrinking (bilinear when enlarging).

Example:
    >>> import numpy as np
    >>> import cxrexplain as cx
    >>> cx.load_image(np.zeros((300, 200), np.uint8), size=64).shape
    (64, 64, 1)
"""

from __future__ import annotations

import contextlib
import io as _io
import os
import re
import sys
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import cv2
import numpy as np
import numpy.typing as npt

from cxrexplain._arrays import as_masks, binary, resize_masks
from cxrexplain._checks import (
    as_numbers,
    check_channels,
    check_size,
    describe,
    first_line,
    one_line,
)
from cxrexplain.errors import (
    CxrExplainError,
    ImageLoadError,
    InvalidInputError,
    MissingDependencyError,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "MIN_IMAGE_SIZE",
    "ImageSource",
    "find_images",
    "load_image",
    "load_images",
]

ImageSource: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview | np.ndarray
"""What :func:`load_image` accepts: a path, encoded bytes, or an array."""

Size: TypeAlias = int | tuple[int, int] | None

MIN_IMAGE_SIZE = 8
"""Smallest accepted height or width, in pixels."""

_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom", ".dic"}
)
"""File suffixes :func:`find_images` collects from folders (lower case)."""


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------
def load_image(source: ImageSource, *, size: Size = None, channels: int = 1) -> np.ndarray:
    """Load one image as a float32 array in [0, 1] of shape ``(H, W, channels)``.

    Args:
        source: A path to an image file (PNG, JPEG, BMP, TIFF or DICOM), the file's bytes,
            or an ``(H, W)`` / ``(H, W, C)`` array (C = 1, 3 or 4; RGB order).
        size: Output size: an int for a square image or ``(height, width)``. ``None`` keeps
            the native size.
        channels: 1 for gray (the default) or 3 for RGB.

    Returns:
        A float32 array of shape ``(H, W, channels)`` with values in [0, 1].

    Raises:
        ImageLoadError: The file is missing, a folder, empty, not an image, or truncated.
        InvalidInputError: The array has NaN/inf, the wrong number of dimensions or channels,
            or the image is smaller than 8 pixels; or ``size``/``channels`` are invalid.
        MissingDependencyError: A DICOM file was given and pydicom is not installed.

    Example:
        >>> import numpy as np
        >>> from cxrexplain import load_image
        >>> img = load_image(np.full((32, 32, 3), 255, np.uint8), size=(16, 24))
        >>> img.shape, float(img.max())
        ((16, 24, 1), 1.0)
    """
    target = _check_size(size)
    check_channels(channels)
    name = _describe(source)
    if isinstance(source, np.ndarray):
        if source.ndim == 4:
            raise InvalidInputError(
                f"image: expected one image of shape (H, W) or (H, W, C), got a batch of shape "
                f"{source.shape}; use load_images() for batches"
            )
        return _finish(_to_unit_float(source, name), name, target, channels, minimum=1)
    pixels = _decode(_read_bytes(source, name), name)
    return _finish(pixels, name, target, channels, minimum=MIN_IMAGE_SIZE)


def load_images(
    sources: ImageSource | Iterable[ImageSource],
    *,
    size: Size = None,
    channels: int = 1,
) -> np.ndarray:
    """Load several images as one float32 batch ``(N, H, W, channels)`` in [0, 1].

    Args:
        sources: A sequence of anything :func:`load_image` accepts, a 4-D array
            ``(N, H, W, C)`` (returned converted, not copied image by image when already
            float32 in [0, 1] of the right size and channels), or a single source (a batch of
            one).
        size: Output size (int or ``(height, width)``). Required when the images differ in
            size.
        channels: 1 for gray (the default) or 3 for RGB.

    Returns:
        A float32 array of shape ``(N, H, W, channels)`` with values in [0, 1].

    Raises:
        ImageLoadError: One source cannot be read; the message names it and its position.
        InvalidInputError: The batch is empty, images differ in size and ``size`` is None,
            or one image is invalid (the message names it).

    Example:
        >>> import numpy as np
        >>> from cxrexplain import load_images
        >>> load_images([np.zeros((40, 40)), np.ones((50, 30, 3))], size=32).shape
        (2, 32, 32, 1)
    """
    target = _check_size(size)
    check_channels(channels)
    if isinstance(source_array := sources, np.ndarray):
        if source_array.ndim == 4:
            return _load_array_batch(source_array, target, channels)
        if source_array.ndim in (2, 3):
            return load_image(source_array, size=size, channels=channels)[None]
        raise InvalidInputError(
            f"images: expected an array of shape (N, H, W, C), (H, W, C) or (H, W), got shape "
            f"{source_array.shape}"
        )
    if isinstance(sources, (str, os.PathLike, bytes, bytearray, memoryview)):
        return load_image(sources, size=size, channels=channels)[None]
    if not isinstance(sources, Iterable):
        raise InvalidInputError(
            f"images: expected a path, bytes, an array or a list of them, got "
            f"{describe(sources)}"
        )
    items = list(sources)
    if not items:
        raise InvalidInputError("images: the batch is empty; give at least one image")
    images: list[np.ndarray] = []
    for position, item in enumerate(items):
        try:
            images.append(load_image(item, size=size, channels=channels))
        except (ImageLoadError, InvalidInputError) as err:
            raise type(err)(f"images[{position}]: {err}") from err
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        listed = ", ".join(str(s[:2]) for s in sorted(shapes)[:4])
        raise InvalidInputError(
            f"images: they differ in size ({listed}); pass size= to resize them to one size"
        )
    return np.stack(images).astype(np.float32, copy=False)


_ENCODED = (str, os.PathLike, bytes, bytearray, memoryview)
"""A file's path or its bytes (the sources that are decoded, not read as numbers)."""

MaskSource: TypeAlias = ImageSource
"""What :func:`load_mask` accepts: a mask file's path, its bytes, or an array."""


def load_mask(source: MaskSource, *, size: tuple[int, int] | None = None,
              name: str = "mask") -> np.ndarray:
    """One ``(H, W)`` bool mask from a file, its bytes or an array, by the one mask rule.

    A file is read at its stored type (an 8-bit PNG of 0/1 values stays 0/1, not 0..1/255),
    its colour channels reduced to their largest value (alpha dropped), and then, like an
    array, goes through the mask rule of :mod:`cxrexplain._arrays`: bool as it is, floats
    inside at >= 0.5, integers inside above half of the mask's largest value.

    Args:
        source: A path (PNG, JPEG, BMP, TIFF; DICOM as a [0, 1] image), encoded bytes, or an
            ``(H, W)`` / ``(H, W, 1)`` array.
        size: ``(height, width)`` to resize to with nearest neighbour; None keeps the size.
        name: The argument's name, for messages.

    Raises:
        ImageLoadError: The file cannot be read.
        InvalidInputError: An array that is not one 2-D mask of numbers.

    Example:
        >>> import numpy as np
        >>> load_mask(np.array([[0, 1], [1, 1]], np.uint8), size=(4, 4)).sum()
        np.int64(12)
    """
    if isinstance(source, _ENCODED):
        try:
            values = _decode_stored(_read_bytes(source, _describe(source)), _describe(source))
        except (ImageLoadError, InvalidInputError) as err:
            raise type(err)(f"{name}: {err}") from err
        if values.ndim == 3:
            values = values[:, :, :3].max(axis=2)
    else:
        is_bool = isinstance(source, np.ndarray) and source.dtype == bool and source.size > 0
        values = source if is_bool else as_numbers(source, name)
        if values.ndim == 3 and values.shape[2] == 1:
            values = values[:, :, 0]
        if values.ndim != 2:
            raise InvalidInputError(
                f"{name}: expected one mask of shape (H, W), got shape {np.shape(source)}"
            )
    mask = binary(values)
    return mask if size is None else resize_masks(mask[None], size)[0]


def load_masks(sources: Any, *, count: int | None = None,
               size: tuple[int, int] | None = None, name: str = "masks") -> list[np.ndarray]:
    """Masks, one ``(H, W)`` bool array each, from files, arrays or an ``(N, H, W)`` stack.

    Every mask goes through :func:`load_mask` (files at their stored type, the one mask rule
    of :mod:`cxrexplain._arrays`).

    Args:
        sources: An ``(N, H, W)`` or ``(N, H, W, 1)`` array, a list of mask files, bytes or
            2-D arrays (any mix), or one mask file.
        count: The number of masks expected (None: any).
        size: Resize every mask to ``(height, width)`` (nearest neighbour); None: each at its
            own size.
        name: The argument's name, for messages (``masks[3]`` for the fourth).

    Returns:
        A list of 2-D bool arrays, in order.

    Raises:
        ImageLoadError: A file cannot be read.
        InvalidInputError: No masks, a malformed one, or not ``count`` of them.

    Example:
        >>> import numpy as np
        >>> [m.shape for m in load_masks([np.eye(4), np.ones((2, 2))], size=(2, 2))]
        [(2, 2), (2, 2)]
    """
    if isinstance(sources, _ENCODED):
        sources = [sources]
    if isinstance(sources, np.ndarray):
        return list(as_masks(sources, count=count, size=size, name=name))
    if not isinstance(sources, Iterable):
        raise InvalidInputError(
            f"{name}: expected a list of mask files or arrays, or an (N, H, W) array, got "
            f"{describe(sources)}"
        )
    items = list(sources)
    if not items:
        raise InvalidInputError(f"{name}: no masks given")
    if not any(isinstance(item, _ENCODED) for item in items):  # numbers: one stack if they fit
        with contextlib.suppress(ValueError, TypeError):
            stacked = np.asarray(items)
            if stacked.dtype != object and stacked.ndim >= 2:
                return list(as_masks(stacked, count=count, size=size, name=name))
    if count is not None and len(items) != count:
        raise InvalidInputError(f"{name}: expected {count} masks, got {len(items)}")
    return [load_mask(item, size=size, name=f"{name}[{i}]") for i, item in enumerate(items)]


def find_images(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, recursive: bool = True
) -> list[Path]:
    """Expand files and folders into a sorted list of image files.

    Folders are searched (recursively by default) for files whose suffix is in
    :data:`IMAGE_SUFFIXES` (any case). Hidden files and folders are skipped: names starting
    with ``.`` (``.DS_Store``, ``._x.png``, unfinished ``.x.png.partial`` files) or ``__``
    (``__MACOSX``). Links to folders are followed (each real folder once, so a link loop
    ends). Paths are returned as given, joined with the names found, never resolved. Files
    given directly are kept whatever their name or suffix, in the order given.
    :func:`cxrexplain.data.list_images` walks class folders by the same rule.

    Args:
        paths: One path or several.
        recursive: Search sub-folders too.

    Returns:
        The image paths: given files first-come, each folder's images sorted.

    Raises:
        ImageLoadError: A path does not exist, or a folder holds no images.
        InvalidInputError: ``paths`` is not a path or a list of paths.

    Example:
        >>> find_images("cxr/COVID")[:2]
        [PosixPath('cxr/COVID/00.png'), PosixPath('cxr/COVID/03.png')]
        >>> len(find_images("cxr")), len(find_images(["a.png", "cxr/NORMAL"]))
        (15, 6)
    """
    given: Any = paths  # checked here, whatever the annotation says
    if isinstance(given, (str, os.PathLike)) or not isinstance(given, Iterable) or isinstance(
        given, (bytes, bytearray)
    ):
        items: list[Any] = [given]
    else:
        items = list(given)
    for position, item in enumerate(items):  # every argument before any file
        if not isinstance(item, (str, os.PathLike)):
            where = "paths" if len(items) == 1 else f"paths[{position}]"
            raise InvalidInputError(
                f"{where}: expected a file or folder path, got {describe(item)}"
            )
    found: list[Path] = []
    for item in items:
        path = Path(os.fspath(item))
        if path.is_dir():
            images = _walk_images(path, recursive=recursive)
            if not images:
                raise ImageLoadError(
                    f"folder '{path}': holds no images "
                    f"({', '.join(sorted(IMAGE_SUFFIXES))}; hidden names are skipped)"
                )
            found.extend(images)
        elif path.is_file():
            found.append(path)
        else:
            raise ImageLoadError(f"image '{path}': no such file or folder")
    return found


def _is_hidden(name: str) -> bool:
    """Whether a file or folder name is hidden from the folder walks (``.x``, ``__x``)."""
    return name.startswith((".", "__"))


def _walk_images(folder: Path, *, recursive: bool = True,
                 limit: int | None = None) -> list[Path]:
    """The image files in ``folder``: the package's one folder walk (see :func:`find_images`).

    Args:
        folder: The folder to search; a missing folder (or a file) gives ``[]``.
        recursive: Search sub-folders too.
        limit: Stop after this many images (the result is then not sorted).

    Returns:
        The images, sorted, each ``folder / relative path`` (links kept, not resolved).
    """
    if not folder.is_dir():
        return []
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for directory, subdirs, names in os.walk(folder, followlinks=True):
        try:
            status = os.stat(directory)
        except OSError:  # vanished or unreadable meanwhile
            subdirs[:] = []
            continue
        if (status.st_dev, status.st_ino) in seen:  # reached again through a link
            subdirs[:] = []
            continue
        seen.add((status.st_dev, status.st_ino))
        subdirs[:] = sorted(d for d in subdirs if not _is_hidden(d))
        for name in sorted(names):
            if _is_hidden(name) or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(directory) / name
            if not path.is_file():  # a broken link, a socket
                continue
            found.append(path)
            if limit is not None and len(found) >= limit:
                return found
        if not recursive:
            break
    return sorted(found)


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------
def _check_size(size: Size) -> tuple[int, int] | None:
    return None if size is None else check_size(size, "size")


def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"'{os.fspath(source)}'"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    return f"<{type(source).__name__}>"


# --------------------------------------------------------------------------------------------
# reading and decoding
# --------------------------------------------------------------------------------------------
def _read_bytes(source: object, name: str) -> tuple[bytes, str]:
    """Return the encoded bytes and a lower-case file suffix ('' for raw bytes)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageLoadError(f"image {name}: the byte string is empty")
        return data, ""
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidInputError(
            f"image: expected a path, bytes or a NumPy array, got {type(source).__name__}"
        )
    path = Path(os.fspath(source))
    if not path.exists():
        raise ImageLoadError(f"image {name}: no such file")
    if path.is_dir():
        raise ImageLoadError(f"image {name}: is a folder, not an image file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageLoadError(f"image {name}: cannot be read ({err.strerror or err})") from err
    if not data:
        raise ImageLoadError(f"image {name}: the file is empty (0 bytes)")
    return data, path.suffix.lower()


def _decode(encoded: tuple[bytes, str], name: str) -> np.ndarray:
    """The decoded file as float32 in [0, 1] (see the module docstring)."""
    return _to_unit_float(_decode_stored(encoded, name), name)


def _decode_stored(encoded: tuple[bytes, str], name: str) -> np.ndarray:
    """The decoded file at its stored type (RGB order); DICOM as float32 in [0, 1]."""
    data, suffix = encoded
    if _is_dicom(data, suffix):
        return _decode_dicom(data, name)
    _check_complete(data, name)
    buffer = np.frombuffer(data, dtype=np.uint8)
    # JPEG has no alpha: decode it keeping gray as gray and applying the EXIF orientation, so
    # the image is the one a viewer shows (photographed films are often stored rotated)
    jpeg_flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
    flags = jpeg_flags if _is_jpeg(data) else cv2.IMREAD_UNCHANGED
    try:
        with _quiet_codecs():
            decoded = cv2.imdecode(buffer, flags)
    except cv2.error as err:  # a decoder that raises rather than returning None
        raise ImageLoadError(
            f"image {name}: not a readable {_format_of(data)} (OpenCV: {first_line(err)})"
        ) from err
    if decoded is None or decoded.size == 0:
        kind = _format_of(data)
        if kind == "image":
            raise ImageLoadError(
                f"image {name}: not a readable image (expected PNG, JPEG, BMP, TIFF or DICOM)"
            )
        raise ImageLoadError(f"image {name}: the {kind} data is corrupt (it cannot be decoded)")
    if decoded.ndim == 3:
        if decoded.shape[2] == 3:
            decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
        elif decoded.shape[2] == 4:
            decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    stored: np.ndarray = decoded
    return stored


def _is_dicom(data: bytes, suffix: str) -> bool:
    return data[128:132] == b"DICM" or suffix in _DICOM_SUFFIXES


def _is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def _format_of(data: bytes) -> str:
    """The format named by a file's first bytes ("PNG", "JPEG", ...), or "image"."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    return "image"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAGIC = (
    (_PNG_SIGNATURE, "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _check_complete(data: bytes, name: str) -> None:
    """Reject truncated JPEG and PNG files (OpenCV would decode them half grey) and PNG files
    whose critical chunks are damaged, before a decoder sees (and prints about) them."""
    if _is_jpeg(data):
        start = _jpeg_scan_start(data)
        if start is None or data.find(b"\xff\xd9", start) < 0:
            raise ImageLoadError(f"image {name}: the JPEG data is truncated (no end marker)")
    elif data.startswith(_PNG_SIGNATURE):
        problem = _png_problem(data)
        if problem:
            raise ImageLoadError(f"image {name}: {problem}")


def _png_problem(data: bytes) -> str | None:
    """What is wrong with a PNG file's chunk structure, or None.

    Walks the chunks (length, type, data, CRC) up to ``IEND``: the first must be a 13-byte
    ``IHDR`` with a non-zero size and a valid bit depth / colour type; a chunk running past
    the end means a truncated file; a critical chunk (``IHDR``, ``PLTE``, ``IDAT``,
    ``IEND``: upper-case first letter) whose CRC does not match means a damaged file.
    Damaged ancillary chunks (text, colour profiles) are left to the decoder, which skips
    them, as libpng does.
    """
    pos, first, has_data = len(_PNG_SIGNATURE), True, False
    while True:
        if pos + 12 > len(data):
            return "the PNG data is truncated (no IEND chunk)"
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if first and (kind != b"IHDR" or length != 13):
            return "the PNG data is corrupt (it does not start with an IHDR chunk)"
        if length > 0x7FFFFFFF or end > len(data):
            return f"the PNG data is truncated (cut off in its {_chunk_name(kind)} chunk)"
        body = data[pos + 8 : end - 4]
        critical = kind[:1].isupper()
        if critical and zlib.crc32(kind + body) != int.from_bytes(data[end - 4 : end], "big"):
            return (f"the PNG data is corrupt (the {_chunk_name(kind)} chunk fails its CRC "
                    "check)")
        if first:
            problem = _ihdr_problem(body)
            if problem:
                return f"the PNG data is corrupt (IHDR: {problem})"
            first = False
        has_data = has_data or kind == b"IDAT"
        if kind == b"IEND":
            return None if has_data else "the PNG data is corrupt (no IDAT image data)"
        pos = end


_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def _ihdr_problem(body: bytes) -> str | None:
    width, height = int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big")
    depth, colour, compression, filtering, interlace = body[8:13]
    if not (0 < width <= 0x7FFFFFFF and 0 < height <= 0x7FFFFFFF):
        return f"size {width}x{height}"
    if depth not in _PNG_DEPTHS.get(colour, ()):
        return f"bit depth {depth} with colour type {colour}"
    if compression or filtering or interlace > 1:
        return "unknown compression, filter or interlace method"
    return None


def _chunk_name(kind: bytes) -> str:
    text = kind.decode("latin-1")
    return text if text.isalpha() else repr(kind)


# the lines OpenCV's image decoders write to stderr by themselves: OpenCV's log
# ("[ERROR:0@3.1] global loadsave.cpp ..."), libpng ("libpng error: IHDR: CRC error") and
# libjpeg ("Corrupt JPEG data: ..."), which print with fprintf and ignore OpenCV's log level
_CODEC_NOISE = re.compile(
    rb"^(\[ *(?:FATAL|ERROR|WARN|INFO|DEBUG|VERBOSE)[:\]]|libpng (?:error|warning)|"
    rb"Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|"
    rb"Inconsistent progression sequence|Warning: unknown JFIF|Unknown Adobe color transform|"
    rb"Application transferred too many scanlines)"
)
_quiet_lock = threading.Lock()
_quiet_users = 0
_quiet_saved: tuple[int, Any, int] | None = None  # (stderr copy, capture file, cv2 log level)
_capture: tuple[int, Any] | None = None  # (process id, temporary file), reused: opening costs


@contextlib.contextmanager
def _quiet_codecs() -> Iterator[None]:
    """Keep the image decoders' own messages off the terminal while decoding.

    libpng and libjpeg print straight to file descriptor 2, beyond OpenCV's log level, so
    descriptor 2 is pointed at a temporary file while any thread decodes (one redirection
    shared by overlapping decodes, counted under a lock, so tf.data's parallel decoding stays
    parallel) and OpenCV's log level is set to silent. When the last decode ends, both are
    put back and whatever else reached the file meanwhile (another thread's warning) is
    written to the real stderr; the decoders' lines (:data:`_CODEC_NOISE`) are dropped. The
    error that counts is the :class:`ImageLoadError` raised afterwards. Without a usable
    descriptor 2 (an embedded interpreter) nothing is redirected.
    """
    global _quiet_users, _quiet_saved
    with _quiet_lock:
        if _quiet_users == 0:
            _quiet_saved = _redirect_stderr()
        _quiet_users += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_users -= 1
            if _quiet_users == 0 and _quiet_saved is not None:
                saved, _quiet_saved = _quiet_saved, None
                _restore_stderr(*saved)


def _redirect_stderr() -> tuple[int, Any, int] | None:
    with contextlib.suppress(AttributeError, OSError, ValueError):  # no stderr, or closed
        sys.stderr.flush()
    try:
        copy = os.dup(2)
    except OSError:
        return None
    try:
        capture = _capture_file()
        os.dup2(capture.fileno(), 2)
    except OSError:
        os.close(copy)
        return None
    level = int(cv2.utils.logging.getLogLevel())
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return copy, capture, level


def _capture_file() -> Any:
    """The temporary file stderr goes to while decoding (one per process, made once)."""
    global _capture
    if _capture is None or _capture[0] != os.getpid():  # a forked child makes its own
        _capture = (os.getpid(), tempfile.TemporaryFile())  # noqa: SIM115 - kept open
    return _capture[1]


def _restore_stderr(copy: int, capture: Any, level: int) -> None:
    cv2.utils.logging.setLogLevel(level)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()  # text another thread left in Python's buffer goes to the capture
    os.dup2(copy, 2)
    os.close(copy)
    try:
        capture.seek(0)
        kept = [line for line in capture.read().splitlines(keepends=True)
                if line.strip() and not _CODEC_NOISE.match(line)]
        capture.seek(0)
        capture.truncate()
    except OSError:
        kept = []
    if kept:
        with contextlib.suppress(OSError):
            os.write(2, b"".join(kept))


def _jpeg_scan_start(data: bytes) -> int | None:
    """Offset of the first start-of-scan segment, skipping marker segments by their length."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:
            return pos
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def _decode_dicom(data: bytes, name: str) -> np.ndarray:
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError as err:
        raise MissingDependencyError(
            f"image {name}: reading DICOM needs pydicom; install it with "
            "pip install \"cxrexplain[dicom]\""
        ) from err
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pydicom's notes on odd headers
            dataset = pydicom.dcmread(_io.BytesIO(data), force=True)
            _ensure_transfer_syntax(dataset)
            _check_decoder(dataset, name)
            pixels = np.asarray(dataset.pixel_array)
    except (InvalidDicomError, AttributeError, KeyError, ValueError, TypeError, EOFError,
            OSError, NotImplementedError, RuntimeError) as err:
        raise ImageLoadError(
            f"image {name}: not a readable DICOM image ({type(err).__name__}: {err}); "
            "compressed transfer syntaxes may need pylibjpeg or gdcm"
        ) from err
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageLoadError(
            f"image {name}: a multi-frame DICOM ({frames} frames); extract one frame first"
        )
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if not photometric.startswith("MONOCHROME"):
        return _to_unit_float(pixels, name)
    return _dicom_to_unit(pixels, dataset, invert=photometric == "MONOCHROME1")


def _ensure_transfer_syntax(dataset: Any) -> None:
    """Files without a file-meta header (no preamble) get the encoding they were read with."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(dataset, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = dataset.original_encoding
    if meta is None:
        meta = FileMetaDataset()
        dataset.file_meta = meta
    if implicit:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def _check_decoder(dataset: Any, name: str) -> None:
    """A compressed file whose decoder is not installed says which extra installs one."""
    from pydicom.pixels.decoders.base import get_decoder

    syntax = dataset.file_meta.TransferSyntaxUID
    if not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as err:
        raise ImageLoadError(
            f"image {name}: pixel data compressed as {syntax.name} ({syntax}), which pydicom "
            "cannot decode"
        ) from err
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies)
        raise MissingDependencyError(
            f"image {name}: pixel data compressed as {syntax.name}; no decoder for it is "
            f"installed ({needs}). pip install \"cxrexplain[dicom]\" installs Pillow and "
            "python-gdcm, which decode the JPEG, JPEG-LS, JPEG 2000 and RLE transfer syntaxes"
        )


def _dicom_to_unit(pixels: np.ndarray, dataset: Any, *, invert: bool) -> np.ndarray:
    """Modality LUT (rescale), then VOI LUT or window, then MONOCHROME1 inversion, to [0, 1]."""
    from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

    modality = np.asarray(apply_modality_lut(pixels, dataset))
    values = modality.astype(np.float64)
    if "VOILUTSequence" in dataset:
        # a LUT is indexed by integers: round rescaled values rather than pass floats
        index = modality if modality.dtype.kind in "iu" else np.rint(modality).astype(np.int64)
        mapped = np.asarray(apply_voi_lut(index, dataset, prefer_lut=True), dtype=np.float64)
        bits = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
        # the output range is 0 .. 2**bits - 1 (PS3.3 C.11.2.1.1); some writers state fewer
        # bits than the table holds, so the range is never taken below the largest mapped value
        full = max(float(2**bits - 1), float(mapped.max()), 1.0)
        unit = np.clip(mapped / full, 0.0, 1.0)
    elif "WindowCenter" in dataset and "WindowWidth" in dataset:
        unit = _window(
            values,
            center=_first(dataset.WindowCenter),
            width=_first(dataset.WindowWidth),
            function=str(dataset.get("VOILUTFunction", "LINEAR")).upper(),
        )
    else:
        unit = _min_max(values)
    if invert:
        unit = 1.0 - unit
    return unit.astype(np.float32)


def _first(value: Any) -> float:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return float(value[0])
    return float(value)


def _window(values: np.ndarray, *, center: float, width: float, function: str) -> np.ndarray:
    """The DICOM VOI window (PS3.3 C.11.2.1.2) mapped to [0, 1]."""
    if function == "SIGMOID":
        return np.asarray(1.0 / (1.0 + np.exp(-4.0 * (values - center) / max(width, 1e-12))))
    if function == "LINEAR_EXACT":
        low, span = center - width / 2.0, max(width, 1e-12)
    else:  # LINEAR
        width = max(width, 1.0)
        low, span = center - 0.5 - (width - 1.0) / 2.0, max(width - 1.0, 1e-12)
    return np.asarray(np.clip((values - low) / span, 0.0, 1.0))


# --------------------------------------------------------------------------------------------
# value scaling, channels and size
# --------------------------------------------------------------------------------------------
def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values, dtype=np.float64)
    return np.asarray((values - low) / (high - low))


def _scaled(values: np.ndarray, full_scale: float) -> np.ndarray:
    scaled: np.ndarray = np.asarray(values, dtype=np.float32) / np.float32(full_scale)
    return scaled


def _to_unit_float(array: npt.ArrayLike, name: str) -> np.ndarray:
    """Scale pixel values to float32 [0, 1] by their type (see the module docstring)."""
    values = np.asarray(array)
    if values.dtype == object or not (
        np.issubdtype(values.dtype, np.number) or values.dtype == bool
    ):
        raise InvalidInputError(f"image {name}: expected numeric pixels, got dtype {values.dtype}")
    if values.dtype == bool:
        return values.astype(np.float32)
    if np.issubdtype(values.dtype, np.complexfloating):
        raise InvalidInputError(f"image {name}: complex pixel values are not an image")
    if values.size == 0:
        raise InvalidInputError(f"image {name}: the array is empty (shape {values.shape})")
    if np.issubdtype(values.dtype, np.floating):
        if not np.isfinite(values).all():
            raise InvalidInputError(f"image {name}: contains NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low >= 0.0 and high <= 1.0:
            return values.astype(np.float32)
        if low >= 0.0 and high <= 255.0:
            return (values / 255.0).astype(np.float32)
        return _min_max(values.astype(np.float64)).astype(np.float32)
    if values.dtype == np.uint8:
        return _scaled(values, 255.0)
    if values.dtype == np.uint16:
        return _scaled(values, 65535.0)
    low, high = int(values.min()), int(values.max())
    if low >= 0 and high <= 255:
        return _scaled(values, 255.0)
    if low >= 0 and high <= 65535:
        return _scaled(values, 65535.0)
    return _min_max(values.astype(np.float64)).astype(np.float32)


def _finish(
    pixels: np.ndarray, name: str, target: tuple[int, int] | None, channels: int, *,
    minimum: int,
) -> np.ndarray:
    """Check shape, convert channels, resize; return (H, W, channels) float32.

    ``minimum`` is the smallest height and width: :data:`MIN_IMAGE_SIZE` for decoded files
    (a smaller file is not a radiograph), 1 for arrays (a model may take any size).
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3:
        raise InvalidInputError(
            f"image {name}: expected 2 or 3 dimensions (H, W[, C]), got shape {pixels.shape}"
        )
    if pixels.shape[2] not in (1, 3, 4):
        raise InvalidInputError(
            f"image {name}: expected 1, 3 or 4 channels (gray, RGB, RGBA), got "
            f"{pixels.shape[2]} (shape {pixels.shape})"
        )
    height, width = pixels.shape[:2]
    if min(height, width) < minimum:
        raise InvalidInputError(
            f"image {name}: {height}x{width} pixels is smaller than the minimum "
            f"{minimum}x{minimum} for an image file"
        )
    pixels = _convert_channels(np.ascontiguousarray(pixels, dtype=np.float32), channels)
    if target is not None and (height, width) != target:
        pixels = _resize(pixels, target)
    return pixels


def _convert_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    if pixels.shape[2] == 4:
        pixels = np.ascontiguousarray(pixels[:, :, :3])
    have = pixels.shape[2]
    if have == channels:
        return pixels
    if channels == 1:
        gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        return np.clip(gray, 0.0, 1.0)[:, :, None]
    return np.repeat(pixels, 3, axis=2)


def _resize(pixels: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    height, width = target
    shrinking = height <= pixels.shape[0] and width <= pixels.shape[1]
    method = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(pixels, (width, height), interpolation=method)
    if resized.ndim == 2:
        resized = resized[:, :, None]
    return np.clip(resized, 0.0, 1.0).astype(np.float32, copy=False)


def _load_array_batch(
    batch: np.ndarray, target: tuple[int, int] | None, channels: int
) -> np.ndarray:
    """A 4-D array: convert as a whole when it is already the right size and channels."""
    if batch.shape[0] == 0:
        raise InvalidInputError(f"images: the batch is empty (shape {batch.shape})")
    same_size = target is None or tuple(batch.shape[1:3]) == target
    if (
        same_size
        and batch.shape[3] == channels
        and np.issubdtype(batch.dtype, np.floating)
    ):
        if not np.isfinite(batch).all():
            raise InvalidInputError("images: the batch contains NaN or infinite values")
        if float(batch.min()) >= 0.0 and float(batch.max()) <= 1.0:
            return batch.astype(np.float32, copy=False)
    return load_images(list(batch), size=target, channels=channels)


@dataclass
class Loaded:
    """A batch of films read one by one: the readable ones, and why the others are not.

    Attributes:
        films: The readable films, ``(H, W, C)`` float32 each at its own size, in order.
        good: ``(n,)`` int64, the position of each of ``films`` among the sources.
        errors: One message per source (on one line), ``""`` for a readable film.
    """

    films: list[np.ndarray]
    good: np.ndarray
    errors: list[str]


def load_each(sources: Sequence[ImageSource | None], *, channels: int,
              missing: str = "no image") -> Loaded:
    """Load each source at its own size; a source that fails is an error, not an exception.

    The one per-film reader of the engines that write a row per film, a bad file an error
    row: :mod:`cxrexplain.batch` (``explain``, ``predict``) and the Ray callables of
    :mod:`cxrexplain.distributed`.

    Args:
        sources: What :func:`load_image` accepts; None is an error saying ``missing``.
        channels: 1 or 3.
        missing: The error of a None source.

    Returns:
        The :class:`Loaded` films and errors.

    Example:
        >>> loaded = load_each([np.zeros((9, 9)), "missing.png", None], channels=1,
        ...                    missing="path: the cell is empty")
        >>> loaded.good.tolist(), loaded.errors[1][:23], loaded.errors[2]
        ([0], "image 'missing.png': no", 'path: the cell is empty')
    """
    films: list[np.ndarray] = []
    good: list[int] = []
    errors = [""] * len(sources)
    for position, source in enumerate(sources):
        if source is None:
            errors[position] = missing
            continue
        try:
            films.append(load_image(source, channels=channels))
        except CxrExplainError as err:
            errors[position] = one_line(str(err))
            continue
        good.append(position)
    return Loaded(films, np.asarray(good, np.int64), errors)


def count_chunk(chunk: Any) -> int:
    """The number of images in a chunk from :func:`iter_chunks`."""
    return len(chunk)


def iter_chunks(images: ImageSource | Iterable[ImageSource], size: int) -> Iterator[Any]:
    """Split the input into chunks of at most ``size`` images without loading them all."""
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            if images.shape[0] == 0:
                raise InvalidInputError("images: the batch is empty; give at least one image")
            for start in range(0, images.shape[0], size):
                yield images[start : start + size]
            return
        yield [images]
        return
    if isinstance(images, (str, bytes, bytearray, memoryview)) or not isinstance(
        images, Iterable
    ):
        yield [images]
        return
    items = list(images)
    if not items:
        raise InvalidInputError("images: the batch is empty; give at least one image")
    for start in range(0, len(items), size):
        yield items[start : start + size]
