"""Layout samplers: where a training batch's particle layouts come from, behind one interface.

The GAN step asks its sampler for the scenes of a batch and renders whatever it gets, so the
step has one code path whether the size law is fixed or learned:

* :class:`FixedLaw` — the configured size / count / placement law. Its layouts depend on the
  seed alone, so DataLoader workers can draw and rasterize them ahead
  (:mod:`diffrendergan.data.scenes`); a fixed pool is drawn once (memoised per seed).
* :class:`~diffrendergan.models.topography.Topography` — a learnable law (an ``nn.Module``).
  While it learns, its scenes carry reparameterised sizes and relaxed presence weights, and the
  generator renders them through the soft rasterizer so that the adversarial loss reaches the law.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from diffrendergan.config import MaterialConfig
from diffrendergan.scene.layout import Layout, sample_layout

if TYPE_CHECKING:
    from diffrendergan.data.scenes import SceneBatch
    from diffrendergan.rendering.gbuffer import GBuffer


@dataclass
class Scenes:
    """A batch of B scenes ready to render.

    Attributes:
        layouts: B layouts (CPU).
        gbuffer: their G-buffer when rasterized ahead (by a data loader), else None.
        sizes: B tensors (P_i,) of particle sizes (nm), differentiable in a learned law's
            parameters; None = the layouts' own sizes (hard rendering).
        presence: B tensors (P_i,) of relaxed presence weights in (0, 1) (with ``sizes``).
    """

    layouts: list[Layout]
    gbuffer: GBuffer | None = None
    sizes: list[torch.Tensor] | None = None
    presence: list[torch.Tensor] | None = None

    @property
    def differentiable(self) -> bool:
        """Whether the geometry carries gradients (render through the soft rasterizer)."""
        return self.sizes is not None


class LayoutSampler(Protocol):
    """What the GAN loop needs from a scene law."""

    @property
    def worker_material(self) -> MaterialConfig | None:
        """The law DataLoader workers may draw layouts from (None: they send seeds only)."""

    def layouts(self, seeds: list[int]) -> list[Layout]:
        """Layouts of the current law for ``seeds`` (the evaluation renders use fixed seeds)."""

    def sample(self, batch: SceneBatch, learn: bool, generator: torch.Generator | None = None) -> Scenes:
        """The scenes of a training batch; ``learn``: with differentiable geometry, if learnable."""

    def after_step(self, learn: bool, tail: bool) -> None:
        """Called after each generator step (``tail``: the step enters a reported average)."""

    def export_material(self) -> MaterialConfig:
        """The law exported datasets are drawn from."""

    def summary(self) -> dict[str, float | None]:
        """Learned quantities to log (empty for a fixed law)."""


class FixedLaw:
    """The configured scene law. Layouts are deterministic per seed and memoised (the ``cache``
    most recent), so a fixed pool is sampled once."""

    def __init__(self, material: MaterialConfig, cache: int = 4096):
        self.material = material
        self.cache_size = int(cache)
        self._layouts: OrderedDict[int, Layout] = OrderedDict()

    @property
    def worker_material(self) -> MaterialConfig:
        return self.material

    def layouts(self, seeds: list[int]) -> list[Layout]:
        out = []
        for s in seeds:
            lay = self._layouts.get(s)
            if lay is None:
                lay = sample_layout(self.material, s)
                self._layouts[s] = lay
                if len(self._layouts) > self.cache_size:
                    self._layouts.popitem(last=False)
            out.append(lay)
        return out

    def sample(
        self, batch: SceneBatch, learn: bool = False, generator: torch.Generator | None = None
    ) -> Scenes:
        """The loader's layouts and G-buffer when it drew them, else this law's for the seeds."""
        layouts = batch.layouts if batch.layouts is not None else self.layouts(batch.seeds)
        return Scenes(layouts, batch.gbuffer)

    def after_step(self, learn: bool, tail: bool) -> None:
        return None

    def export_material(self) -> MaterialConfig:
        return self.material

    def summary(self) -> dict[str, float | None]:
        return {}
