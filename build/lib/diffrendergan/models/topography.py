"""Learnable topography: the particle size law and the particle count, fitted end to end.

Sizes are reparameterised draws ``sizes = f(law params, eps)`` (lognormal: ``exp(mu + sigma eps)``;
gaussian and bimodal: ``mean + std eps`` per mode) with the noise eps stored in each layout, so the
adversarial loss reaches mu and sigma through PyTorch3D's soft silhouettes (see
:mod:`diffrendergan.rendering.soft`). Positions come from placing the *current* law's sizes; they are
treated as constants within a step (their dependence on size is not differentiated).

The particle count is discrete. Every image area gets ``count.high`` particle slots (a guard band,
``placement.guard``, scales them to its field like any count law) and each slot is
present with probability p = sigmoid(logit), relaxed with a binary Concrete (Gumbel-sigmoid)
sample so that the presence weight multiplies the particle's soft coverage and gradients reach p
pathwise. We chose the relaxation over a score-function (REINFORCE) estimator because the image
depends smoothly on a particle's coverage and the pathwise gradient has far lower variance; the
bias from the relaxation vanishes as the temperature goes to 0. The mixture weight of a bimodal law
is kept fixed (only its means and stds learn).

:class:`Topography` is the learnable :class:`~diffrendergan.scene.sampler.LayoutSampler`: the GAN
loop draws its training scenes from it exactly as from a fixed law.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from diffrendergan.config import CountLaw, MaterialConfig, SizeLaw
from diffrendergan.scene.laws import (
    expected_count,
    law_location,
    max_count,
    size_law_moments,
    sizes_from_noise,
)
from diffrendergan.scene.layout import Layout, sample_layout
from diffrendergan.scene.sampler import Scenes

if TYPE_CHECKING:
    from diffrendergan.data.scenes import SceneBatch


class Topography(nn.Module):
    """Learnable size law (+ optional count) of one material."""

    def __init__(
        self,
        material: MaterialConfig,
        init_size: SizeLaw | None = None,
        learn_count: bool = True,
        temperature: float = 0.5,
        ema_decay: float = 0.98,
        centre_noise: bool = True,
    ):
        super().__init__()
        self.material = material
        law = init_size or material.size
        self.kind = law.kind
        self.base_law = law
        loc = law_location(law)
        self.loc = nn.Parameter(torch.tensor(float(loc["loc"])))
        self.log_scale = nn.Parameter(torch.tensor(math.log(max(loc["scale"], 1e-3))))
        if law.kind == "bimodal":
            self.loc2 = nn.Parameter(torch.tensor(float(loc["loc2"])))
            self.log_scale2 = nn.Parameter(torch.tensor(math.log(max(loc["scale2"], 1e-3))))
        self.learn_count = learn_count
        self.slots = max_count(material.count)
        p0 = min(max(expected_count(material.count) / max(self.slots, 1), 0.05), 0.95)
        self.count_logit = nn.Parameter(torch.tensor(math.log(p0 / (1 - p0))), requires_grad=learn_count)
        self.temperature = temperature
        self.centre_noise = centre_noise
        # Averages of the law parameters: the adversarial signal makes the raw values wander around
        # the optimum. An EMA follows the descent from the starting law (logged per epoch); the
        # reported estimate is the plain (Polyak-Ruppert) average of every step since the tail
        # began (see :meth:`update_averages`), falling back to the EMA before that.
        self.ema_decay = ema_decay
        self.register_buffer("ema", self._flat().detach().clone())
        self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("tail_sum", torch.zeros_like(self.ema))
        self.register_buffer("tail_steps", torch.zeros((), dtype=torch.long))

    def _flat(self) -> torch.Tensor:
        return torch.stack([p.reshape(()) for _, p in sorted(self.named_parameters())])

    @torch.no_grad()
    def update_averages(self, tail: bool = False) -> None:
        """Call after each optimizer step. The EMA is bias-corrected (early values are not dragged
        to the start); with ``tail`` the step also enters the tail average."""
        self.ema_steps += 1
        d = min(self.ema_decay, 1.0 - 1.0 / float(self.ema_steps + 1))
        flat = self._flat()
        self.ema.mul_(d).add_((1 - d) * flat)
        if tail:
            self.tail_sum.add_(flat)
            self.tail_steps += 1

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("tail_sum", "tail_steps"):  # checkpoints written before the tail average
            state_dict.setdefault(prefix + name, getattr(self, name).clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _averaged(self) -> dict[str, float]:
        names = [n for n, _ in sorted(self.named_parameters())]
        values = self.tail_sum / self.tail_steps if int(self.tail_steps) > 0 else self.ema
        return {n: float(v) for n, v in zip(names, values)}

    # ------------------------------------------------------------------ laws
    def current_law(self, averaged: bool = False) -> SizeLaw:
        """The law with the current (detached) values, for sampling positions; ``averaged`` uses
        the Polyak average instead (the reported estimate)."""
        v = self._averaged() if averaged else {n: float(p.detach()) for n, p in self.named_parameters()}
        scale = math.exp(v["log_scale"])
        if self.kind == "lognormal":
            return replace(self.base_law, median_nm=math.exp(v["loc"]), sigma=scale)
        law = replace(self.base_law, mean_nm=v["loc"], std_nm=scale)
        if self.kind == "bimodal":
            law = replace(law, mean2_nm=v["loc2"], std2_nm=math.exp(v["log_scale2"]))
        return law

    def sampling_material(self) -> MaterialConfig:
        """Material whose layouts have one slot per possible particle, sized by the current law."""
        count = CountLaw(kind="fixed", n=self.slots) if self.learn_count else self.material.count
        return replace(self.material, size=self.current_law(), count=count)

    def learned_material(self) -> MaterialConfig:
        """The material with the learned (Polyak-averaged) laws: what export should sample from.

        A learned count becomes a binomial law over the same slots (each present with the learned
        probability), which is the distribution of the training slots' hard presence (exactly without
        a guard band; with one, up to rounding the scaled slot count to whole particles)."""
        count = self.material.count
        if self.learn_count:
            count = CountLaw(
                kind="binomial", n=self.slots, mean=self.slots * self._presence_probability(True)
            )
        return replace(self.material, size=self.current_law(averaged=True), count=count)

    def layouts(self, seeds: list[int]) -> list[Layout]:
        mat = self.sampling_material()
        return [sample_layout(mat, s) for s in seeds]

    # ------------------------------------------------- the LayoutSampler interface
    @property
    def worker_material(self) -> None:
        """Workers send seeds only: the layouts follow parameters they do not see."""
        return None

    def sample(self, batch: SceneBatch, learn: bool, generator: torch.Generator | None = None) -> Scenes:
        """Layouts of the current law for the batch's seeds; with ``learn`` their sizes and
        presence carry gradients (warm-up: ``learn`` False, plain layouts of the frozen law)."""
        layouts = self.layouts(batch.seeds)
        return self.scenes(layouts, generator) if learn else Scenes(layouts)

    def scenes(self, layouts: list[Layout], generator: torch.Generator | None = None) -> Scenes:
        """Differentiable scenes of given layouts: reparameterised sizes, relaxed presence."""
        presence = [self.presence(lay, generator) for lay in layouts]
        return Scenes(layouts, sizes=self.batch_sizes(layouts), presence=presence)

    def after_step(self, learn: bool, tail: bool) -> None:
        if learn:
            self.update_averages(tail=tail)

    def export_material(self) -> MaterialConfig:
        return self.learned_material()

    def batch_sizes(self, layouts: list[Layout]) -> list[torch.Tensor]:
        """Reparameterised sizes of a batch of layouts drawn from :meth:`layouts` (one (P,) tensor
        each); equal in value to the layouts' sizes, differentiable in the law parameters.

        With ``centre_noise`` the spread's gradient sees the noise minus its batch mean,
        ``sum_i v_i (eps_i - mean eps)`` instead of ``sum_i v_i eps_i`` (v_i: particle i's
        grow/shrink vote): a vote shared by the whole batch (the discriminator's judgement of this
        batch, "all too large") carries no information about the spread and would otherwise add
        noise of its own size to it. The batch-mean part of the noise is treated as location."""
        means: tuple[float, float] = (0.0, 0.0)
        if self.centre_noise and layouts:
            eps = torch.cat([lay.size_eps for lay in layouts])  # type: ignore[misc]
            second = torch.cat([lay.size_second for lay in layouts])  # type: ignore[misc]
            means = (_mean_or_zero(eps[~second]), _mean_or_zero(eps[second]))
        return [self.sizes(lay, means) for lay in layouts]

    def sizes(self, layout: Layout, eps_means: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
        """Reparameterised sizes (P,) of one layout; ``eps_means`` (per mode) are moved from the
        spread's gradient to the location's (see :meth:`batch_sizes`; zeros: plain reparameterisation)."""
        assert layout.size_eps is not None and layout.size_second is not None
        eps, second = layout.size_eps.to(self.loc), layout.size_second.to(self.loc.device)
        scale = self.log_scale.exp()
        kw = {"loc": self.loc - (scale - scale.detach()) * eps_means[0], "scale": scale}
        if self.kind == "bimodal":
            scale2 = self.log_scale2.exp()
            kw.update(loc2=self.loc2 - (scale2 - scale2.detach()) * eps_means[1], scale2=scale2)
        lo, hi = self.base_law.min_nm, self.base_law.max_nm
        return sizes_from_noise(self.kind, eps, second, **kw).clamp(lo, hi)

    def presence(self, layout: Layout, generator: torch.Generator | None = None) -> torch.Tensor:
        """Relaxed Bernoulli presence weight per particle slot (P,) in (0, 1); ones without count
        learning."""
        if not self.learn_count:
            return torch.ones(layout.n, device=self.loc.device)
        u = torch.rand(layout.n, generator=generator).to(self.loc).clamp(1e-6, 1 - 1e-6)
        logistic = torch.log(u) - torch.log1p(-u)
        return torch.sigmoid((self.count_logit + logistic) / self.temperature)

    # --------------------------------------------------------------- reports
    def summary(self, averaged: bool = True) -> dict[str, float | None]:
        """Learned law in nm: mean/std of sizes, the law's own parameters, expected count
        (Polyak-averaged by default)."""
        law = self.current_law(averaged)
        out: dict[str, float | None] = dict(size_law_moments(law))
        out.update(_law_fields(law))
        out["expected_count"] = (
            self.slots * self._presence_probability(averaged) if self.learn_count else None
        )
        return out

    def _presence_probability(self, averaged: bool) -> float:
        """Probability that a particle slot is occupied (current or Polyak-averaged logit)."""
        logit = self._averaged()["count_logit"] if averaged else float(self.count_logit.detach())
        return 1.0 / (1.0 + math.exp(-logit))


def _mean_or_zero(x: torch.Tensor) -> float:
    return float(x.mean()) if x.numel() else 0.0


def _law_fields(law: SizeLaw) -> dict[str, float]:
    if law.kind == "lognormal":
        return {"median_nm": law.median_nm, "sigma": law.sigma}
    out = {"mean1_nm": law.mean_nm, "std1_nm": law.std_nm}
    if law.kind == "bimodal":
        out.update(mean2_nm=law.mean2_nm, std2_nm=law.std2_nm, weight=law.weight)
    return out


def law_summary(law: SizeLaw, count: CountLaw) -> dict[str, float]:
    """The same keys as :meth:`Topography.summary` for a configured (e.g. the demo's true) law."""
    out: dict[str, float] = dict(size_law_moments(law))
    out.update(_law_fields(law))
    out["expected_count"] = expected_count(count)
    return out
