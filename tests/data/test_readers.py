"""Readers: every format becomes float32 (H, W) in [0, 1]; bad files name themselves."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from diffrendergan.data.readers import list_images, read_mask, read_micrograph
from diffrendergan.errors import DataError

# tests/data/<file>: parents[3] is the folder holding the repository and shared/.
REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "ruehle2021_tio2_sem"


def _ramp(dtype, shape=(32, 48)) -> np.ndarray:
    """A ramp spanning the dtype's full range (floats: an arbitrary range)."""
    t = np.linspace(0.0, 1.0, shape[0] * shape[1]).reshape(shape)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.round(info.min + t * (float(info.max) - info.min)).astype(dtype)
    return (t * 40.0 - 7.0).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.float32])
def test_tiff_bit_depths_read_to_unit_range(tmp_path, dtype):
    arr = _ramp(dtype)
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, arr)
    full = read_micrograph(path, normalize="full")
    assert full.dtype == np.float32 and full.shape == arr.shape
    assert full.min() == pytest.approx(0.0, abs=1e-6)
    assert full.max() == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.diff(full.ravel()) >= -1e-6)  # monotone: the ramp survives
    np.testing.assert_allclose(read_micrograph(path, normalize="none"), arr.astype(np.float32))


def test_full_keeps_absolute_brightness_of_integers(tmp_path):
    path = tmp_path / "dim.tif"
    tifffile.imwrite(path, np.full((8, 8), 1000, np.uint16))
    np.testing.assert_allclose(read_micrograph(path, normalize="full"), 1000 / 65535, rtol=1e-6)


def test_percentile_clips_outliers(tmp_path):
    arr = np.tile(np.arange(200, dtype=np.uint8), (10, 1))
    arr[0, 0] = 255  # one hot pixel must not set the white point
    path = tmp_path / "hot.png"
    Image.fromarray(arr).save(path)
    img = read_micrograph(path, percentiles=(1, 99))
    assert img.min() == 0.0 and img.max() == 1.0
    assert (img == 1.0).mean() > 0.005  # the top 1 % is saturated, not only the outlier


def test_palette_tiff_uses_colormap_luminance(tmp_path):
    idx = np.array([[0, 1], [2, 3]], np.uint8)
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, 1] = 65535  # white
    cmap[0, 2] = 65535  # pure red
    cmap[:, 3] = 32896  # mid gray (128 * 257)
    path = tmp_path / "pal.tif"
    tifffile.imwrite(path, idx, photometric="palette", colormap=cmap)
    img = read_micrograph(path, normalize="none")
    np.testing.assert_allclose(img, [[0, 255], [0.299 * 255, 128]], atol=1e-3)


def test_rgb_and_rgba_use_bt601_luminance(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    expected = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
    Image.fromarray(rgb).save(tmp_path / "c.png")
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    rgba = np.concatenate([rgb, np.full((4, 4, 1), 7, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(tmp_path / "ca.png")
    for name in ("c.png", "c.tif", "ca.png"):
        img = read_micrograph(tmp_path / name, normalize="none")
        np.testing.assert_allclose(img, expected, atol=1e-3, err_msg=name)


def test_multipage_tiff_first_and_all_pages(tmp_path):
    pages = [np.full((16, 20), v, np.uint8) for v in (10, 20, 30)]
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as tw:
        for p in pages:
            tw.write(p, photometric="minisblack")
    first = read_micrograph(path, normalize="none")
    assert first.shape == (16, 20) and np.all(first == 10)
    second = read_micrograph(path, page=1, normalize="none")
    assert np.all(second == 20)
    stack = read_micrograph(path, page=None, normalize="none")
    assert stack.shape == (3, 16, 20)
    np.testing.assert_array_equal(stack[:, 0, 0], [10, 20, 30])
    with pytest.raises(DataError, match=r"stack\.tif.*page 5"):
        read_micrograph(path, page=5)


def test_png_16bit_and_jpeg(tmp_path):
    arr16 = _ramp(np.uint16)
    Image.fromarray(arr16).save(tmp_path / "a16.png")
    img16 = read_micrograph(tmp_path / "a16.png", normalize="full")
    np.testing.assert_allclose(img16, arr16 / 65535.0, atol=1e-6)
    arr8 = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))
    Image.fromarray(arr8).save(tmp_path / "a.jpg", quality=95)
    jpg = read_micrograph(tmp_path / "a.jpg", normalize="full")
    assert jpg.shape == (64, 64)
    assert np.abs(jpg - arr8 / 255.0).max() < 0.05  # lossy, but the ramp is kept


def test_corrupt_and_truncated_files_name_the_file(tmp_path):
    bad = tmp_path / "garbage.tif"
    bad.write_bytes(b"this is not a tiff at all" * 10)
    with pytest.raises(DataError, match=r"garbage\.tif"):
        read_micrograph(bad)
    good = tmp_path / "whole.tif"
    tifffile.imwrite(good, _ramp(np.uint8, (64, 64)))
    cut = tmp_path / "truncated.tif"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match=r"truncated\.tif"):
        read_micrograph(cut)
    png = tmp_path / "whole.png"
    Image.fromarray(_ramp(np.uint8, (64, 64))).save(png)
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(png.read_bytes()[:100])
    with pytest.raises(DataError, match=r"cut\.png"):
        read_micrograph(cut_png)


@pytest.mark.filterwarnings("ignore:.*zero-size array")
def test_unsupported_extension_and_empty_image(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt.*\.tif"):
        read_micrograph(txt)
    empty = tmp_path / "empty.tif"
    tifffile.imwrite(empty, np.zeros((0, 5), np.uint8))
    with pytest.raises(DataError, match=r"empty\.tif"):
        read_micrograph(empty)


def test_read_mask_keeps_stored_values(tmp_path):
    labels = np.array([[0, 3], [7, 3]], np.uint8)
    cmap = np.zeros((3, 256), np.uint16)
    cmap[0, 3] = 65535  # index 3 drawn red: we want 3, not a colour
    tifffile.imwrite(tmp_path / "m.tif", labels, photometric="palette", colormap=cmap)
    m = read_mask(tmp_path / "m.tif")
    assert m.dtype == np.int64
    np.testing.assert_array_equal(m, labels)
    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), [[0, 255], [255, 0]])


def test_list_images_errors_and_order(tmp_path):
    with pytest.raises(DataError, match="missing_dir"):
        list_images(tmp_path / "missing_dir")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty_dir.*empty"):
        list_images(empty)
    other = tmp_path / "other_dir"
    other.mkdir()
    (other / "readme.md").write_text("x")
    with pytest.raises(DataError, match=r"other_dir.*\.tif"):
        list_images(other)
    for name in ("b.png", "a.TIF", "c.jpg"):
        (other / name).write_bytes(b"")
    assert [p.name for p in list_images(other)] == ["a.TIF", "b.png", "c.jpg"]


@pytest.mark.real_data
def test_real_palette_tiff_reads_as_gray():
    path = REAL / "unlabeled" / "1908314.tif"
    if not path.is_file():
        pytest.skip(f"real data not found at {REAL}")
    img = read_micrograph(path)
    assert img.shape == (768, 1024) and img.dtype == np.float32
    assert 0.0 <= img.min() < 0.05 and 0.95 < img.max() <= 1.0
