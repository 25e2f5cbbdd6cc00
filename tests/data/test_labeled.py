"""Annotated pairs: matching by stem, binary vs label masks, data-bar crop, 3-class target."""

import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from diffrendergan.data.labeled import (
    find_labeled_pairs,
    load_labeled,
    mask_to_instances,
)
from diffrendergan.errors import DataError

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "ruehle2021_tio2_sem"


def two_touching_squares() -> np.ndarray:
    """(80, 60) binary 0/255 mask: two squares separated by a 1-px background line."""
    m = np.zeros((80, 60), np.uint8)
    m[10:30, 10:25] = 255
    m[10:30, 26:40] = 255  # column 25 is the separating line
    m[5:8, 50:55] = 255
    return m


def image_for(mask: np.ndarray, bar_rows: int = 0) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.clip(0.2 + 0.5 * (mask > 0) + rng.normal(0, 0.03, mask.shape), 0, 1)
    img = np.round(img * 255).astype(np.uint8)
    if bar_rows:
        bar = np.zeros((bar_rows, mask.shape[1]), np.uint8)
        bar[0] = 255
        bar[bar_rows // 2, 5:15] = 255
        img = np.vstack([img, bar])
    return img


def make_folder(root: Path, stems=("a", "b"), mask_stems=None, bar_rows=0) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    m = two_touching_squares()
    for s in stems:
        Image.fromarray(image_for(m, bar_rows)).save(root / "images" / f"{s}.png")
    for s in stems if mask_stems is None else mask_stems:
        full = np.vstack([m, np.zeros((bar_rows, m.shape[1]), np.uint8)])
        tifffile.imwrite(root / "masks" / f"{s}.tif", full)
    return root


def test_pairs_match_by_stem_across_extensions(tmp_path):
    pairs = find_labeled_pairs(make_folder(tmp_path, ("b", "a")))
    assert [(p.image_path.name, p.mask_path.name) for p in pairs] == [
        ("a.png", "a.tif"),
        ("b.png", "b.tif"),
    ]


def test_mask_without_image_and_image_without_mask(tmp_path, caplog):
    root = make_folder(tmp_path / "x", stems=("a", "b"), mask_stems=("a", "b", "orphan"))
    with pytest.raises(DataError, match=r"orphan\.tif.*no image"):
        find_labeled_pairs(root)
    with caplog.at_level(logging.WARNING):
        assert len(find_labeled_pairs(root, strict=False)) == 2
    assert "orphan.tif" in caplog.text
    root2 = make_folder(tmp_path / "y", stems=("a", "lonely"), mask_stems=("a",))
    with pytest.raises(DataError, match=r"lonely\.png.*no mask"):
        find_labeled_pairs(root2)


def test_missing_masks_folder(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="masks"):
        find_labeled_pairs(tmp_path)


def test_binary_mask_gives_instances_and_boundary(tmp_path):
    root = make_folder(tmp_path, ("a",), bar_rows=20)
    image, instance, classes = load_labeled(find_labeled_pairs(root)[0])
    assert image.shape == instance.shape == classes.shape == (80, 60)  # bar cropped from both
    assert image.dtype == np.float32 and instance.dtype == np.int64 and classes.dtype == np.uint8
    assert instance.max() == 3  # two touching squares + one small one
    assert set(np.unique(classes)) == {0, 1, 2}
    assert np.all(classes[10:30, 25] == 2)  # the separating line is boundary
    assert classes[20, 15] == 1 and classes[0, 0] == 0


def test_label_mask_values_are_instance_ids():
    m = np.zeros((20, 20), np.int64)
    m[2:8, 2:8], m[2:8, 8:14], m[12:18, 2:8] = 5, 9, 2  # 5 and 9 touch: no line needed
    inst = mask_to_instances(m)
    np.testing.assert_array_equal(inst, m)
    binary01 = (m > 0).astype(np.uint8)
    assert mask_to_instances(binary01).max() == 2  # 0/1 mask: touching squares merge


def test_mask_shape_mismatch_names_both_files(tmp_path):
    root = make_folder(tmp_path, ("a",))
    tifffile.imwrite(root / "masks" / "a.tif", np.zeros((10, 10), np.uint8))
    pair = find_labeled_pairs(root)[0]
    with pytest.raises(DataError, match=r"a\.tif.*images/a\.png"):
        load_labeled(pair)


def test_explicit_crop_overrides_detection(tmp_path):
    root = make_folder(tmp_path, ("a",), bar_rows=20)
    image, instance, _ = load_labeled(find_labeled_pairs(root)[0], crop_bottom_px=5)
    assert image.shape == instance.shape == (95, 60)


@pytest.mark.real_data
def test_real_labeled_pairs():
    folder = REAL / "labeled"
    if not folder.is_dir():
        pytest.skip(f"real data not found at {REAL}")
    pairs = find_labeled_pairs(folder)
    assert len(pairs) == 5
    for pair in pairs:
        image, instance, classes = load_labeled(pair)
        assert image.shape == instance.shape == classes.shape == (712, 1024), pair.image_path
        assert set(np.unique(classes).tolist()) == {0, 1, 2}, pair.mask_path
        assert instance.max() > 10, pair.mask_path
        # particles are brighter than background in InLens SE images
        assert image[classes == 1].mean() > image[classes == 0].mean() + 0.1
