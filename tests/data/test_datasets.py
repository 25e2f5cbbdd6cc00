"""Datasets and data modules: shapes, ranges, split determinism and joint augmentation."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffrendergan.data.datasets import (
    RealPatchDataModule,
    RealPatchDataset,
    SyntheticFolderDataset,
    real_augmentations,
)
from diffrendergan.data.patches import PatchOptions, prepare_patches
from diffrendergan.errors import ConfigError, DataError
from diffrendergan.schemas import check_data


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


def test_held_out_patches_follow_split_seed_not_the_run_seed(tmp_path):
    """Runs of different seeds are compared on one held-out set (their val/swd share a reference)."""
    write_patches(tmp_path / "patches", n=20)

    def held_out(seed: int, split_seed: int) -> list:
        dm = RealPatchDataModule(tmp_path / "patches", val_fraction=0.2, seed=seed, split_seed=split_seed)
        dm.setup("fit")
        return dm.val_set.files

    assert held_out(0, 0) == held_out(1, 0) == held_out(2, 0)
    assert held_out(0, 0) != held_out(0, 3)
    with pytest.raises(ConfigError, match=r"data\.split_seed: expected >= 0"):
        check_data({"split_seed": -1})


def test_real_datamodule_reads_prepare_output_folder(tmp_path):
    rng = np.random.default_rng(0)
    img = np.full((160, 160), 40, np.uint8)
    yy, xx = np.mgrid[:160, :160]
    for cy, cx in rng.uniform(10, 150, (12, 2)):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = 200
    (tmp_path / "raw").mkdir()
    Image.fromarray(img).save(tmp_path / "raw" / "s.png")
    patches = prepare_patches(tmp_path / "raw", tmp_path / "out", PatchOptions(size=64, stride=32))
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
