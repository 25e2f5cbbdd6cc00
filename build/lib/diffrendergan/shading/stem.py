"""Mass-thickness contrast for (S)TEM high-angle annular dark field.

HAADF intensity grows with the projected mass along the beam: I = b + c (1 - exp(-t / λ)), with
t the summed path length through particles (front- to back-face depth, from two rasterizations)
and λ an effective mean free path that saturates thick regions.
"""

from __future__ import annotations

import torch

from diffrendergan.params.space import Domain
from diffrendergan.rendering.gbuffer import GBuffer
from diffrendergan.shading.base import Params, Shader, per_image


def haadf(gb: GBuffer, p: Params) -> torch.Tensor:
    if gb.thickness is None:
        raise ValueError("stem_haadf needs thickness maps: render with thickness=True")
    mass = 1.0 - torch.exp(-gb.thickness / per_image(p["mean_free_path_nm"]))
    return per_image(p["background"]) + per_image(p["contrast"]) * mass


STEM_RANGES = {"background": (0.0, 0.2), "contrast": (0.2, 1.0), "mean_free_path_nm": (20.0, 500.0)}

STEM_DOMAINS = {
    "background": Domain(0.0, meaning="background intensity"),
    "contrast": Domain(0.0, meaning="mass-thickness contrast"),
    "mean_free_path_nm": Domain(0.0, open_low=True, meaning="mean free path, nm"),
}

STEM_HAADF = Shader("stem_haadf", haadf, STEM_RANGES, needs_thickness=True, domains=STEM_DOMAINS)
