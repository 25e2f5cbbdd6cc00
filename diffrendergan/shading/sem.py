"""Secondary-electron contrast (SEM) and its helium-ion variant (HIM).

Physics captured (Reimer, *Scanning Electron Microscopy*, ch. 4):
* tilt contrast — SE yield grows with the local tilt θ between surface normal and beam,
  approximately as a secant law (1 / cos θ)^k, up to a grazing limit: cos θ is floored at
  ``grazing_cos``. Towards a silhouette the secant diverges, but the probe and the pixel average
  it over the steep sidewall, and an in-lens detector collects poorly the SEs that leave a
  sidewall sideways; on real TiO2 SEM the outline pixel is no brighter than the grain two pixels
  in. A floor of 0.15 lets the outline shine (1/0.15)^k times the summit; the GAN learns it;
* volume (SE2) contrast — when the primary electrons' range exceeds the particle (≈1-2 µm at
  20 kV against particles of ~100 nm), backscattered and transmitted electrons release SEs through
  every surface of the particle, so its whole body shines, more where the beam's path through it
  is longer: ``volume_yield · (1 - exp(-t / volume_length_nm))`` with t the path length (nm). This
  is what makes real TiO2 grains bright right through instead of rim-lit rings;
* edge effect — near edges SEs escape from more than one surface: brightening that decays with
  the distance to the silhouette over a length comparable to the SE escape volume. Over the film
  the sidewall below a silhouette is open; over another grain of an agglomerate it faces that
  grain across a gap that closes where they touch, and the SEs it emits (a few eV, a range of nm
  in the solid) mostly enter that grain. ``edge_over_grains`` is the share of the edge effect kept
  there (1: as over the film; the blend of the distances to any free edge and to one over the
  film). With the whole edge effect kept, the seam between touching grains shone brighter than
  their cores (1.11 on renders of a GAN fitted to real TiO2), where real seams are darker (0.93);
  without it, the same renders gave 0.92 (README, "Edges over grains");
* recapture (ambient occlusion) — SEs emitted into a crease between touching grains, or at the
  foot of a grain, hit the neighbouring surface and are lost: the signal falls by
  ``occlusion_strength`` times the hidden fraction of the sky (``gb.occlusion``). This is what
  separates touching grains on real micrographs (a dark seam) without a bright rim;
* grain-to-grain spread — grains of one micrograph differ in SE yield (crystal orientation and
  facets, contact with the film and charging, stacking): on the real TiO2 SEM the mean brightness
  of grains larger than 300 px varies by 27 % (coefficient of variation) within an image,
  independently of size. Each grain's signal is scaled by exp(σ z - σ² / 2) with z its seeded
  standard-normal value (``gb.grain``) and σ = ``grain_spread``; a brightness step between
  touching grains is also what tells them apart;
* material contrast — separate particle and substrate yields;
* detector geometry — an Everhart-Thornley side detector sees surfaces facing it brighter and
  surfaces hidden from it (behind a particle) darker; an in-lens detector has asymmetry ~0;
* substrate texture — faint, smooth undulation of the support film, and its residue: thin flat
  islands of dried residue whose edges shine by the edge effect, so they show as thin bright loops
  and arcs (with a faint fill), 8-25 px across on the Rühle TiO2 film and covering much of it. They
  are drawn where the film's band-limited field crosses ``residue_level`` (in field stds: lower =
  more and larger islands), softly; the field blends two correlation lengths (22 and 66 nm) by
  ``residue_coarseness`` (0: fine islands only, 1: coarse only; between: coarse loops with
  irregular outlines), so that the GAN learns how much residue there is as well as
  how bright it is (``residue_gain``, relative to the substrate yield). A segmenter must learn
  that these are not particles.
HIM images show the same mechanisms with stronger edges, almost no shadowing and almost no volume
signal (an ion beam's interaction volume is shallow); the ``him`` shader is the same function
with ranges tuned for that.
"""

from __future__ import annotations

import math

import torch

from diffrendergan.params.space import Domain
from diffrendergan.rendering.gbuffer import GBuffer
from diffrendergan.shading.base import Params, Shader, per_image

RESIDUE_SOFTNESS = 0.08  # width of an island's edge in field stds: outlines ~1-2 px wide
RESIDUE_FILL = 0.15  # an island's interior, relative to its outline


def film_blend(fine: torch.Tensor, coarse: torch.Tensor, coarseness: torch.Tensor) -> torch.Tensor:
    """Unit-std blend (B, 1, H, W) of two independent unit-std fields: cos(a) fine + sin(a) coarse
    with a = coarseness * pi / 2, so the level keeps its meaning in stds and the gradient in the
    coarseness stays finite at 0 (a square-root weight's would not)."""
    a = per_image(coarseness) * (math.pi / 2)
    return torch.cos(a) * fine + torch.sin(a) * coarse


def film_residue(field: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Residue (B, 1, H, W), peaking at 1 on island outlines, from the film field (B, 1, H, W) and
    the level (B,): a soft level set, so differentiable in the level."""
    inside = torch.sigmoid((field - per_image(level)) / RESIDUE_SOFTNESS)
    return 4.0 * inside * (1.0 - inside) + RESIDUE_FILL * inside


def secondary_electron(gb: GBuffer, p: Params) -> torch.Tensor:
    """SE signal (B, 1, H, W); see module docstring for the terms. The detector direction comes
    with the G-buffer (``gb.facing``, ``gb.shadow``), so both always agree."""
    if gb.thickness is None:
        raise ValueError("the SE shader needs thickness maps: render with thickness=True")
    nz = torch.maximum(gb.normal[:, 2:3].clamp(max=1.0), per_image(p["grazing_cos"]))
    tilt = nz.reciprocal().pow(per_image(p["tilt_exponent"]))
    directional = 1.0 + per_image(p["detector_asymmetry"]) * gb.facing
    length = per_image(p["edge_length_nm"])
    over_film = torch.exp(-gb.film_edge_dist / length)
    any_edge = torch.exp(-gb.edge_dist / length)  # >= over_film: the nearest free edge is nearer
    edge = per_image(p["edge_gain"]) * (over_film + per_image(p["edge_over_grains"]) * (any_edge - over_film))
    volume = per_image(p["volume_yield"]) * (
        1.0 - torch.exp(-gb.thickness / per_image(p["volume_length_nm"]))
    )
    spread = per_image(p["grain_spread"])
    grain = torch.exp(spread * gb.grain - 0.5 * spread * spread)
    particle = ((per_image(p["particle_yield"]) * tilt + volume) * directional + edge) * grain
    field = film_blend(gb.film, gb.film_coarse, p["residue_coarseness"])
    residue = per_image(p["residue_gain"]) * film_residue(field, p["residue_level"])
    film = 1.0 + per_image(p["substrate_texture"]) * gb.texture + residue
    substrate = per_image(p["substrate_yield"]) * film
    shadow = 1.0 - per_image(p["shadow_strength"]) * (1.0 - torch.exp(-gb.shadow / 20.0))
    recaptured = 1.0 - per_image(p["occlusion_strength"]) * gb.occlusion
    return (gb.particle * particle + (1.0 - gb.particle) * substrate) * shadow * recaptured


SEM_RANGES = {
    "particle_yield": (0.1, 0.8),
    "substrate_yield": (0.02, 0.4),
    "tilt_exponent": (0.2, 1.5),
    "edge_gain": (0.0, 0.8),
    "edge_length_nm": (3.0, 40.0),
    "detector_asymmetry": (0.0, 0.5),
    "shadow_strength": (0.0, 0.7),
    "substrate_texture": (0.0, 0.3),
    "volume_yield": (0.0, 0.6),
    "volume_length_nm": (20.0, 400.0),
    "residue_gain": (0.0, 1.5),
    "residue_level": (0.6, 2.0),
    "grazing_cos": (0.15, 0.9),
    "occlusion_strength": (0.0, 0.9),
    "grain_spread": (0.0, 0.6),
    "residue_coarseness": (0.0, 1.0),
    "edge_over_grains": (0.0, 1.0),
}

HIM_RANGES = {
    **SEM_RANGES,
    "edge_gain": (0.2, 1.5),
    "edge_length_nm": (1.0, 15.0),
    "detector_asymmetry": (0.0, 0.15),
    "shadow_strength": (0.0, 0.2),
    "volume_yield": (0.0, 0.05),  # helium ions stay near the surface: little SE2 from the volume
}

# What the formula allows: yields, gains and the secant exponent are non-negative; the decay
# length divides; asymmetry, shadow and texture are fractions of the signal (1 + a * facing with
# facing in [-1, 1], 1 - s * (...), 1 + t * texture with unit-std texture): above 1 the signal
# turns negative.
SE_DOMAINS = {
    "particle_yield": Domain(0.0, meaning="SE yield of the particles"),
    "substrate_yield": Domain(0.0, meaning="SE yield of the substrate"),
    "tilt_exponent": Domain(0.0, meaning="exponent of the secant tilt law"),
    "edge_gain": Domain(0.0, meaning="edge brightening"),
    "edge_length_nm": Domain(0.0, open_low=True, meaning="edge decay length, nm"),
    "detector_asymmetry": Domain(0.0, 1.0, meaning="detector asymmetry, a fraction of the signal"),
    "shadow_strength": Domain(0.0, 1.0, meaning="shadow strength, a fraction of the signal"),
    "substrate_texture": Domain(0.0, 1.0, meaning="substrate texture amplitude, relative to its yield"),
    "volume_yield": Domain(0.0, meaning="SE yield of the particle volume (SE2)"),
    "volume_length_nm": Domain(0.0, open_low=True, meaning="saturation path length of the volume term, nm"),
    "residue_gain": Domain(0.0, meaning="brightness of the substrate residue, relative to its yield"),
    "residue_level": Domain(meaning="level of the film field above which residue islands lie, in stds"),
    "grazing_cos": Domain(0.0, 1.0, open_low=True, meaning="floor of cos(tilt) in the secant law"),
    "occlusion_strength": Domain(0.0, 1.0, meaning="signal lost where the sky is hidden, a fraction"),
    "grain_spread": Domain(0.0, meaning="log-normal sigma of the grains' SE yield"),
    "residue_coarseness": Domain(
        0.0, 1.0, meaning="blend of the film's coarse residue field (0 fine, 1 coarse)"
    ),
    "edge_over_grains": Domain(
        0.0, 1.0, meaning="share of the edge effect kept where a grain stands over another"
    ),
}

# Parameters added after checkpoints were written, with the values that render as those did
# (the secant's old fixed floor, no recapture, the whole edge effect over grains): older
# checkpoints load with them held fixed, in the order they arrived. The residue's level is the
# old fixed threshold (1.3 stds of the same field); the old outlines were hard-edged, so such
# checkpoints' residue now renders softer.
SE_INTRODUCED = {
    "grazing_cos": 0.15,
    "occlusion_strength": 0.0,
    "grain_spread": 0.0,
    "residue_level": 1.3,
    "residue_coarseness": 0.0,
    "edge_over_grains": 1.0,
}

SE_SHADER = {"needs_thickness": True, "domains": SE_DOMAINS, "introduced": SE_INTRODUCED}
SEM = Shader("sem", secondary_electron, SEM_RANGES, **SE_SHADER)
HIM = Shader("him", secondary_electron, HIM_RANGES, **SE_SHADER)
