"""Datasets and data modules: shapes, ranges, split determinism and joint augmentation."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from diffrendergan.data.datasets import (
    LabeledDataModule,
    LabeledDataset,
    RealPatchDataModule,
    RealPatchDataset,
    SyntheticFolderDataset,
    real_augmentations,
)
from diffrendergan.data.labeled import find_labeled_pairs
from diffrendergan.data.patches import prepare_patches
from diffrendergan.errors import DataError

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "ruehle2021_tio2_sem"


def write_patches(folder: Path, n: int = 10, size: int = 32) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        img = np.zeros((size, size), np.uint8)
        img[: size // 2, : size // 4] = 255  # asymmetric: flips are visible
        img[-1, -1] = i
        files.append(folder / f"p{i:02d}.png")
        Image.fromarray(img).save(files[-1])
    return files


def test_real_patch_dataset_items(tmp_path):
    files = write_patches(tmp_path / "patches")
    ds = RealPatchDataset(tmp_path / "patches")
    x = ds[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert len(RealPatchDataset(files[:3])) == 3
    aug = RealPatchDataset(files[:1], transform=real_augmentations(0.2))
    outs = {tuple(aug[0].flatten().round(decimals=3).tolist()) for _ in range(30)}
    assert len(outs) > 1  # augmentations change the patch
    assert all(0.0 <= v <= 1.0 for o in outs for v in o)


def test_augmentations_are_the_dihedral_group_plus_optional_jitter():
    names = [type(t).__name__ for t in real_augmentations().transforms]
    assert names == ["HorizontalFlip", "VerticalFlip", "RandomRotate90", "Transpose"]
    assert type(real_augmentations(0.1).transforms[-1]).__name__ == "RandomBrightnessContrast"


def test_real_datamodule_split_is_deterministic_and_val_unaugmented(tmp_path):
    write_patches(tmp_path / "patches", n=10)
    dm = RealPatchDataModule(tmp_path / "patches", batch_size=3, val_fraction=0.2, seed=7)
    dm.setup("fit")
    dm2 = RealPatchDataModule(tmp_path / "patches", batch_size=3, val_fraction=0.2, seed=7)
    dm2.setup("fit")
    assert dm.val_set.files == dm2.val_set.files and len(dm.val_set) == 2
    assert not set(dm.val_set.files) & set(dm.train_set.files)
    assert len(dm.train_set) + len(dm.val_set) == 10
    assert dm.val_set.transform is None and dm.train_set.transform is not None
    batches = list(dm.train_dataloader())
    assert [b.shape[0] for b in batches] == [3, 3, 2]  # drop_last=False
    val, ids = next(iter(dm.val_dataloader()))  # validation patches come with their ids
    raw = torch.stack([RealPatchDataset([f])[0] for f in dm.val_set.files[:2]])
    torch.testing.assert_close(val, raw)
    assert ids.tolist() == [0, 1]


def test_real_datamodule_reads_prepare_output_folder(tmp_path):
    rng = np.random.default_rng(0)
    img = np.full((160, 160), 40, np.uint8)
    yy, xx = np.mgrid[:160, :160]
    for cy, cx in rng.uniform(10, 150, (12, 2)):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = 200
    (tmp_path / "raw").mkdir()
    Image.fromarray(img).save(tmp_path / "raw" / "s.png")
    patches = prepare_patches(tmp_path / "raw", tmp_path / "out", size=64, stride=32)
    (tmp_path / "out" / "patches" / "stale_9_9.png").write_bytes(b"")  # ignored via manifest
    dm = RealPatchDataModule(tmp_path / "out", batch_size=4, val_fraction=0.0)
    dm.setup("fit")
    assert len(dm.train_set) == len(patches)
    assert dm.val_dataloader() == []


def test_real_datamodule_empty_folder_is_clear(tmp_path):
    (tmp_path / "nothing").mkdir()
    dm = RealPatchDataModule(tmp_path / "nothing")
    with pytest.raises(DataError, match=r"nothing.*experiments\.prepare"):
        dm.setup("fit")


def make_labeled(root: Path, n: int = 2, h: int = 300, w: int = 280) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    for i in range(n):
        mask = np.zeros((h, w), np.uint8)
        for cy, cx in rng.uniform(20, min(h, w) - 20, (15, 2)):
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < 100] = 255
        img = np.clip(50 + 150 * (mask > 0) + rng.normal(0, 5, (h, w)), 0, 255).astype(np.uint8)
        tifffile.imwrite(root / "images" / f"im{i}.tif", img)
        Image.fromarray(mask).save(root / "masks" / f"im{i}.png")
    return root


def test_labeled_dataset_train_crops_are_joint(tmp_path):
    pairs = find_labeled_pairs(make_labeled(tmp_path / "lab"))
    ds = LabeledDataset(pairs, size=128, train=True, samples_per_image=3)
    assert len(ds) == 6
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (1, 128, 128) and x.dtype == torch.float32
        assert y.shape == (128, 128) and y.dtype == torch.long
        assert set(y.unique().tolist()) <= {0, 1, 2}
        if (y == 1).any() and (y == 0).any():  # image and mask moved together
            assert x[0][y == 1].mean() > x[0][y == 0].mean() + 0.3


def test_labeled_dataset_eval_returns_whole_images(tmp_path):
    pairs = find_labeled_pairs(make_labeled(tmp_path / "lab"))
    ds = LabeledDataset(pairs, train=False)
    x, y = ds[1]
    assert x.shape == (1, 300, 280) and y.shape == (300, 280)


def test_labeled_datamodule_optional_splits(tmp_path):
    root = make_labeled(tmp_path / "lab")
    dm = LabeledDataModule(train_dir=root, val_dir=None, test_dir=root, size=64, batch_size=2)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 1, 64, 64) and y.shape == (2, 64, 64)
    assert dm.val_dataloader() == []
    xt, yt = next(iter(dm.test_dataloader()))
    assert xt.shape == (1, 1, 300, 280) and yt.shape == (1, 300, 280)


def test_labeled_dataset_image_smaller_than_crop(tmp_path):
    pairs = find_labeled_pairs(make_labeled(tmp_path / "lab", n=1, h=100, w=100))
    with pytest.raises(DataError, match=r"im0\.tif.*smaller"):
        LabeledDataset(pairs, size=128, train=True)[0]


def test_synthetic_folder_dataset(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cls = np.zeros((48, 64), np.uint8)
    cls[10:20, 10:20], cls[10:20, 20] = 1, 2
    for s in ("s0", "s1"):
        Image.fromarray((cls * 100).astype(np.uint8)).save(tmp_path / "images" / f"{s}.png")
        Image.fromarray(cls).save(tmp_path / "masks" / f"{s}.png")
    ds = SyntheticFolderDataset(tmp_path)
    assert len(ds) == 2
    x, y = ds[0]
    assert x.shape == (1, 48, 64) and y.shape == (48, 64) and y.dtype == torch.long
    assert torch.equal(y, torch.from_numpy(cls).long())
    Image.fromarray(np.full((48, 64), 7, np.uint8)).save(tmp_path / "masks" / "s1.png")
    with pytest.raises(DataError, match=r"s1\.png.*0, 1, 2"):
        ds[1]


@pytest.mark.real_data
def test_real_labeled_training_crops():
    if not (REAL / "labeled").is_dir():
        pytest.skip(f"real data not found at {REAL}")
    ds = LabeledDataset(
        find_labeled_pairs(REAL / "labeled")[:1], size=256, train=True, samples_per_image=8, seed=0
    )
    crops = [ds[i] for i in range(len(ds))]
    assert all(x.shape == (1, 256, 256) and y.shape == (256, 256) for x, y in crops)
    # Particles cover part of the micrograph only: some random crops must contain them.
    assert any((y == 1).any() for _, y in crops)
