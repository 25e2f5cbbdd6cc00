"""Profile matching: the grains' intensity by distance to their outline, found alike on real and
rendered images, and the generator's loss term that matches it to the real patches'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from gan_fixtures import small_material, write_patches
from lightning_checkpoints import save_module_checkpoint
from scipy import ndimage as ndi

from diffrendergan.data.datasets import RealPatchDataModule, RealPatchDataset
from diffrendergan.errors import ConfigError
from diffrendergan.models.grain_profile import BANDS, band_map, grain_profile, onset_share, profile_gap
from diffrendergan.training.gan_module import GANModule
from diffrendergan.training.load import load_gan_module


def _model(weight: float) -> dict:
    return {"layout_pool": 4, "n_eval": 2, "profile_matching": {"weight": weight}}


def _grain(size: int = 64, cy: int = 32, cx: int = 32, radius: int = 12) -> np.ndarray:
    """Film at 0.05; a disc whose pixels read 0.6 + 0.01 x min(their distance to the outline, 5)."""
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius * radius
    depth = np.minimum(np.rint(ndi.distance_transform_edt(disc)), 5)
    return np.where(disc, 0.6 + 0.01 * depth, 0.05).astype(np.float32)


def test_a_grain_reads_its_own_profile() -> None:
    image = torch.from_numpy(_grain())[None, None]
    profile, counts = grain_profile(image, threshold=0.3, min_area_px=150)
    expected = [0.61, 0.62, 0.63, 0.64, 0.65, 0.65]  # bands +1..+4, +5..6, +7..
    assert profile.tolist() == pytest.approx(expected, abs=1e-6)
    assert (counts > 0).all()
    assert len(expected) == len(BANDS)


def test_border_cut_grains_and_specks_are_not_grains() -> None:
    cut = _grain(cy=5, cx=32)  # the disc runs off the top edge
    speck = _grain(radius=4)  # ~50 px, below min_area_px
    for image in (cut, speck):
        assert (band_map(image, threshold=0.3, min_area_px=150) == -1).all()
    profile, counts = grain_profile(torch.from_numpy(cut)[None, None], threshold=0.3)
    assert counts.sum() == 0 and profile.abs().sum() == 0


def test_each_pixel_gets_its_bands_share_of_the_gradient() -> None:
    image = torch.from_numpy(_grain())[None, None].requires_grad_(True)
    profile, counts = grain_profile(image, threshold=0.3)
    profile.sum().backward()
    bands = torch.from_numpy(band_map(_grain(), threshold=0.3, min_area_px=150))
    expected = torch.where(bands >= 0, 1.0 / counts[bands.clamp_min(0)], torch.zeros(()))
    assert torch.allclose(image.grad[0, 0], expected)


def test_the_gap_compares_shapes_and_skips_empty_bands() -> None:
    target = torch.tensor([0.7, 0.6, 0.5])
    brighter = target + 0.2  # the same shape, brighter: no gap (the level is the critics')
    assert profile_gap(brighter, target, torch.ones(3)).abs().max() < 1e-6
    rim_lit = torch.tensor([0.9, 0.6, 0.5])
    assert profile_gap(rim_lit, target, torch.ones(3)).tolist() == pytest.approx([0.2, 0.0])
    assert profile_gap(rim_lit, target, torch.tensor([0.0, 5.0, 5.0])).tolist() == pytest.approx([0.0, 0.0])
    assert profile_gap(rim_lit, target, torch.tensor([5.0, 5.0, 0.0])).tolist() == [0.0, 0.0]


def test_the_generator_is_pulled_towards_the_real_profile(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    patches = write_patches(tmp_path / "patches")  # a bright 20 x 20 square on noise: one grain each
    dm = RealPatchDataModule(patches, batch_size=2, val_fraction=0.25, seed=0)
    module = GANModule(small_material(), {}, _model(10.0))
    trainer = pl.Trainer(
        max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu"
    )
    trainer.fit(module, datamodule=dm)
    train = RealPatchDataset(dm.train_set.files)
    real = torch.stack([train[i] for i in range(len(train))])
    expected, counts = grain_profile(real, float(module.grain_threshold))
    assert torch.allclose(module.profile_target, expected)
    assert (counts > 0).all()  # the square's outline, rim band and core were all measured
    assert "train/profile_gap_step" in trainer.callback_metrics
    loaded = load_gan_module(save_module_checkpoint(module, tmp_path / "profile.ckpt"))
    assert torch.equal(loaded.profile_target, module.profile_target)


def test_the_matching_term_reaches_the_generator() -> None:
    module = GANModule(small_material(), {}, _model(1.0))
    module.grain_threshold.fill_(0.4)  # the brighter rim's smoothed outline stays where it was
    module.profile_target.copy_(torch.tensor([0.61, 0.62, 0.63, 0.64, 0.65, 0.65]))
    grain = _grain()
    rim_lit = np.where((grain > 0.3) & (grain < 0.625), grain + 0.1, grain)  # +1, +2 too bright
    fake = torch.from_numpy(rim_lit)[None, None].requires_grad_(True)
    loss, largest = module._profile_loss(fake)
    loss.backward()
    assert loss.item() == pytest.approx(2 * 0.1**2, rel=1e-4) and largest == pytest.approx(0.1, rel=1e-4)
    bands = torch.from_numpy(band_map(rim_lit, threshold=0.4, min_area_px=150))
    assert (fake.grad[0, 0][(bands == 0) | (bands == 1)] > 0).all()  # the rim is pushed darker
    assert (fake.grad[0, 0][bands == 5] < 0).all()  # and the core brighter, towards the real shape
    right = fake.grad[0, 0][(bands == 2) | (bands == 3) | (bands == 4)]  # matching already
    assert right.abs().max() < 1e-3 * fake.grad.abs().max()


def test_during_the_warm_up_the_gap_is_logged_but_not_matched(tmp_path: Path) -> None:
    """The term (a fixed stand-in here; it is measured above) enters the generator's loss only
    after ``warmup_epochs``, and with a ramp from 0; with the generator's learning rate ~0 nothing
    else differs. (One batch: the first of the run.)"""
    losses, patches = {}, write_patches(tmp_path / "patches")
    for warmup, ramp in ((0, 0), (1, 0), (0, 2)):
        pl.seed_everything(0, verbose=False)
        dm = RealPatchDataModule(patches, batch_size=2, val_fraction=0.25, seed=0)
        model = {**_model(10.0), "optimizer_g": {"lr": 1e-12}}
        model["profile_matching"].update(warmup_epochs=warmup, ramp_epochs=ramp)
        module = GANModule(small_material(), {}, model)
        module._profile_loss = lambda fake: (0.5 + 0.0 * fake.sum(), torch.tensor(0.1))
        quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
        trainer = pl.Trainer(max_steps=2, accelerator="cpu", **quiet)
        trainer.fit(module, datamodule=dm)
        assert float(trainer.callback_metrics["train/profile_gap_step"]) == pytest.approx(0.1)
        losses[warmup, ramp] = float(trainer.callback_metrics["train/loss_g_step"])
    assert losses[0, 0] - losses[1, 0] == pytest.approx(0.5, abs=1e-4)
    assert losses[0, 2] == pytest.approx(losses[1, 0], abs=1e-6)  # a ramp starts from nothing


def test_the_matching_weight_rises_after_the_warm_up() -> None:
    assert [onset_share(e, 2, 0) for e in (0.0, 1.99, 2.0, 7.0)] == [0.0, 0.0, 1.0, 1.0]
    ramped = [onset_share(e, 2, 4) for e in (1.5, 2.0, 3.0, 5.0, 6.0, 9.0)]
    assert ramped == pytest.approx([0.0, 0.0, 0.25, 0.75, 1.0, 1.0])


def test_a_negative_profile_weight_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^model\.profile_matching\.weight: expected >= 0"):
        GANModule(small_material(), {}, {"profile_matching": {"weight": -1.0}})
