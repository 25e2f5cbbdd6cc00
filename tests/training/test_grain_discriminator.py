"""The grain discriminator: windows centred on grains, found alike on real and rendered images, and
a second critic trained on them alongside the patch discriminator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from gan_fixtures import small_material, write_patches
from lightning_checkpoints import save_module_checkpoint
from skimage.filters import threshold_otsu

from diffrendergan.data.datasets import RealPatchDataModule, RealPatchDataset
from diffrendergan.errors import ConfigError
from diffrendergan.models.grain_windows import grain_windows
from diffrendergan.training.gan_module import GANModule


def _discs(centres: list[tuple[int, int, int]], size: int = 96) -> torch.Tensor:
    """(1, 1, size, size) film at 0.05 with bright discs (cy, cx, radius) at 0.6."""
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), 0.05, np.float32)
    for cy, cx, r in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 0.6
    return torch.from_numpy(img)[None, None]


def test_windows_are_centred_on_grains_and_skip_specks() -> None:
    img = _discs([(30, 40, 10), (80, 80, 3)])  # a grain of ~314 px and a speck of ~29 px
    windows = grain_windows(img, threshold=0.3, window=32, min_area_px=150)
    assert windows.shape == (1, 1, 32, 32)
    assert torch.equal(windows[0, 0], img[0, 0, 14:46, 24:56])  # centred on (30, 40)


def test_windows_stay_inside_the_image_and_follow_the_limit() -> None:
    img = _discs([(5, 5, 9), (60, 60, 12), (40, 20, 10)])
    windows = grain_windows(img, threshold=0.3, window=32, min_area_px=150, per_image=2)
    assert windows.shape == (2, 1, 32, 32)
    assert torch.equal(windows[0, 0], img[0, 0, 44:76, 44:76])  # the largest grain first
    corner = grain_windows(_discs([(5, 5, 9)]), threshold=0.3, window=32, min_area_px=150)
    assert torch.equal(corner[0, 0], _discs([(5, 5, 9)])[0, 0, :32, :32])  # clamped, not padded


def test_windows_carry_gradients_to_the_image_and_none_is_an_empty_batch() -> None:
    img = _discs([(30, 40, 10)]).requires_grad_(True)
    grain_windows(img, threshold=0.3, window=32).sum().backward()
    assert img.grad.sum() == 32 * 32
    empty = grain_windows(_discs([]), threshold=0.3, window=32)
    assert empty.shape == (0, 1, 32, 32)


def test_the_grain_critic_learns_beside_the_patch_critic_and_keeps_its_threshold(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    patches = write_patches(tmp_path / "patches")  # a bright 20 x 20 square on noise: one grain each
    dm = RealPatchDataModule(patches, batch_size=2, val_fraction=0.25, seed=0)
    model = {"layout_pool": 4, "n_eval": 2, "grain_discriminator": {"weight": 1.0, "window": 32}}
    module = GANModule(small_material(), {}, model)
    d0 = [p.detach().clone() for p in module.grain_discriminator.parameters()]
    trainer = pl.Trainer(
        max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu"
    )
    trainer.fit(module, datamodule=dm)
    train = RealPatchDataset(dm.train_set.files)
    pixels = torch.stack([train[i] for i in range(len(train))]).numpy().ravel()
    assert float(module.grain_threshold) == pytest.approx(threshold_otsu(pixels))
    moved = [not torch.equal(a, b) for a, b in zip(d0, module.grain_discriminator.parameters())]
    assert all(moved)  # every step had real grains, and each side's windows reach the critic
    from diffrendergan.training.load import load_gan_module

    loaded = load_gan_module(save_module_checkpoint(module, tmp_path / "grain.ckpt"))
    assert float(loaded.grain_threshold) == float(module.grain_threshold)


def test_a_negative_grain_weight_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^model\.grain_discriminator\.weight: expected >= 0"):
        GANModule(small_material(), {}, {"grain_discriminator": {"weight": -1.0}})


def test_a_window_larger_than_the_renders_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^model\.grain_discriminator\.window: must be at most"):
        GANModule(small_material(64), {}, {"grain_discriminator": {"weight": 1.0, "window": 96}})
