"""A Blinn-Phong light model, close in spirit to the paper's Mitsuba scene (diffuse + specular
particles lit by a large area light from above, a diffuse stage). For comparison with the
microscopy shaders, not for realism."""

from __future__ import annotations

import math

import torch

from diffrendergan.params.space import Domain
from diffrendergan.rendering.gbuffer import GBuffer
from diffrendergan.shading.base import Params, Shader, per_image

_LIGHT = torch.tensor(
    [
        math.cos(math.radians(60)) * 0.6,
        -math.cos(math.radians(60)) * 0.8,
        math.sin(math.radians(60)),
    ]
)


def blinn_phong(gb: GBuffer, p: Params) -> torch.Tensor:
    light = (_LIGHT / _LIGHT.norm()).to(gb.normal).reshape(1, 3, 1, 1)
    view = torch.tensor([0.0, 0.0, 1.0]).to(gb.normal).reshape(1, 3, 1, 1)
    half = (light + view) / (light + view).norm()
    n_dot_l = (gb.normal * light).sum(1, keepdim=True).clamp_min(0)
    n_dot_h = (gb.normal * half).sum(1, keepdim=True).clamp(1e-6, 1.0)
    ambient = per_image(p["ambient"])
    diffuse = ambient + (1 - ambient) * n_dot_l
    spec = per_image(p["specular"]) * n_dot_h.pow(per_image(p["shininess"]))
    particle = per_image(p["particle_albedo"]) * diffuse + spec
    substrate = per_image(p["substrate_albedo"]) * (ambient + (1 - ambient) * float(light[0, 2, 0, 0]))
    return gb.particle * particle + (1 - gb.particle) * substrate


PRINCIPLED_RANGES = {
    "particle_albedo": (0.05, 1.0),
    "substrate_albedo": (0.01, 0.4),
    "ambient": (0.0, 0.5),
    "specular": (0.0, 0.5),
    "shininess": (2.0, 60.0),
}

PRINCIPLED_DOMAINS = {
    "particle_albedo": Domain(0.0, 1.0, meaning="particle reflectance"),
    "substrate_albedo": Domain(0.0, 1.0, meaning="substrate reflectance"),
    "ambient": Domain(0.0, 1.0, meaning="ambient fraction of the light"),
    "specular": Domain(0.0, meaning="specular weight"),
    "shininess": Domain(0.0, meaning="Blinn-Phong exponent"),
}

PRINCIPLED = Shader("principled", blinn_phong, PRINCIPLED_RANGES, domains=PRINCIPLED_DOMAINS)
