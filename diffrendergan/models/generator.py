"""Generator = parameter network + renderer, with the configured scene law (a fixed
:class:`~diffrendergan.scene.sampler.LayoutSampler`) whose layouts it renders by default.

``G(phi) = noise(render(param_net(phi)))``: a sampled particle layout phi is encoded as
(x, y, z, size) per particle, the network predicts one unit parameter vector per image, the
ParamSpace maps it into the configured physical ranges, and the renderer draws the image. Only the
networks learn (the parameter network and, when configured, a neural shader that reshapes the
physics signal per pixel: :mod:`~diffrendergan.models.neural_shader`); geometry, and therefore the
masks, are exact.

With an exponential moving average of the networks' weights (:meth:`Generator.enable_ema`), the
average predicts (and shades) whenever the generator is in eval mode (evaluation renders, checkpoint choice,
export): a GAN's weights keep oscillating around a good solution, their average sits closer to it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from diffrendergan.config import MaterialConfig, RendererConfig
from diffrendergan.errors import ConfigError
from diffrendergan.models.neural_shader import NeuralShader
from diffrendergan.models.param_net import PARAM_NETS
from diffrendergan.rendering.gbuffer import GBuffer
from diffrendergan.rendering.renderer import MicroscopyRenderer, Refine, RenderOutput
from diffrendergan.scene.laws import max_count, size_law_moments
from diffrendergan.scene.layout import (
    Layout,
    build_particles,
    field_material,
    layouts_to_tensor,
)
from diffrendergan.scene.sampler import FixedLaw, Scenes


def ema_with_warmup(decay: float):
    """EMA update ``avg <- d avg + (1 - d) w`` with ``d = min(decay, (1 + n) / (10 + n))`` after n
    updates: early on the average follows the weights quickly instead of remembering the random
    initialisation for ~1 / (1 - decay) steps (the warm-up of TensorFlow's moving averages)."""

    def update(avg: torch.Tensor, weight: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        return d * avg + (1.0 - d) * weight

    return update


class Generator(nn.Module):
    """forward(layouts) -> RenderOutput with image (B, 1, H, W) and physical params {name: (B,)}."""

    def __init__(
        self,
        material: MaterialConfig,
        renderer: RendererConfig,
        net: str = "mlp",
        max_particles: int | None = None,
        hidden: int = 128,
        layers: int = 4,
        dropout: float = 0.2,
        layout_cache: int = 4096,
        neural_shader: NeuralShader | None = None,
    ):
        super().__init__()
        if net not in PARAM_NETS:
            raise ConfigError(
                "model.generator.net",
                f"unknown parameter network {net!r}; expected one of {sorted(PARAM_NETS)}",
            )
        self.material = material
        self.scene_law = FixedLaw(material, layout_cache)  # layouts to render (see use_scene_law)
        self.renderer = MicroscopyRenderer(material, renderer)
        # Slots for every particle the layout can hold (with a guard band: those of the whole field).
        self.max_particles = max_particles or max_count(field_material(material).count)
        self.net = PARAM_NETS[net](self.max_particles, self.renderer.space.dim, hidden, layers, dropout)
        self.fov_nm = material.image_size * material.pixel_size_nm
        self.size_ref_nm = size_law_moments(material.size)["mean_size_nm"]
        self.net_ema: AveragedModel | None = None
        self.neural_shader = neural_shader
        self.neural_shader_ema: AveragedModel | None = None

    @property
    def space(self):
        return self.renderer.space

    def enable_ema(self, decay: float) -> None:
        """Keep an exponential moving average (``decay`` per update) of the networks' weights."""
        if not 0.0 < decay < 1.0:
            raise ConfigError("model.ema_decay", f"expected a decay in (0, 1) (or 0 = off), got {decay}")
        self.net_ema = _averaged(self.net, decay)
        if self.neural_shader is not None:
            self.neural_shader_ema = _averaged(self.neural_shader, decay)

    def update_ema(self) -> None:
        """One EMA step towards the current weights (call after each optimizer step)."""
        if self.net_ema is not None:
            self.net_ema.update_parameters(self.net)
        if self.neural_shader_ema is not None:
            self.neural_shader_ema.update_parameters(self.neural_shader)

    def _in_use(self, module: nn.Module | None, ema: AveragedModel | None) -> nn.Module | None:
        """``module``, or its EMA in eval mode when there is one."""
        return ema.module if ema is not None and not self.training else module

    @property
    def predictor(self) -> nn.Module:
        """The network that predicts parameters: the EMA in eval mode when there is one."""
        return self._in_use(self.net, self.net_ema)

    @property
    def refine(self) -> NeuralShader | None:
        """The neural shader that corrects the physics signal (its EMA in eval mode), or None."""
        return self._in_use(self.neural_shader, self.neural_shader_ema)

    @property
    def device(self) -> torch.device:
        """Where the parameter network (and so rasterization and shading) runs."""
        return self.net.head.weight.device

    @property
    def layout_material(self) -> MaterialConfig:
        """The material whose scene law layouts are drawn from."""
        return self.scene_law.material

    def layouts(self, seeds: list[int]) -> list[Layout]:
        """Layouts of the scene law for seeds (deterministic; memoised)."""
        return self.scene_law.layouts(seeds)

    def use_scene_law(self, material: MaterialConfig) -> None:
        """Draw layouts from ``material``'s size/count/placement laws from now on (e.g. a learned
        topography); rendering, parameter ranges and the network's input scaling are unchanged."""
        field = (material.image_size, material.pixel_size_nm)
        if field != (self.material.image_size, self.material.pixel_size_nm):
            raise ConfigError("material", "a scene law must keep the generator's image size and pixel size")
        if material != self.scene_law.material:
            self.scene_law = FixedLaw(material, self.scene_law.cache_size)

    def encode(self, layouts: list[Layout]) -> tuple[torch.Tensor, torch.Tensor]:
        """Network input (B, max_particles, 4) and mask (B, max_particles) on the module's device."""
        x, m = layouts_to_tensor(layouts, self.max_particles, self.fov_nm, self.size_ref_nm)
        return x.to(self.device), m.to(self.device)

    def unit_params(self, layouts: list[Layout]) -> torch.Tensor:
        """(B, K) unit parameters predicted for each layout."""
        return self.predictor(*self.encode(layouts))

    def forward(
        self,
        layouts: list[Layout],
        generator: torch.Generator | None = None,
        noise: bool = True,
        gbuffer: GBuffer | None = None,
    ) -> RenderOutput:
        """Render ``layouts``; ``gbuffer``: theirs when already rasterized (by a data loader),
        else the renderer rasterizes (and caches) them."""
        unit = self.unit_params(layouts)
        if gbuffer is None:
            gbuffer = self.renderer.gbuffer(layouts, device=unit.device)
        return self.renderer.shade(gbuffer, unit, generator, noise=noise, refine=self.refine)

    def render(
        self, scenes: Scenes, generator: torch.Generator | None = None, appearance_grad: bool = True
    ) -> RenderOutput:
        """Render a batch of scenes from any :class:`~diffrendergan.scene.sampler.LayoutSampler`.

        Scenes with differentiable geometry (a learned law's sizes and presence weights) go
        through the soft rasterizer (:meth:`MicroscopyRenderer.render_soft`), so gradients reach
        the law; others through the hard path with their G-buffer, if already rasterized.
        ``appearance_grad=False``: the networks shade with their weights detached, so that a loss
        on the image reaches the geometry only.
        """
        if not scenes.differentiable:
            return self.forward(scenes.layouts, generator, gbuffer=scenes.gbuffer)
        sizes = scenes.sizes or []
        parts = [build_particles(lay, self.material, sizes=s) for lay, s in zip(scenes.layouts, sizes)]
        unit, refine = self.unit_params(scenes.layouts), self.refine
        if not appearance_grad:
            unit, refine = unit.detach(), _detached(refine)
        return self.renderer.render_soft(scenes.layouts, parts, scenes.presence, unit, generator, refine)


def _detached(module: nn.Module | None) -> Refine | None:
    """``module`` as a function of its inputs alone: its weights enter detached, so nothing of it
    learns from a loss through its output."""
    if module is None:
        return None
    state = {name: t.detach() for name, t in [*module.named_parameters(), *module.named_buffers()]}
    return lambda *inputs: torch.func.functional_call(module, state, inputs)


def _averaged(module: nn.Module, decay: float) -> AveragedModel:
    """An EMA copy of ``module``, updated by averaging, never by an optimizer (nor DDP)."""
    avg = AveragedModel(module, avg_fn=ema_with_warmup(decay), use_buffers=True)
    avg.requires_grad_(False)
    return avg
