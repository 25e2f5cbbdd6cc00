"""MicroscopyRenderer: layouts -> (cached) G-buffers -> differentiable images + exact masks."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from diffrendergan.config import MaterialConfig, RendererConfig
from diffrendergan.errors import ConfigError
from diffrendergan.noise.detector import (
    DETECTOR_DOMAINS,
    DETECTOR_INTRODUCED,
    DETECTOR_RANGES,
    add_noise,
    optics,
)
from diffrendergan.params.space import ParamRange, ParamSpace, check_domain, held_entries
from diffrendergan.rendering.gbuffer import GBuffer, build_gbuffer
from diffrendergan.rendering.masks import classes_from_rendered
from diffrendergan.rendering.rasterize import rasterize_full, rasterize_windowed
from diffrendergan.rendering.soft import dilate_into_background, soft_coverage
from diffrendergan.scene.layout import Layout, Particles, build_particles
from diffrendergan.shading import get_shader


def param_space_for(material: MaterialConfig) -> ParamSpace:
    """The shader's and detector's parameters with their default ranges, overridden by
    ``material.params``; unknown names are an error naming the key."""
    shader = get_shader(material.shader)
    defaults = {**shader.ranges, **DETECTOR_RANGES}
    for name in material.params:
        if name not in defaults:
            raise ConfigError(
                f"material.params.{name}",
                f"not a parameter of shader {material.shader!r} or the detector; "
                f"expected one of {sorted(defaults)}",
            )
    ranges = {n: material.params.get(n, ParamRange(lo, hi)) for n, (lo, hi) in defaults.items()}
    domains = {**shader.domains, **DETECTOR_DOMAINS}
    for name, r in ranges.items():
        if name in domains:
            check_domain(f"material.params.{name}", r, domains[name])
    return ParamSpace(ranges)


# Every parameter added after checkpoints were written, shader's and detector's together, oldest
# first (residue_level and noise_corr_px came in one commit): a checkpoint lacks the newest k of
# them, which the loader reads off its network's output size.
INTRODUCED_ORDER = (
    "grazing_cos",
    "occlusion_strength",
    "grain_spread",
    "residue_level",
    "noise_corr_px",
    "residue_coarseness",
    "edge_over_grains",
)


def introduced_held(shader_name: str) -> dict[str, dict[str, float | bool]]:
    """``material.params`` entries that hold every parameter added after checkpoints were written
    at the value that renders as before it existed, in the order they arrived
    (:data:`INTRODUCED_ORDER`)."""
    shader = get_shader(shader_name)
    held = {
        **held_entries(shader.introduced, shader.ranges),
        **held_entries(DETECTOR_INTRODUCED, DETECTOR_RANGES),
    }
    return {name: held[name] for name in INTRODUCED_ORDER if name in held}


# A learned correction of the shader's signal (B, 1, H, W) given the G-buffer: the generator's
# neural shader (diffrendergan.models.neural_shader), applied before the detector's optics.
Refine = Callable[[GBuffer, torch.Tensor], torch.Tensor]


@dataclass
class RenderOutput:
    """image: (B, 1, H, W) in [0, 1]; params: {name: (B,)} physical values used."""

    image: torch.Tensor
    params: dict[str, torch.Tensor]


class MicroscopyRenderer:
    """Stateless apart from a bounded G-buffer cache keyed by layout seed (geometry never changes
    for a layout, so its rasterization is reused across epochs)."""

    def __init__(self, material: MaterialConfig, renderer: RendererConfig, cache_size: int = 512):
        self.material = material
        self.cfg = renderer
        self.shader = get_shader(material.shader)
        self.space = param_space_for(material)
        self.cache_size = cache_size if renderer.cache_fragments else 0
        self._cache: OrderedDict[tuple, GBuffer] = OrderedDict()

    @property
    def image_size(self) -> int:
        return self.material.image_size

    def _surfaces(self, layouts: list[Layout], scale: int, device: torch.device) -> GBuffer:
        """Rasterize several layouts in one batch on ``device`` and derive their G-buffers
        (on the CPU: the edge distances and substrate textures are SciPy filters)."""
        m = self.material
        px = m.pixel_size_nm / scale
        parts = [build_particles(lay, m).to(device) for lay in layouts]
        rasterize = rasterize_windowed if self.cfg.windowed else rasterize_full
        maps = rasterize(parts, m.image_size * scale, px, thickness=self.shader.needs_thickness)
        return build_gbuffer(maps.to("cpu"), px, m.detector_azimuth_deg, [lay.seed for lay in layouts])

    @staticmethod
    def cache_key(layout: Layout, scale: int) -> tuple:
        """Identifies a layout's geometry; includes the positions/sizes themselves because with
        topography learning the same seed yields different layouts as the size law moves."""
        return (layout.seed, layout.shape_seed, layout.n, scale, float(layout.xyzs.sum()))

    def gbuffer(
        self, layouts: list[Layout], scale: int | None = None, device: torch.device | str | None = None
    ) -> GBuffer:
        """G-buffers (B images, on the CPU) at ``scale`` x resolution (default: the supersampling
        factor); missing ones are rasterized on ``device`` (see ``RendererConfig.raster_device``)."""
        scale = self.cfg.supersample if scale is None else scale
        device = torch.device("cpu" if device is None or self.cfg.raster_device == "cpu" else device)
        keys = [self.cache_key(lay, scale) for lay in layouts]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        fresh = self._surfaces([layouts[i] for i in missing], scale, device) if missing else None
        out: list[GBuffer] = []
        for i, key in enumerate(keys):
            if fresh is not None and i in missing:
                gb = fresh.index(slice(missing.index(i), missing.index(i) + 1))
                if self.cache_size:
                    self._cache[key] = gb
            else:
                gb = self._cache[key]
                self._cache.move_to_end(key)
            out.append(gb)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return GBuffer.cat(out)

    def shade(
        self,
        gb: GBuffer,
        unit_params: torch.Tensor,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        noise: bool = True,
        refine: Refine | None = None,
    ) -> RenderOutput:
        """Differentiable part: unit params (B, K) -> image (B, 1, H, W).

        ``generator``: one noise stream for the batch (training), or one per image (export: an
        image's noise then depends only on its own seed, not on its batch neighbours).
        ``refine``: the generator's neural shader, if it has one."""
        params = self.space.to_physical(unit_params)
        signal = self.signal(gb.to(unit_params.device), params, refine)
        x = optics(signal, params, self.cfg.supersample)
        if not noise:
            return RenderOutput(x.clamp(0, 1), params)
        if generator is None or isinstance(generator, torch.Generator):
            return RenderOutput(add_noise(x, params, generator, geometry_free=x), params)
        per_image = []
        for k, g in enumerate(generator):
            xk = x[k : k + 1]
            per_image.append(add_noise(xk, {n: v[k : k + 1] for n, v in params.items()}, g, geometry_free=xk))
        return RenderOutput(torch.cat(per_image), params)

    def signal(self, gb: GBuffer, params: dict[str, torch.Tensor], refine: Refine | None) -> torch.Tensor:
        """Noiseless detector signal (B, 1, H, W): the shader's, then the learned correction."""
        signal = self.shader(gb, params)
        return signal if refine is None else refine(gb, signal)

    def render(
        self,
        layouts: list[Layout],
        unit_params: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> RenderOutput:
        return self.shade(self.gbuffer(layouts, device=unit_params.device), unit_params, generator)

    def render_soft(
        self,
        layouts: list[Layout],
        particles: list[Particles],
        weights: list[torch.Tensor] | None,
        unit_params: torch.Tensor,
        generator: torch.Generator | None = None,
        refine: Refine | None = None,
    ) -> RenderOutput:
        """Geometry-gradient mode: the image is differentiable in the particle meshes too.

        The particle and substrate signals are shaded from the hard G-buffer of ``layouts``; a soft
        coverage map of ``particles`` (whose vertices may carry gradients, e.g. reparameterised
        sizes) blends them, so gradients reach the geometry through the silhouettes.
        """
        if not self.cfg.geometry_grad:
            raise ConfigError("renderer.geometry_grad", "soft rendering needs renderer.geometry_grad=true")
        m, cfg = self.material, self.cfg
        cov = soft_coverage(
            particles, m.image_size, m.pixel_size_nm, cfg.blur_px, cfg.faces_per_pixel, weights, cfg.sigma_px2
        )
        gb = self.gbuffer(layouts, scale=1, device=unit_params.device).to(unit_params.device)
        params = self.space.to_physical(unit_params)
        full = self.signal(gb, params, refine)
        substrate = self.signal(replace(gb, particle=torch.zeros_like(gb.particle)), params, refine)
        particle = dilate_into_background(full, gb.particle)
        cov = cov.to(full)
        x = optics(cov * particle + (1 - cov) * substrate, params)
        fixed = cov.detach()
        geometry_free = optics(fixed * particle + (1 - fixed) * substrate, params)
        return RenderOutput(add_noise(x, params, generator, geometry_free), params)

    def masks(
        self, layouts: list[Layout], device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact 3-class masks (B, H, W) uint8 and instance maps (B, H, W) long at output size."""
        gb = self.gbuffer(layouts, scale=1, device=device)
        return classes_from_rendered(gb.instance, gb.height[:, 0], self.cfg.min_instance_px)
