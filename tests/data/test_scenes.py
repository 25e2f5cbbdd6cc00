"""Training scenes as data: seed plan, epoch continuation, worker G-buffers = in-process ones."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from gan_fixtures import small_material, write_patches

from diffrendergan.config import RendererConfig, material_from_dict
from diffrendergan.data.datasets import RealPatchDataModule
from diffrendergan.data.scenes import SceneDataset, ScenePlan, SceneSampler, SceneStream
from diffrendergan.rendering.renderer import MicroscopyRenderer
from diffrendergan.scene.layout import sample_layout
from diffrendergan.training.gan_module import GANModule

ROOT = Path(__file__).resolve().parents[2]


def test_fresh_seeds_are_unique_over_ranks_and_steps() -> None:
    plan = ScenePlan(seed=3, pool=0)
    seeds = [s for step in range(5) for rank in range(3) for s in plan.seeds(rank, 3, step, 4)]
    assert len(seeds) == len(set(seeds)) == 60


def test_pool_seeds_stay_in_the_pool_and_ranks_differ() -> None:
    plan = ScenePlan(seed=3, pool=6)
    a, b = plan.seeds(0, 2, 7, 64), plan.seeds(1, 2, 7, 64)
    base = 3 * 100_003
    assert {s - base for s in a + b} <= set(range(6)) and a != b
    assert a == plan.seeds(0, 2, 7, 64)  # deterministic


def test_sampler_continues_the_stream_across_epochs() -> None:
    plan = ScenePlan(seed=0, pool=0)
    sampler = SceneSampler(plan, rank=1, world=2, batch_size=2, batches_per_epoch=3)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert len(first) == len(second) == len(sampler) == 3
    assert second == [tuple(plan.seeds(1, 2, k, 2)) for k in (3, 4, 5)]
    assert not set(sum(first, ())) & set(sum(second, ()))


def test_workers_deliver_the_g_buffers_the_renderer_makes_in_process() -> None:
    material = material_from_dict(small_material())
    stream = SceneStream(ScenePlan(seed=1, pool=0), material, RendererConfig())
    in_process = list(stream.loader(n_real=6, batch_size=2))
    from_workers = list(replace(stream, workers=2).loader(n_real=6, batch_size=2))
    reference = MicroscopyRenderer(material, RendererConfig())
    assert len(in_process) == len(from_workers) == 3
    for a, b in zip(in_process, from_workers):
        assert a.seeds == b.seeds
        layouts = [sample_layout(material, s) for s in a.seeds]
        expected = reference.gbuffer(layouts)
        for gb in (a.gbuffer, b.gbuffer):
            assert torch.equal(gb.instance, expected.instance)
            assert torch.allclose(gb.height, expected.height) and torch.allclose(gb.texture, expected.texture)


def test_seeds_only_without_a_law_and_short_batches() -> None:
    batch = SceneDataset(None)[(5, 6, 7)]
    assert batch.seeds == [5, 6, 7] and batch.layouts is None and batch.gbuffer is None
    material = material_from_dict(small_material())
    full = SceneDataset(material, RendererConfig())[(5, 6, 7)]
    head = full.head(2)
    assert head.seeds == [5, 6] and len(head.layouts) == 2 and head.gbuffer.instance.shape[0] == 2


def _fit_losses(patches: Path, scene_workers: int | None) -> list[float]:
    """Generator losses of 2 epochs x 3 batches with fresh layouts; scene_workers None = no scene
    stream (the module draws and rasterizes its scenes itself)."""
    pl.seed_everything(0, workers=True, verbose=False)
    module = GANModule(small_material(), {}, {"layout_pool": 0, "n_eval": 2})
    dm = RealPatchDataModule(patches, batch_size=2, val_fraction=0.25, seed=0)
    dm.scenes = module.scene_stream(workers=scene_workers) if scene_workers is not None else None
    losses: list[float] = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            losses.append(float(trainer.callback_metrics["train/loss_g_step"]))

    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        accelerator="cpu",
        callbacks=[Record()],
    )
    trainer.fit(module, datamodule=dm)
    return losses


def test_training_from_scene_workers_equals_training_in_process(tmp_path: Path) -> None:
    patches = write_patches(tmp_path / "patches")
    in_module = _fit_losses(patches, None)
    in_loader = _fit_losses(patches, 0)
    from_workers = _fit_losses(patches, 1)
    assert len(in_module) == 6 and all(np.isfinite(in_module))
    assert in_module == in_loader == from_workers


def test_the_data_module_gives_each_rank_its_own_scene_stream(tmp_path: Path) -> None:
    """Under DDP the real patches are sharded by Lightning; the scene loader is already this
    rank's (a DistributedSampler, so Lightning leaves it alone) and spans the rank's batches."""
    from types import SimpleNamespace

    from torch.utils.data.distributed import DistributedSampler

    patches = write_patches(tmp_path / "patches", n=10)
    module = GANModule(small_material(), {}, {"layout_pool": 0, "n_eval": 2})
    dm = RealPatchDataModule(patches, batch_size=2, val_fraction=0.2, seed=0, scenes=module.scene_stream())
    dm.trainer = SimpleNamespace(
        global_rank=1, world_size=2, strategy=SimpleNamespace(root_device=torch.device("cpu"))
    )
    loaders = dm.train_dataloader().iterables
    sampler = loaders["scenes"].sampler
    assert isinstance(sampler, DistributedSampler) and (sampler.rank, sampler.num_replicas) == (1, 2)
    assert len(sampler) == 2  # 8 training patches, 4 per rank, batches of 2
    assert next(iter(loaders["scenes"])).seeds == module.scene_plan.seeds(1, 2, 0, 2)
