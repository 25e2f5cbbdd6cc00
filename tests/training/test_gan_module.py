"""GANModule: one step updates both networks; same seed gives the same first-epoch losses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from gan_fixtures import small_material, write_patches
from lightning_checkpoints import save_module_checkpoint

from diffrendergan.data.datasets import RealPatchDataModule
from diffrendergan.scene.sampler import Scenes
from diffrendergan.training.gan_module import GANModule

ROOT = Path(__file__).resolve().parents[2]


def _fit(tmp: Path, seed: int) -> dict[str, float]:
    pl.seed_everything(seed, workers=True, verbose=False)
    dm = RealPatchDataModule(write_patches(tmp / "patches"), batch_size=2, val_fraction=0.25, seed=seed)
    module = GANModule(small_material(), {}, {"layout_pool": 4, "n_eval": 2}, seed=seed)
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(module, datamodule=dm)
    m = trainer.callback_metrics
    return {k: float(m[k]) for k in ("train/loss_g_epoch", "train/loss_d_epoch", "val/swd")}


def test_training_step_updates_both_networks(tmp_path: Path) -> None:
    module = GANModule(small_material(), {}, {"layout_pool": 4, "n_eval": 2})
    g0 = [p.detach().clone() for p in module.generator.parameters()]
    d0 = [p.detach().clone() for p in module.discriminator.parameters()]
    trainer = pl.Trainer(
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        accelerator="cpu",
    )
    real = torch.rand(4, 1, 64, 64)
    trainer.fit(module, torch.utils.data.DataLoader(real, batch_size=2))
    assert trainer.global_step == 2  # one G and one D step per batch
    # Adam's first step moves every parameter with a gradient by its learning rate (m / sqrt(v) =
    # sign(g) after bias correction): exactly one step each, with each network's own rate.
    for before, net, lr in ((g0, module.generator.net, 2e-4), (d0, module.discriminator, 1e-4)):
        after = list(net.parameters())
        step = torch.cat([(a - b).abs().flatten() for a, b in zip(after, before[: len(after)])])
        moved = step[step > 0]
        assert moved.numel() > 0.5 * step.numel()
        assert torch.allclose(moved.median(), torch.tensor(lr), rtol=0.05)
        assert moved.max() <= lr * 1.05


def test_same_seed_same_first_epoch_losses(tmp_path: Path) -> None:
    a = _fit(tmp_path / "a", seed=3)
    b = _fit(tmp_path / "b", seed=3)
    assert a == b
    assert all(np.isfinite(v) for v in a.values())


def test_checkpoint_roundtrip_rebuilds_generator(tmp_path: Path) -> None:
    module = GANModule(small_material(), {}, {"layout_pool": 4, "n_eval": 2})
    trainer = pl.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        accelerator="cpu",
    )
    trainer.fit(module, torch.utils.data.DataLoader(torch.rand(2, 1, 64, 64), batch_size=2))
    path = tmp_path / "g.ckpt"
    trainer.save_checkpoint(path)
    loaded = GANModule.load_from_checkpoint(path, map_location="cpu")
    layouts = module.generator.layouts([1, 2])
    module.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.allclose(module.generator.unit_params(layouts), loaded.generator.unit_params(layouts))


# The flat hyperparameters an experiments.run checkpoint held before the model group was split
# into built parts (commit c37cbf8 and earlier).
FLAT_HPARAMS = {
    "param_net": "deepsets", "hidden": 32, "layers": 2, "dropout": 0.1, "max_particles": None,
    "loss": "hinge", "lr_g": 3e-4, "lr_d": 2e-4, "betas": (0.4, 0.99), "d_base_filters": 16,
    "d_layers": 2, "layout_pool": 5, "n_eval": 3, "seed": 7, "learn_topography": False,
    "learn_count": False, "lr_topo": 0.01, "topo_init": None, "topo_betas": (0.9, 0.999),
    "topo_warmup_epochs": 0, "topo_centre_noise": True, "topo_average_from": 0.5,
    "ema_decay": 0.9, "lr_decay": "linear", "lr_end_factor": 0.2, "particle_weight": 2.0,
    "d_norm": "spectral",
}  # fmt: skip


def test_a_checkpoint_with_the_old_flat_hyperparameters_loads(tmp_path: Path) -> None:
    from diffrendergan.training.load import load_gan_module, model_from_flat_hparams

    model = model_from_flat_hparams(FLAT_HPARAMS)
    module = GANModule(small_material(), {}, model, seed=7)
    path = save_module_checkpoint(module, tmp_path / "new.ckpt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"] = {"material": small_material(), "renderer": {}, **FLAT_HPARAMS}
    torch.save(ckpt, tmp_path / "old.ckpt")
    loaded = load_gan_module(tmp_path / "old.ckpt")
    spec = loaded.spec
    assert (spec.generator.net, spec.generator.hidden, spec.loss.name) == ("deepsets", 32, "hinge")
    assert (spec.optimizer_g.lr, spec.optimizer_d.lr, spec.optimizer_d.betas) == (3e-4, 2e-4, [0.4, 0.99])
    assert (spec.discriminator.base_filters, spec.discriminator.norm, spec.particle_weight) == (
        16,
        "spectral",
        2.0,
    )
    assert (loaded.hparams.seed, spec.layout_pool, spec.lr_end_factor) == (7, 5, 0.2)
    layouts = module.generator.layouts([1, 2])
    module.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(module.generator.unit_params(layouts), loaded.generator.unit_params(layouts))


def test_the_config_names_the_classes_it_builds() -> None:
    """A `_target_` swap in the model config changes the built part, no code edit."""
    model = {"optimizer_d": {"_target_": "torch.optim.AdamW", "lr": 5e-4}, "loss": {"name": "ns"}}
    module = GANModule(small_material(), {}, model)
    _, opt_d = module.configure_optimizers()[0]
    assert isinstance(opt_d, torch.optim.AdamW) and opt_d.defaults["lr"] == 5e-4
    assert module.g_loss_fn.__name__ == "ns_g"


def test_an_old_model_key_is_one_line_naming_the_new_one() -> None:
    from diffrendergan.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^model\.lr_g: renamed to model\.optimizer_g\.lr"):
        GANModule(small_material(), {}, {"lr_g": 1e-3})


def test_ema_averages_the_weights_and_predicts_in_eval_mode() -> None:
    module = GANModule(small_material(), {}, {"layout_pool": 4, "n_eval": 2, "ema_decay": 0.5})
    g = module.generator
    weights = [p for p in g.net.parameters()]
    with torch.no_grad():
        for p in weights:
            p.fill_(0.001)
        g.update_ema()  # the first update copies
        for p in weights:
            p.fill_(-0.003)
        g.update_ema()  # then d * 0.001 + (1 - d) * -0.003 with the warm-up's d = min(0.5, 2 / 11)
    d = 2.0 / 11.0
    expected = d * 0.001 + (1 - d) * -0.003
    assert all(torch.allclose(p, torch.full_like(p, expected)) for p in g.net_ema.module.parameters())
    layouts = g.layouts([1, 2])
    g.train()
    live = g.unit_params(layouts)
    g.eval()
    averaged = g.unit_params(layouts)
    assert g.predictor is g.net_ema.module and not torch.allclose(live, averaged)
    assert not any(p.requires_grad for p in g.net_ema.parameters())  # no optimizer touches it


def test_checkpoint_roundtrip_keeps_the_average(tmp_path: Path) -> None:
    module = GANModule(small_material(), {}, {"layout_pool": 4, "n_eval": 2, "ema_decay": 0.9})
    trainer = pl.Trainer(
        max_steps=6, logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu"
    )
    trainer.fit(module, torch.utils.data.DataLoader(torch.rand(6, 1, 64, 64), batch_size=2))
    assert int(module.generator.net_ema.n_averaged) == 3  # one update per G step
    path = tmp_path / "g.ckpt"
    trainer.save_checkpoint(path)
    loaded = GANModule.load_from_checkpoint(path, map_location="cpu")
    layouts = module.generator.layouts([1, 2])
    module.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.allclose(module.generator.unit_params(layouts), loaded.generator.unit_params(layouts))
        module.generator.train()
        assert not torch.allclose(
            module.generator.unit_params(layouts), loaded.generator.unit_params(layouts)
        )


def test_linear_lr_decay_reaches_the_end_factor() -> None:
    module = GANModule(
        small_material(), {}, {"layout_pool": 4, "n_eval": 2, "lr_decay": "linear", "lr_end_factor": 0.1}
    )
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu"
    )
    trainer.fit(module, torch.utils.data.DataLoader(torch.rand(8, 1, 64, 64), batch_size=2))  # 4 batches
    opt_g, opt_d = module.optimizers()
    # after the 4th (last) batch the schedules have taken 4 steps: factor 1 - 0.9 * 4 / 3 -> clipped at 0.1
    assert opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.1)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.1)


@pytest.mark.parametrize("decay_lr", [False, True])
def test_the_size_law_keeps_its_step_unless_asked(decay_lr: bool) -> None:
    model = {"layout_pool": 0, "n_eval": 2, "lr_decay": "linear", "lr_end_factor": 0.1}
    model["topography"] = {"enabled": True, "lr": 0.05, "decay_lr": decay_lr}
    module = GANModule(small_material(), {"faces_per_pixel": 8}, model)
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu"
    )
    trainer.fit(module, torch.utils.data.DataLoader(torch.rand(8, 1, 64, 64), batch_size=2))  # 4 batches
    networks, law = module.optimizers()[0].param_groups
    assert networks["lr"] == pytest.approx(2e-4 * 0.1)
    assert law["lr"] == pytest.approx(0.05 * (0.1 if decay_lr else 1.0))


def test_particle_weighted_generator_loss() -> None:
    from diffrendergan.models.gan_losses import lsgan_g

    logits = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])  # only the first patch is judged fake
    assert float(lsgan_g(logits)) == pytest.approx(0.25)
    weight = torch.tensor([[[[3.0, 1.0], [1.0, 1.0]]]])  # that patch holds particles
    assert float(lsgan_g(logits, weight)) == pytest.approx(3.0 / 6.0)
    module = GANModule(small_material(), {}, {"layout_pool": 4, "n_eval": 2, "particle_weight": 4.0})
    layouts = module.generator.layouts([1, 2])
    w = module._patch_weight(Scenes(layouts), torch.Size((8, 8)))
    coverage = module.generator.renderer.gbuffer(layouts).particle.mean((1, 2, 3))
    assert w.shape == (2, 1, 8, 8) and w.min() >= 1.0
    assert torch.allclose(w.mean((1, 2, 3)), 1.0 + 4.0 * coverage, atol=1e-5)  # area-weighted
