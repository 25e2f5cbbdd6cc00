"""Training scenes as data: layouts and their G-buffers drawn in DataLoader workers.

Rasterizing a fresh layout is CPU work (~0.1 s per TiO2 image at 256 px) that, done inside the
training step, stalls the optimizer (and a GPU). Here it is a dataset: the main process only
decides *which* layouts a batch holds (their seeds), and the workers sample and rasterize them
while the previous step runs. The seed of every layout is a pure function of (base seed, layout
pool, rank, world size, global batch index), so a run is reproducible whatever the number of
workers, and no two ranks or batches share a fresh layout.

Flow per training batch k of rank r (see :class:`SceneSampler`)::

    seeds = ScenePlan.seeds(r, world, k, B)  ->  SceneDataset[seeds]  ->  SceneBatch
    (main process)                               (worker process)         (to training_step)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from diffrendergan.config import MaterialConfig, RendererConfig
from diffrendergan.errors import ConfigError
from diffrendergan.rendering.gbuffer import GBuffer
from diffrendergan.rendering.renderer import MicroscopyRenderer
from diffrendergan.scene.layout import Layout
from diffrendergan.scene.sampler import FixedLaw

FRESH_OFFSET = 10_000_000  # fresh-layout seeds start here, above every pool seed


@dataclass(frozen=True)
class ScenePlan:
    """Which layouts train the GAN: ``pool`` > 0 = a fixed pool of that many layouts (the paper),
    sampled with a rank-specific stream; 0 = a fresh layout for every image of every step."""

    seed: int
    pool: int

    def seeds(self, rank: int, world: int, step: int, batch_size: int) -> list[int]:
        """Layout seeds of rank ``rank``'s training batch ``step`` (of ``world`` ranks)."""
        base = self.seed * 100_003
        if self.pool > 0:
            g = torch.Generator().manual_seed(self.seed * 7919 + step * world + rank)
            return [base + int(i) for i in torch.randint(self.pool, (batch_size,), generator=g)]
        first = base + FRESH_OFFSET + (step * world + rank) * batch_size
        return list(range(first, first + batch_size))


class SceneBatch:
    """One training batch's scenes: ``seeds`` always; ``layouts`` when drawn from the fixed law
    (a learned law draws them in the training step, from its current parameters); ``gbuffer``
    (B images, CPU) when rasterized in the loader (not when the GPU rasterizes).

    A plain class, not a dataclass, so that Lightning's batch transfer leaves it alone: the
    renderer moves the G-buffer itself, and layouts stay on the CPU where they are built.
    """

    __slots__ = ("gbuffer", "layouts", "seeds")

    def __init__(self, seeds: list[int], layouts: list[Layout] | None = None, gbuffer: GBuffer | None = None):
        self.seeds = seeds
        self.layouts = layouts
        self.gbuffer = gbuffer

    def __len__(self) -> int:
        return len(self.seeds)

    def head(self, n: int) -> SceneBatch:
        """The first ``n`` scenes (a short last batch of real patches takes only as many)."""
        if n == len(self):
            return self
        gbuffer = self.gbuffer.index(slice(0, n)) if self.gbuffer is not None else None
        return SceneBatch(self.seeds[:n], None if self.layouts is None else self.layouts[:n], gbuffer)


class SceneDataset(Dataset):
    """``dataset[seeds]`` -> :class:`SceneBatch`: layouts of ``material``'s scene law and, with a
    renderer config, their G-buffers (both cached per layout, as in the training process, so a
    fixed pool is drawn and rasterized once per worker). ``material=None``: seeds only (a learned
    law draws the layouts)."""

    def __init__(self, material: MaterialConfig | None, renderer: RendererConfig | None = None):
        self.law = FixedLaw(material) if material is not None else None
        self.renderer = MicroscopyRenderer(material, renderer) if material and renderer else None

    def __getitem__(self, seeds: tuple[int, ...]) -> SceneBatch:
        if self.law is None:
            return SceneBatch(list(seeds))
        layouts = self.law.layouts(list(seeds))
        gbuffer = self.renderer.gbuffer(layouts) if self.renderer is not None else None
        return SceneBatch(list(seeds), layouts, gbuffer)


class SceneSampler(DistributedSampler):
    """Yields the seed tuple of each of this rank's training batches, continuing across epochs:
    batch j of epoch e is global batch ``e * batches_per_epoch + j`` (Lightning calls
    :meth:`set_epoch`, also after resuming, so a resumed run continues the stream).

    A :class:`DistributedSampler` because it already is one rank's share: Lightning must not
    shard it again. Its parent's constructor is not called: it expects a sized dataset to split.
    """

    def __init__(self, plan: ScenePlan, rank: int, world: int, batch_size: int, batches_per_epoch: int):
        self.plan, self.rank, self.num_replicas = plan, rank, world
        self.batch_size, self.batches_per_epoch = batch_size, batches_per_epoch
        self.epoch = 0

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[tuple[int, ...]]:  # type: ignore[override]
        start = self.epoch * self.batches_per_epoch
        for step in range(start, start + self.batches_per_epoch):
            yield tuple(self.plan.seeds(self.rank, self.num_replicas, step, self.batch_size))


def keep_batch(item: SceneBatch) -> SceneBatch:
    """The loader's collate function: a dataset item already is a whole batch."""
    return item


@dataclass(frozen=True)
class SceneStream:
    """Everything a data module needs to feed a GAN its training scenes (see the module
    docstring). ``material`` None: seeds only; ``rasterize`` False: layouts without G-buffers;
    ``workers``: DataLoader worker processes per rank (0 = drawn in the training process)."""

    plan: ScenePlan
    material: MaterialConfig | None
    renderer: RendererConfig
    rasterize: bool = True
    workers: int = 0

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError("data.scene_workers", f"must be >= 0, got {self.workers}")

    def loader(
        self, n_real: int, batch_size: int, rank: int = 0, world: int = 1, on_gpu: bool = False
    ) -> DataLoader:
        """This rank's scene loader for ``n_real`` training patches shared by ``world`` ranks.
        G-buffers are made here (in the workers, on the CPU) unless the generator runs on a GPU,
        rasterizes there (``renderer.raster_device: auto``) and no workers were asked for."""
        workers = self.workers
        raster = self.rasterize and (workers > 0 or not on_gpu or self.renderer.raster_device == "cpu")
        dataset = SceneDataset(self.material, self.renderer if raster else None)
        per_rank = math.ceil(n_real / world)  # DistributedSampler pads each rank to this
        sampler = SceneSampler(self.plan, rank, world, batch_size, max(math.ceil(per_rank / batch_size), 1))
        return DataLoader(
            dataset,
            batch_size=None,
            sampler=sampler,
            num_workers=workers,
            collate_fn=keep_batch,
            persistent_workers=workers > 0,
            # Its own stream for the workers' base seed: the global RNG (detector noise) is not consumed.
            generator=torch.Generator().manual_seed(self.plan.seed),
        )
