"""Quantile matching: quantiles of grey levels and band-pass texture, a calibrated start that moves
the renders towards real patches, a training run that calibrates once (not again on resume), and
the generator-loss term."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from gan_fixtures import small_material, write_patches
from torch.utils.data import DataLoader

from diffrendergan.config import material_from_dict, renderer_from_dict
from diffrendergan.data.datasets import RealPatchDataModule
from diffrendergan.errors import ConfigError
from diffrendergan.models.generator import Generator
from diffrendergan.models.quantile_matching import (
    band_quantiles,
    calibrate_start,
    quantile_gap,
    quantile_spread,
)
from diffrendergan.schemas import check_model
from diffrendergan.training.gan_module import GANModule


def test_quantiles_tell_brightness_and_noise_apart() -> None:
    gen = torch.Generator().manual_seed(0)
    flat = 0.3 + 0.02 * torch.randn(4, 1, 64, 64, generator=gen)
    q = band_quantiles(flat)
    assert q.shape == (4, 128)
    scale = quantile_spread(q)
    assert quantile_gap(q, q, scale) == 0
    brighter = quantile_gap(band_quantiles(flat + 0.1), q, scale)
    noisier = quantile_gap(band_quantiles(0.3 + 0.06 * torch.randn(4, 1, 64, 64, generator=gen)), q, scale)
    assert brighter > 0.5 and noisier > 0.5
    # brightness moves the grey levels only, not the band-pass rows
    per_row = (band_quantiles(flat + 0.1) - q).abs().mean(1)
    assert per_row[0] > 0.09 and per_row[1:].max() < 1e-5


def test_the_fit_moves_renders_towards_real_ones() -> None:
    torch.manual_seed(0)
    generator = Generator(material_from_dict(small_material()), renderer_from_dict({}))
    space = generator.space
    target = torch.full((1, space.dim), 0.15)  # every parameter near its range's low end
    layouts = generator.layouts(list(range(8)))
    with torch.no_grad():
        gb = generator.renderer.gbuffer(layouts)
        real = generator.renderer.shade(gb, target.expand(8, -1), torch.Generator().manual_seed(1)).image
    start = generator.net(*generator.encode(layouts)).mean(0)
    result = calibrate_start(generator, band_quantiles(real), steps=30, lr=0.1, batch=4)
    assert result.loss_after < 0.6 * result.loss_before
    assert result.unit.shape == (space.dim,)
    assert (result.unit - 0.15).abs().mean() < (start.detach() - 0.15).abs().mean()
    assert all(p.requires_grad for p in generator.net.parameters())  # unfrozen again


def test_the_config_is_checked_once() -> None:
    for name, value in (("start_steps", -1), ("lr", 0), ("batch", 0), ("weight", -1.0)):
        with pytest.raises(ConfigError, match=rf"model\.quantile_matching\.{name}"):
            check_model({"quantile_matching": {name: value}})


def _fit(module: GANModule, patches: Path, steps: int, ckpt: str | None = None) -> pl.Trainer:
    dm = RealPatchDataModule(patches, batch_size=2, val_fraction=0.25, seed=0)
    quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", **quiet)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
    return trainer


def test_a_run_calibrates_once(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    patches = write_patches(tmp_path / "patches")
    quantiles = {"start_steps": 3, "batch": 2}
    model = {"layout_pool": 4, "n_eval": 2, "ema_decay": 0.9, "quantile_matching": quantiles}
    module = GANModule(small_material(), {}, model)
    assert not module.start_calibrated and module.quantile_target.isnan().all()
    before = module.generator.net.head.bias.detach().clone()
    trainer = _fit(module, patches, 1)
    assert module.start_calibrated and module.quantile_target.isfinite().all()
    assert not torch.equal(module.generator.net.head.bias.detach(), before)
    ckpt = tmp_path / "one.ckpt"
    trainer.save_checkpoint(ckpt)
    resumed = GANModule(small_material(), {}, model)
    fitted = module.generator.net.head.bias.detach().clone()
    _fit(resumed, patches, 1, str(ckpt))  # restored before on_fit_start: no second calibration
    assert resumed.start_calibrated
    assert torch.equal(resumed.generator.net.head.bias.detach(), fitted)


def test_the_loss_term_pulls_the_parameters_towards_the_real_quantiles(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    patches = write_patches(tmp_path / "patches")
    model = {"layout_pool": 4, "n_eval": 2, "quantile_matching": {"weight": 1.0}}
    module = GANModule(small_material(), {}, model)
    assert bool(module.start_calibrated)  # no start asked: nothing to calibrate
    _fit(module, patches, 1)
    generator = module.generator.train()
    render = generator(generator.layouts([0, 1])).image
    gap = module._quantile_loss(render)
    gap.backward()
    assert gap > 0 and generator.net.head.bias.grad.abs().sum() > 0
    off = GANModule(small_material(), {}, {"layout_pool": 4, "n_eval": 2})
    assert not off.matches_quantiles and not hasattr(off, "quantile_target")


def test_a_loader_of_patches_alone_measures_the_first_batch() -> None:
    pl.seed_everything(0, verbose=False)
    real = torch.rand(4, 1, 64, 64)
    quantiles = {"start_steps": 3, "weight": 1.0}
    module = GANModule(small_material(), {}, {"layout_pool": 4, "n_eval": 2, "quantile_matching": quantiles})
    quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
    pl.Trainer(max_steps=1, accelerator="cpu", limit_val_batches=0, **quiet).fit(
        module, DataLoader(real, batch_size=2)
    )
    assert module.quantile_target.isfinite().all()  # no files to calibrate the start from
    assert not module.start_calibrated
    assert torch.isfinite(module.generator.net.head.bias).all()
