"""The neural shader: identity at start, local (cannot move a grain), learned by the generator's
optimizer, averaged for evaluation, kept in checkpoints and used by the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from gan_fixtures import small_material, write_patches
from lightning_checkpoints import save_module_checkpoint
from PIL import Image

from diffrendergan.data.datasets import RealPatchDataModule
from diffrendergan.errors import ConfigError
from diffrendergan.export.writer import ExportOptions, export_dataset
from diffrendergan.models.neural_shader import FEATURES, NeuralShader, shading_features
from diffrendergan.training.gan_module import GANModule

NEURAL = {"layout_pool": 4, "n_eval": 2, "generator": {"neural_shader": {"channels": 8}}}


def _module(model: dict) -> GANModule:
    torch.manual_seed(0)
    return GANModule(small_material(), {}, model)


def _gbuffer_and_unit(module: GANModule):
    """The G-buffer of two layouts and the untrained network's unit parameters (B, K) for them."""
    g = module.generator
    layouts = g.layouts([11, 12])
    return g.renderer.gbuffer(layouts), g.unit_params(layouts).detach()


def test_it_starts_as_the_physics_shading() -> None:
    plain, neural = _module({"layout_pool": 4}), _module(NEURAL)
    assert neural.generator.refine is not None and plain.generator.refine is None
    gb, unit = _gbuffer_and_unit(plain)
    a = plain.generator.renderer.shade(gb, unit, noise=False).image
    b = neural.generator.renderer.shade(gb, unit, noise=False, refine=neural.generator.refine).image
    assert torch.equal(a, b)
    assert shading_features(gb, a).shape == (2, FEATURES, 64, 64)


def test_its_receptive_field_is_a_few_pixels() -> None:
    """A change of the G-buffer at one pixel changes the output only within the receptive field."""
    torch.manual_seed(0)
    shader = NeuralShader(channels=4, layers=3)
    torch.nn.init.normal_(shader.head.weight)  # leave the identity start
    gb, _ = _gbuffer_and_unit(_module({"layout_pool": 4}))
    signal = torch.rand(2, 1, 64, 64, requires_grad=True)
    shader(gb, signal)[0, 0, 32, 32].backward()
    reach = torch.nonzero(signal.grad[0, 0])
    assert shader.receptive_field_px == 7
    assert reach.numel() and int((reach - 32).abs().max()) == 3  # 7 x 7 around the pixel, no more


def test_the_generator_loss_reaches_it_and_it_learns_with_the_generator(tmp_path: Path) -> None:
    pl.seed_everything(0, verbose=False)
    dm = RealPatchDataModule(write_patches(tmp_path / "patches"), batch_size=2, val_fraction=0.25, seed=0)
    module = _module({**NEURAL, "ema_decay": 0.9})
    head0 = module.generator.neural_shader.head.weight.detach().clone()
    trainer = pl.Trainer(
        max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu"
    )
    trainer.fit(module, datamodule=dm)
    g = module.generator
    assert not torch.equal(g.neural_shader.head.weight, head0)  # optimised by optimizer_g
    g.eval()
    assert g.refine is g.neural_shader_ema.module  # evaluation and export shade with the average
    assert not torch.equal(g.neural_shader_ema.module.head.weight, g.neural_shader.head.weight)
    from diffrendergan.training.load import load_gan_module

    loaded = load_gan_module(save_module_checkpoint(module, tmp_path / "neural.ckpt")).generator
    for a, b in zip(loaded.neural_shader_ema.parameters(), g.neural_shader_ema.parameters()):
        assert torch.equal(a, b)


def test_the_export_shades_with_it_and_an_image_ignores_its_batch_neighbours(tmp_path: Path) -> None:
    module = _module(NEURAL)
    g = module.generator.eval()
    torch.nn.init.normal_(g.neural_shader.head.weight, std=0.5)  # a trained-looking correction
    for bs in (1, 3):
        export_dataset(g, tmp_path / f"bs{bs}", 3, ExportOptions(seed=2, batch_size=bs, progress=False))
    one, three = ((tmp_path / f"bs{bs}" / "images" / "000002.png").read_bytes() for bs in (1, 3))
    assert one == three
    torch.nn.init.zeros_(g.neural_shader.head.weight)
    export_dataset(g, tmp_path / "identity", 3, ExportOptions(seed=2, batch_size=3, progress=False))
    shaded, identity = (
        np.asarray(Image.open(tmp_path / d / "images" / "000002.png")) for d in ("bs3", "identity")
    )
    assert np.abs(shaded.astype(int) - identity.astype(int)).max() > 0
    masks = [(tmp_path / d / "masks" / "000002.png").read_bytes() for d in ("bs3", "identity")]
    assert masks[0] == masks[1]  # geometry untouched: the masks are the same


def test_the_uniform_baseline_is_physics_shading_only(tmp_path: Path) -> None:
    """``compare`` renders the uniform row with the checkpoint's generator: a trained neural shader
    must not enter the no-GAN baseline."""
    g = _module(NEURAL).generator.eval()
    export_dataset(g, tmp_path / "identity", 2, ExportOptions(baseline=True, progress=False))
    torch.nn.init.normal_(g.neural_shader.head.weight, std=0.5)
    export_dataset(g, tmp_path / "trained", 2, ExportOptions(baseline=True, progress=False))
    images = [(tmp_path / d / "images" / "000001.png").read_bytes() for d in ("identity", "trained")]
    assert images[0] == images[1]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("channels", -1, "expected >= 0"),
        ("layers", 0, "expected >= 1"),
        ("max_log_gain", 0.0, "expected a positive"),
    ],
)
def test_bad_settings_are_one_line(key: str, value: float, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^model\.generator\.neural_shader\.{key}: {message}"):
        GANModule(small_material(), {}, {"generator": {"neural_shader": {key: value}}})


def test_it_shades_the_soft_renders_of_a_learned_size_law() -> None:
    """With topography learning (soft silhouettes) the same network shades the particle and the
    substrate signals, and both it and the law learn from the generator's loss."""
    model = {**NEURAL, "topography": {"enabled": True, "lr": 0.05, "init": {"median_nm": 30.0}}}
    torch.manual_seed(0)
    module = GANModule(small_material(), {"faces_per_pixel": 8}, model)
    head0 = module.generator.neural_shader.head.weight.detach().clone()
    loc0 = float(module.topography.loc)
    trainer = pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(module, torch.utils.data.DataLoader(torch.rand(6, 1, 64, 64), batch_size=2))
    assert not torch.equal(module.generator.neural_shader.head.weight, head0)
    assert float(module.topography.loc) != loc0
