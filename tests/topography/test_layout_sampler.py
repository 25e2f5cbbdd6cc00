"""Layout samplers: a fixed law and a learnable law behind one interface, one GAN code path."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from gan_fixtures import small_material

from diffrendergan.config import RendererConfig, material_from_dict
from diffrendergan.data.scenes import SceneBatch
from diffrendergan.models.generator import Generator
from diffrendergan.models.topography import Topography
from diffrendergan.scene.layout import sample_layout
from diffrendergan.scene.sampler import FixedLaw, Scenes
from diffrendergan.training.gan_module import GANModule


def test_fixed_law_takes_the_loaders_scenes_or_draws_them() -> None:
    mat = material_from_dict(small_material())
    law = FixedLaw(mat)
    drawn = law.sample(SceneBatch([3, 4]))
    assert [lay.n for lay in drawn.layouts] == [sample_layout(mat, s).n for s in (3, 4)]
    assert torch.equal(drawn.layouts[0].xyzs, sample_layout(mat, 3).xyzs)
    assert law.layouts([3])[0] is drawn.layouts[0]  # memoised: a pool is drawn once
    given = SceneBatch([3], layouts=[sample_layout(mat, 9)])
    assert law.sample(given, learn=True).layouts is given.layouts  # a fixed law never learns
    assert not drawn.differentiable and law.summary() == {} and law.worker_material is mat


def test_learnable_law_gives_differentiable_scenes_only_while_learning() -> None:
    mat = material_from_dict(small_material())
    topo = Topography(mat, learn_count=True)
    frozen = topo.sample(SceneBatch([1, 2]), learn=False)
    assert not frozen.differentiable and frozen.gbuffer is None
    scenes = topo.sample(SceneBatch([1, 2]), learn=True, generator=torch.Generator().manual_seed(0))
    assert scenes.differentiable and topo.worker_material is None
    for lay, size, presence in zip(scenes.layouts, scenes.sizes, scenes.presence):
        assert torch.allclose(size.detach(), lay.xyzs[:, 3], rtol=1e-5)
        assert size.requires_grad and presence.requires_grad
        assert ((presence > 0) & (presence < 1)).all()
    topo.after_step(learn=False, tail=False)
    assert int(topo.ema_steps) == 0  # the warm-up leaves the averages alone
    topo.after_step(learn=True, tail=True)
    assert int(topo.ema_steps) == 1 and int(topo.tail_steps) == 1


def test_generator_renders_both_kinds_of_scenes() -> None:
    mat = material_from_dict(small_material())
    g = Generator(mat, RendererConfig(faces_per_pixel=8, geometry_grad=True))
    g.eval()
    hard = g.render(Scenes(g.layouts([5])), torch.Generator().manual_seed(0)).image
    assert torch.equal(hard, g(g.layouts([5]), torch.Generator().manual_seed(0)).image)
    topo = Topography(mat, learn_count=False)
    soft = g.render(topo.scenes(topo.layouts([5])), torch.Generator().manual_seed(0)).image
    soft.mean().backward()
    assert topo.loc.grad is not None and float(topo.loc.grad.abs()) > 0


def test_gan_step_draws_from_the_modules_sampler() -> None:
    """The fixed law's layouts and the learnable law's reach training_step through one call."""
    seen: list[Scenes] = []
    for model in ({"layout_pool": 4}, {"layout_pool": 0, "topography": {"enabled": True}}):
        module = GANModule(small_material(), {"faces_per_pixel": 8}, {"n_eval": 2, **model})
        sampler = module.layout_sampler
        original = sampler.sample

        def spy(batch, learn, generator=None, _original=original):
            seen.append(_original(batch, learn, generator))
            return seen[-1]

        sampler.sample = spy  # type: ignore[method-assign]
        trainer = pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False)
        trainer.fit(module, torch.utils.data.DataLoader(torch.rand(2, 1, 64, 64), batch_size=2))
    assert [s.differentiable for s in seen] == [False, True]
    assert all(len(s.layouts) == 2 for s in seen)
