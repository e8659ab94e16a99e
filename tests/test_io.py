"""Image loading: formats, bit depths, channels, resizing, DICOM, and every bad input."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import cxrexplain as cx
from cxrexplain.errors import (
    CxrExplainError,
    ImageLoadError,
    InvalidInputError,
    MissingDependencyError,
)


def _gradient(height: int = 40, width: int = 30) -> np.ndarray:
    """A uint8 RGB image with distinct channels, to catch BGR/RGB swaps."""
    y, x = np.mgrid[0:height, 0:width]
    red = (x * 255 // (width - 1)).astype(np.uint8)
    green = (y * 255 // (height - 1)).astype(np.uint8)
    blue = np.full((height, width), 40, np.uint8)
    return np.dstack([red, green, blue])


def _write(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB(A) or gray array with OpenCV (which wants BGR)."""
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif rgb.ndim == 3 and rgb.shape[2] == 4:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA)
    assert cv2.imwrite(str(path), rgb)
    return path


# ------------------------------------------------------------------ formats and values
@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tiff"])
def test_lossless_rgb_round_trip_keeps_channel_order(tmp_path: Path, suffix: str) -> None:
    rgb = _gradient()
    path = _write(tmp_path / f"img{suffix}", rgb)
    loaded = cx.load_image(path, channels=3)
    assert loaded.dtype == np.float32
    assert loaded.shape == (40, 30, 3)
    np.testing.assert_allclose(loaded, rgb / 255.0, atol=1e-6)


def test_gray_conversion_uses_bt601_weights(tmp_path: Path) -> None:
    rgb = _gradient()
    loaded = cx.load_image(_write(tmp_path / "img.png", rgb), channels=1)
    expected = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
    assert loaded.shape == (40, 30, 1)
    np.testing.assert_allclose(loaded[..., 0], expected, atol=1e-3)


def test_jpeg_loads_close_to_source(tmp_path: Path) -> None:
    gray = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    path = tmp_path / "img.jpg"
    assert cv2.imwrite(str(path), gray, [cv2.IMWRITE_JPEG_QUALITY, 95])
    loaded = cx.load_image(path)
    assert loaded.shape == (48, 64, 1)
    assert np.abs(loaded[..., 0] - gray / 255.0).max() < 0.03


def test_sixteen_bit_png_keeps_precision(tmp_path: Path) -> None:
    values = np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)
    path = tmp_path / "deep.png"
    assert cv2.imwrite(str(path), values)
    loaded = cx.load_image(path)
    np.testing.assert_allclose(loaded[..., 0], values / 65535.0, atol=1e-7)
    # 8-bit would collapse neighbouring values; 16-bit keeps 1024 distinct levels.
    assert len(np.unique(loaded)) == 1024


def test_sixteen_bit_rgb_tiff(tmp_path: Path) -> None:
    rgb16 = (_gradient().astype(np.uint16) * 257).astype(np.uint16)
    loaded = cx.load_image(_write(tmp_path / "deep.tiff", rgb16), channels=3)
    np.testing.assert_allclose(loaded, rgb16 / 65535.0, atol=1e-6)


def test_rgba_alpha_is_dropped(tmp_path: Path) -> None:
    rgb = _gradient()
    alpha = np.zeros(rgb.shape[:2], np.uint8)  # fully transparent: must not matter
    loaded = cx.load_image(_write(tmp_path / "a.png", np.dstack([rgb, alpha])), channels=3)
    np.testing.assert_allclose(loaded, rgb / 255.0, atol=1e-6)
    from_array = cx.load_image(np.dstack([rgb, alpha]), channels=3)
    np.testing.assert_allclose(from_array, rgb / 255.0, atol=1e-6)


def test_bytes_source_equals_path_source(tmp_path: Path) -> None:
    path = _write(tmp_path / "img.png", _gradient())
    from_bytes = cx.load_image(path.read_bytes(), channels=3)
    np.testing.assert_array_equal(from_bytes, cx.load_image(str(path), channels=3))


def test_gray_to_three_channels_repeats(tmp_path: Path) -> None:
    gray = np.random.default_rng(0).integers(0, 256, (20, 24), dtype=np.uint8)
    loaded = cx.load_image(_write(tmp_path / "g.png", gray), channels=3)
    assert loaded.shape == (20, 24, 3)
    for c in range(3):
        np.testing.assert_allclose(loaded[..., c], gray / 255.0, atol=1e-7)


@pytest.mark.parametrize(
    ("array", "expected_max"),
    [
        (np.full((10, 10), 255, np.uint8), 1.0),
        (np.full((10, 10), 65535, np.uint16), 1.0),
        (np.full((10, 10), 0.5, np.float64), 0.5),
        (np.full((10, 10), 127.5, np.float32), 0.5),  # float in 0..255: divided by 255
        (np.full((10, 10), 1000, np.int32), 1000 / 65535),
        (np.ones((10, 10), bool), 1.0),
    ],
)
def test_array_value_scaling(array: np.ndarray, expected_max: float) -> None:
    loaded = cx.load_image(array)
    assert loaded.dtype == np.float32
    assert loaded.max() == pytest.approx(expected_max, rel=1e-6)


def test_out_of_range_float_is_min_max_scaled() -> None:
    array = np.linspace(-1000.0, 3000.0, 100).reshape(10, 10)
    loaded = cx.load_image(array)[..., 0]
    assert loaded.min() == 0.0
    assert loaded.max() == pytest.approx(1.0)
    np.testing.assert_allclose(loaded, (array + 1000.0) / 4000.0, atol=1e-6)


# ------------------------------------------------------------------ resizing
def test_resize_int_and_pair_with_area_interpolation() -> None:
    rng = np.random.default_rng(1)
    source = rng.random((64, 96)).astype(np.float32)
    square = cx.load_image(source, size=32)
    assert square.shape == (32, 32, 1)
    expected = cv2.resize(source, (32, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(square[..., 0], expected, atol=1e-6)
    # area interpolation of a 2x downscale is the mean of each 2x2 block
    half = cx.load_image(source, size=(32, 48))[..., 0]
    blocks = source.reshape(32, 2, 48, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(half, blocks, atol=1e-6)


def test_enlarging_stays_in_range() -> None:
    loaded = cx.load_image(np.eye(10, dtype=np.float32), size=(25, 40))
    assert loaded.shape == (25, 40, 1)
    assert loaded.min() >= 0.0 and loaded.max() <= 1.0


def test_load_images_batch_and_mixed_sources(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.png", _gradient(50, 50))
    batch = cx.load_images([path, _gradient(30, 60), path.read_bytes()], size=16, channels=3)
    assert batch.shape == (3, 16, 16, 3)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], batch[2])


def test_load_images_needs_size_when_sizes_differ() -> None:
    with pytest.raises(InvalidInputError, match="size="):
        cx.load_images([np.zeros((20, 20)), np.zeros((30, 20))])


def test_load_images_4d_array_fast_path_returns_same_values() -> None:
    batch = np.random.default_rng(2).random((5, 16, 16, 1)).astype(np.float32)
    out = cx.load_images(batch)
    assert out.shape == (5, 16, 16, 1)
    np.testing.assert_array_equal(out, batch)
    resized = cx.load_images(batch, size=8, channels=3)
    assert resized.shape == (5, 8, 8, 3)


# ------------------------------------------------------------------ real files
def test_every_original_loads_native_and_resized(data_dir: Path) -> None:
    originals = sorted((data_dir / "originals").iterdir())
    assert len(originals) >= 4
    for path in originals:
        reference = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        native = cx.load_image(path)
        assert native.shape == (*reference.shape[:2], 1), path.name
        assert native.dtype == np.float32
        assert 0.0 <= native.min() <= native.max() <= 1.0
        assert native.std() > 0.05, f"{path.name} looks blank"
        rgb = cx.load_image(path, size=224, channels=3)
        assert rgb.shape == (224, 224, 3)
        if reference.ndim == 2:
            np.testing.assert_allclose(native[..., 0], reference / 255.0, atol=1e-6)


def test_fifty_real_xrays_load_as_a_batch(data_dir: Path) -> None:
    paths = sorted((data_dir / "cxr" / "PNEUMONIA").glob("*.png"))[:25]
    paths += sorted((data_dir / "cxr" / "NORMAL").glob("*.png"))[:25]
    assert len(paths) == 50
    batch = cx.load_images(paths, size=128)
    assert batch.shape == (50, 128, 128, 1)
    native = cx.load_images(paths)
    assert native.shape == (50, 256, 256, 1)
    first = cv2.imread(str(paths[0]), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_allclose(native[0, ..., 0], first / 255.0, atol=1e-6)


# ------------------------------------------------------------------ DICOM
def _dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    signed: bool = False,
    preamble: bool = True,
) -> Path:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12 if not signed else 16
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept or 0.0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    dtype = np.int16 if signed else np.uint16
    ds.PixelData = pixels.astype(dtype).tobytes()
    if not preamble:
        ds.preamble = None
        del ds.file_meta
    ds.save_as(str(path), enforce_file_format=preamble, implicit_vr=False, little_endian=True)
    assert pydicom.dcmread(str(path), force=True).Rows == pixels.shape[0]
    return path


def test_dicom_monochrome2_plain_is_min_max_scaled(tmp_path: Path) -> None:
    pixels = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) % 4096
    loaded = cx.load_image(_dicom(tmp_path / "a.dcm", pixels))
    expected = (pixels - pixels.min()) / (pixels.max() - pixels.min())
    np.testing.assert_allclose(loaded[..., 0], expected, atol=1e-6)


def test_dicom_rescale_then_window(tmp_path: Path) -> None:
    stored = np.tile(np.arange(0, 4000, 125, dtype=np.uint16), (32, 1))  # 32 x 32
    slope, intercept, center, width = 2.0, -1000.0, 1000.0, 2001.0
    path = _dicom(
        tmp_path / "b.dcm", stored, slope=slope, intercept=intercept, window=(center, width)
    )
    loaded = cx.load_image(path)[..., 0]
    hu = stored * slope + intercept
    # DICOM PS3.3 C.11.2.1.2 linear window, written out independently
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    expected = np.where(hu <= low, 0.0, np.where(hu > high, 1.0,
                        ((hu - (center - 0.5)) / (width - 1) + 0.5)))
    np.testing.assert_allclose(loaded, expected, atol=1e-6)
    assert loaded.min() == 0.0 and loaded.max() == 1.0


def test_dicom_monochrome1_is_inverted_so_bone_is_bright(tmp_path: Path) -> None:
    pixels = np.zeros((32, 32), np.uint16)
    pixels[:, 16:] = 4000  # in MONOCHROME1, high values are dark
    mono1 = cx.load_image(_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1"))
    mono2 = cx.load_image(_dicom(tmp_path / "m2.dcm", pixels, photometric="MONOCHROME2"))
    assert mono1[0, 0, 0] == 1.0 and mono1[0, 31, 0] == 0.0
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-7)


def test_dicom_signed_pixels_and_bytes_source(tmp_path: Path) -> None:
    pixels = np.linspace(-1024, 3071, 32 * 32).reshape(32, 32).astype(np.int16)
    path = _dicom(tmp_path / "s.dcm", pixels, signed=True, window=(40.0, 400.0))
    loaded = cx.load_image(path.read_bytes(), size=16)  # detected by its DICM preamble
    assert loaded.shape == (16, 16, 1)
    assert loaded.min() == 0.0 and loaded.max() == 1.0


def test_dicom_without_preamble_by_suffix(tmp_path: Path) -> None:
    pixels = (np.arange(1024).reshape(32, 32) % 256).astype(np.uint16)
    path = _dicom(tmp_path / "raw.dcm", pixels, preamble=False)
    assert path.read_bytes()[128:132] != b"DICM"
    assert cx.load_image(path).shape == (32, 32, 1)


def test_dicom_without_pydicom_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _dicom(tmp_path / "x.dcm", np.ones((16, 16), np.uint16))
    real_import = builtins.__import__

    def no_pydicom(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pydicom" or name.startswith("pydicom."):
            raise ImportError("No module named 'pydicom'")
        return real_import(name, *args, **kwargs)

    for module in [m for m in sys.modules if m == "pydicom" or m.startswith("pydicom.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", no_pydicom)
    with pytest.raises(MissingDependencyError, match=r"cxrexplain\[dicom\]") as info:
        cx.load_image(path)
    assert isinstance(info.value, ImportError)
    assert "x.dcm" in str(info.value)


def test_dicom_voi_lut_sequence_maps_through_the_table(tmp_path: Path) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset

    stored = np.tile(np.arange(0, 4096, 128, dtype=np.uint16), (32, 1))  # 32 x 32
    path = _dicom(tmp_path / "lut.dcm", stored, window=(100.0, 50.0))  # the LUT wins
    dataset = pydicom.dcmread(str(path))
    table = np.round(4095.0 * np.sqrt(np.arange(1024) / 1023.0)).astype(np.uint16)
    lut = Dataset()
    lut.LUTDescriptor = [1024, 1024, 12]  # 1024 entries, first maps stored value 1024
    lut.LUTData = table.tobytes()  # OW, little endian
    dataset.VOILUTSequence = pydicom.Sequence([lut])
    dataset.save_as(str(path), enforce_file_format=True)
    loaded = cx.load_image(path)[..., 0]
    # PS3.3 C.11.2.1.1: below the first entry -> first value, above the last -> last value
    expected = table[np.clip(stored.astype(int) - 1024, 0, 1023)] / 4095.0
    np.testing.assert_allclose(loaded, expected, atol=1e-6)


def _transcode(source: Path, target: Path, syntax: str) -> Path:
    """Re-encode a DICOM file with GDCM (an encoder independent of the pydicom decoders)."""
    gdcm = pytest.importorskip("gdcm")
    reader = gdcm.ImageReader()
    reader.SetFileName(str(source))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(target))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()
    return target


@pytest.mark.parametrize(
    ("syntax", "uid"),
    [
        ("JPEGLosslessProcess14_1", "1.2.840.10008.1.2.4.70"),
        ("JPEGLSLossless", "1.2.840.10008.1.2.4.80"),
        ("JPEG2000Lossless", "1.2.840.10008.1.2.4.90"),
        ("RLELossless", "1.2.840.10008.1.2.5"),
    ],
)
def test_dicom_lossless_compressed_equals_uncompressed(
    tmp_path: Path, syntax: str, uid: str
) -> None:
    pydicom = pytest.importorskip("pydicom")
    pixels = np.random.default_rng(5).integers(0, 4096, (48, 40)).astype(np.uint16)
    plain = _dicom(tmp_path / "plain.dcm", pixels, window=(2000.0, 3000.0))
    packed = _transcode(plain, tmp_path / "packed.dcm", syntax)
    assert pydicom.dcmread(str(packed)).file_meta.TransferSyntaxUID == uid
    assert packed.read_bytes() != plain.read_bytes()
    np.testing.assert_array_equal(cx.load_image(packed), cx.load_image(plain))


def test_dicom_jpeg_baseline_matches_the_jpeg_itself(tmp_path: Path) -> None:
    """An 8-bit JPEG wrapped in DICOM loads as the same JPEG loaded directly."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    gray = (np.add.outer(np.arange(64), np.arange(48)) * 2).astype(np.uint8)  # smooth ramp
    ok, encoded = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    path = _dicom(tmp_path / "plain.dcm", gray.astype(np.uint16))
    dataset = pydicom.dcmread(str(path))
    dataset.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
    dataset.PixelData = encapsulate([encoded.tobytes()])
    dataset["PixelData"].VR = "OB"
    dataset.save_as(str(path), enforce_file_format=True)
    direct = cx.load_image(encoded.tobytes())[..., 0]  # uint8 / 255
    via_dicom = cx.load_image(path)[..., 0]  # no window: min-max of the decoded values
    expected = (direct - direct.min()) / (direct.max() - direct.min())
    np.testing.assert_allclose(via_dicom, expected, atol=1e-6)


def test_dicom_compressed_without_a_decoder_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pydicom")
    import pydicom.pixels.decoders.base as decoders

    packed = _transcode(
        _dicom(tmp_path / "plain.dcm", np.ones((16, 16), np.uint16)), tmp_path / "j.dcm",
        "JPEGLosslessProcess14_1",
    )

    class NoPlugins:
        is_available = False
        missing_dependencies = ("gdcm - requires gdcm>=3.0.10",)

    monkeypatch.setattr(decoders, "get_decoder", lambda uid: NoPlugins())
    with pytest.raises(MissingDependencyError, match=r"JPEG Lossless.*cxrexplain\[dicom\]"):
        cx.load_image(packed)


def test_dicom_garbage_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage" * 10)
    with pytest.raises(ImageLoadError, match="bad.dcm"):
        cx.load_image(path)


# ------------------------------------------------------------------ bad input
def _file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _truncated(path: Path, seed: int) -> Path:
    """64x64 noise encoded as ``path``'s suffix says, cut after half its bytes."""
    noise = np.random.default_rng(seed).integers(0, 256, (64, 64), dtype=np.uint8)
    ok, encoded = cv2.imencode(path.suffix, noise)
    assert ok
    return _file(path, encoded.tobytes()[: len(encoded) // 2])


@pytest.mark.parametrize(
    ("make", "error", "fragment"),
    [
        (lambda p: p / "missing.png", ImageLoadError, "no such file"),
        (lambda p: p, ImageLoadError, "folder"),
        (lambda p: _file(p / "empty.png", b""), ImageLoadError, "empty"),
        (lambda p: _file(p / "text.png", b"not an image"), ImageLoadError,
         "not a readable image"),
        (lambda p: _truncated(p / "cut.jpg", seed=3), ImageLoadError, "truncated"),
        (lambda p: _truncated(p / "cut.png", seed=4), ImageLoadError, "truncated"),
    ],
    ids=["missing", "folder", "zero-byte", "text-as-png", "truncated-jpeg", "truncated-png"],
)
def test_bad_files_raise_load_error_naming_the_file(
    tmp_path: Path, make: Any, error: type[Exception], fragment: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(error, match=fragment) as info:
        cx.load_image(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, CxrExplainError)


def test_truncated_jpeg_with_exif_thumbnail_end_marker_is_still_caught(tmp_path: Path) -> None:
    """An APP1 segment holding an end marker (as EXIF thumbnails do) must not hide truncation."""
    noise = np.random.default_rng(5).integers(0, 256, (64, 64), dtype=np.uint8)
    encoded = cv2.imencode(".jpg", noise)[1].tobytes()
    payload = b"Exif\0\0" + b"\xff\xd8\xff\xd9"
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    whole = encoded[:2] + app1 + encoded[2:]
    assert cx.load_image(whole).shape == (64, 64, 1)
    with pytest.raises(ImageLoadError, match="truncated"):
        cx.load_image(whole[: len(whole) - 200])


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.full((16, 16), np.nan, np.float32), "NaN"),
        (np.array([[np.inf] * 16] * 16), "NaN or infinite"),
        (np.zeros(16), "dimensions"),
        (np.zeros((2, 2, 16, 16, 1)), "dimensions"),
        (np.zeros((16, 16, 2)), "channels"),
        (np.zeros((16, 16, 5)), "channels"),
        (np.zeros((16, 16), dtype=object), "numeric"),
    ],
    ids=["nan", "inf", "1d", "5d", "2ch", "5ch", "object"],
)
def test_bad_arrays_raise_invalid_input(array: np.ndarray, fragment: str) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        cx.load_image(array)


def test_small_arrays_are_images_but_small_files_are_not(tmp_path: Path) -> None:
    # a 4x4 model is a valid model: arrays of any size load; the minimum is for files
    assert cx.load_image(np.zeros((4, 16))).shape == (4, 16, 1)
    assert cx.load_images(np.zeros((2, 4, 4, 1), np.float32), size=4).shape == (2, 4, 4, 1)
    path = _write(tmp_path / "small.png", np.zeros((4, 16), np.uint8))
    with pytest.raises(InvalidInputError, match="smaller than the minimum"):
        cx.load_image(path)


def test_batch_passed_to_load_image_points_to_load_images() -> None:
    with pytest.raises(InvalidInputError, match="load_images"):
        cx.load_image(np.zeros((2, 16, 16, 1)))


def test_tiny_image_file_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path / "tiny.png", np.zeros((5, 5), np.uint8))
    with pytest.raises(InvalidInputError, match="tiny.png"):
        cx.load_image(path)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"size": 0}, "size"), ({"size": (10,)}, "size"), ({"size": 3.5}, "size"),
     ({"channels": 2}, "channels"), ({"channels": True}, "channels")],
)
def test_bad_arguments(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        cx.load_image(np.zeros((16, 16)), **kwargs)


def test_unsupported_source_type() -> None:
    with pytest.raises(InvalidInputError, match="path, bytes or a NumPy array"):
        cx.load_image(12345)  # type: ignore[arg-type]


def test_load_images_names_the_bad_file_among_many(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.png", _gradient())
    bad = tmp_path / "broken.png"
    bad.write_text("nope")
    with pytest.raises(ImageLoadError, match=r"images\[2\].*broken.png"):
        cx.load_images([good, good, bad, good])


def test_load_images_empty_batch() -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        cx.load_images([])
    with pytest.raises(InvalidInputError, match="empty"):
        cx.load_images(np.zeros((0, 16, 16, 1), np.float32))


def test_load_images_nan_in_4d_batch() -> None:
    batch = np.zeros((3, 16, 16, 1), np.float32)
    batch[1, 2, 2, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        cx.load_images(batch)


def test_jpeg_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A JPEG stored landscape with EXIF orientation 6 (rotate 90 degrees clockwise to view)
    loads as the viewer shows it: portrait, the stored left edge on top."""
    from PIL import Image

    stored = np.zeros((40, 80), np.uint8)
    stored[:, :10] = 255  # bright stripe on the stored image's left edge
    image = Image.fromarray(stored).convert("RGB")
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes(), quality=95)
    loaded = cx.load_image(path)
    assert loaded.shape == (80, 40, 1)
    assert loaded[:5].mean() > 0.9 and loaded[-20:].mean() < 0.1
    assert cx.load_image(path.read_bytes()).shape == (80, 40, 1)


# ------------------------------------------------------- corrupt files: one message, no noise
def _noise_png(seed: int = 7, size: int = 64) -> bytes:
    noise = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    return bytes(cv2.imencode(".png", noise)[1])


def _noise_encoded(suffix: str, seed: int = 8) -> bytes:
    noise = np.random.default_rng(seed).integers(0, 256, (64, 64), dtype=np.uint8)
    return bytes(cv2.imencode(suffix, noise)[1])


def _png_chunk(kind: bytes, body: bytes, *, crc: int | None = None) -> bytes:
    import zlib

    value = zlib.crc32(kind + body) if crc is None else crc
    return len(body).to_bytes(4, "big") + kind + body + value.to_bytes(4, "big")


def _ihdr_crc_broken() -> bytes:
    data = bytearray(_noise_png())
    data[29] ^= 0xFF  # the IHDR CRC: 8 signature + 4 length + 4 type + 13 data bytes
    return bytes(data)


def _ihdr_too_tall() -> bytes:
    """A valid CRC over an IHDR that claims more rows than the data holds (libpng: "Not
    enough image data")."""
    data = _noise_png()
    body = data[16:20] + (4096).to_bytes(4, "big") + data[24:29]
    return data[:8] + _png_chunk(b"IHDR", body) + data[33:]


_CORRUPT = {
    "png-ihdr-crc": (_ihdr_crc_broken, "IHDR chunk fails its CRC check"),
    "png-too-little-data": (_ihdr_too_tall, "PNG data is corrupt"),
    "png-truncated": (lambda: _noise_png()[: len(_noise_png()) // 2], "PNG data is truncated"),
    "png-idat-crc": (lambda: _noise_png()[:45] + bytes([_noise_png()[45] ^ 0xFF])
                     + _noise_png()[46:], "IDAT chunk fails its CRC check"),
    "png-not-ihdr-first": (lambda: _noise_png()[:8] + bytes(range(200)), "IHDR"),
    "jpeg-truncated": (lambda: _noise_encoded(".jpg")[:600], "JPEG data is truncated"),
    "bmp-truncated": (lambda: _noise_encoded(".bmp")[:200], "BMP data is corrupt"),
    "tiff-truncated": (lambda: _noise_encoded(".tif")[:200], "TIFF data is corrupt"),
    "random-bytes": (lambda: np.random.default_rng(9).bytes(500), "not a readable image"),
}


@pytest.mark.parametrize("kind", sorted(_CORRUPT))
@pytest.mark.parametrize("as_file", [True, False], ids=["file", "bytes"])
def test_corrupt_image_gives_one_error_and_nothing_on_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], kind: str, as_file: bool
) -> None:
    """libpng and libjpeg print to descriptor 2 by themselves, and OpenCV logs "[ERROR:0@..]
    global loadsave.cpp ..."; the ImageLoadError must be the only message."""
    make, fragment = _CORRUPT[kind]
    content = make()
    source: Any = _file(tmp_path / f"bad{kind}.img", content) if as_file else content
    capfd.readouterr()
    with pytest.raises(ImageLoadError, match=fragment) as info:
        cx.load_image(source)
    assert capfd.readouterr().err == ""
    if as_file:
        assert str(source) in str(info.value)
    import os

    os.write(2, b"stderr works again\n")  # descriptor 2 is back where it was
    assert capfd.readouterr().err == "stderr works again\n"


def test_decodable_but_damaged_files_load_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    """A JPEG with garbage inside its scan (libjpeg warns "Corrupt JPEG data") and a PNG whose
    text chunk fails its CRC (libpng skips ancillary chunks) still load, without noise."""
    jpeg = bytearray(_noise_encoded(".jpg"))
    jpeg[len(jpeg) // 2 : len(jpeg) // 2 + 40] = b"\xaa" * 40
    png = _noise_png()
    with_text = png[:33] + _png_chunk(b"tEXt", b"Comment\0x", crc=0) + png[33:]
    capfd.readouterr()
    assert cx.load_image(bytes(jpeg)).shape == (64, 64, 1)
    np.testing.assert_array_equal(cx.load_image(with_text), cx.load_image(png))
    assert capfd.readouterr().err == ""
    assert cv2.utils.logging.getLogLevel() != cv2.utils.logging.LOG_LEVEL_SILENT


def test_quiet_decoding_keeps_other_output_and_restores_the_log_level(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """What another thread writes to stderr during a decode is passed on afterwards; only
    the decoders' own lines are dropped; OpenCV's log level is put back."""
    import os

    from cxrexplain import io as cxio

    level = cv2.utils.logging.getLogLevel()
    capfd.readouterr()
    with cxio._quiet_codecs():
        os.write(2, b"libpng error: IHDR: CRC error\n")
        os.write(2, b"[ERROR:0@3.1] global loadsave.cpp:1377 imdecode_ ...\n")
        os.write(2, b"Corrupt JPEG data: premature end of data segment\n")
        os.write(2, b"a warning of another thread\n")
        assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_SILENT
    assert capfd.readouterr().err == "a warning of another thread\n"
    assert cv2.utils.logging.getLogLevel() == level


def test_parallel_decoding_of_good_and_corrupt_files_is_quiet(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from cxrexplain import io as cxio

    good, bad = _noise_png(), _ihdr_too_tall()

    def load(index: int) -> str:
        try:
            cx.load_image(good if index % 2 else bad)
            return "ok"
        except ImageLoadError:
            return "error"

    capfd.readouterr()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(load, range(64)))
    assert results.count("ok") == results.count("error") == 32
    assert capfd.readouterr().err == ""
    assert cxio._quiet_users == 0 and cxio._quiet_saved is None


# ------------------------------------------------------------------------- find_images
def test_find_images_skips_hidden_names_and_keeps_link_paths(tmp_path: Path) -> None:
    import os

    root = tmp_path / "films"
    for rel in ("a.png", "B.PNG", "sub/c.jpg", ".hidden.png", "._a.png", ".cache/d.png",
                "__MACOSX/e.png", "notes.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "f.png").write_bytes(b"x")
    os.symlink(elsewhere, root / "linked")
    os.symlink(root, root / "sub" / "loop")  # a link loop ends
    found = cx.io.find_images(root)
    assert [p.relative_to(root).as_posix() for p in found] == [
        "B.PNG", "a.png", "linked/f.png", "sub/c.jpg"]
    assert root / "linked" / "f.png" in found  # the link's path, not the resolved one
    assert [p.name for p in cx.io.find_images(root, recursive=False)] == ["B.PNG", "a.png"]
    assert cx.io.find_images([root / ".hidden.png"]) == [root / ".hidden.png"]  # named: kept


@pytest.mark.parametrize("paths", [None, 3, [None], ["a.png", 3.5]], ids=repr)
def test_find_images_refuses_what_is_not_a_path(paths: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"paths(\[\d\])?: expected a file or folder"):
        cx.io.find_images(paths)
