"""The generator's size law that renders particles like the measured ones.

A material's size law is the law of the particles' own (volume-equivalent) diameters; what a
segmenter or a microscopist measures are equal-area diameters of the *whole* particles in a
field: projection, occlusion in agglomerates and the field's border (which cuts large particles
more often) all come between the two (:mod:`diffrendergan.evaluation.particle_sizes`). So the law
is found by rendering: the lognormal median and sigma whose renders, measured the same way in
fields of the analysed images' size, have the measured median and 90th percentile.

Why this is the size estimate of the unlabeled data: the GAN's own size-law gradients fit the
particles' cover (count x size^2) rather than their size, since grain brightness and count stand in
for it (README, "Which size the images identify"), while a segmenter trained on the GAN's data
measures the real grains nearly independently of the law it was trained on (TiO2: 202 and 210 nm
from laws 40 % apart).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from diffrendergan.config import MaterialConfig
from diffrendergan.errors import ConfigError
from diffrendergan.evaluation.particle_sizes import law_diameters, size_stats

MIN_LAW_PARTICLES = 10  # fewer measured particles say little about a median and a 90th percentile
MIN_SIGMA = 0.05  # a law narrower than this is not resolved by whole-particle measurements
Z90 = 1.2816  # the standard normal's 90 % quantile: ln(p90 / p50) of a lognormal is Z90 * sigma


def upper_spread(stats: dict) -> float:
    """ln(p90 / median) of a size sample's statistics (:func:`size_stats`). The upper half, because
    the lower one is full of the visible slivers of partly hidden particles, whatever the law's
    spread (their log-std came out 0.60 for a law of sigma 0.05)."""
    return math.log(float(stats["p90_nm"]) / float(stats["median_nm"]))


@dataclass(frozen=True)
class LawFit:
    """The fitted lognormal law (nm) with its renders' and the target's whole-particle statistics."""

    median_nm: float
    sigma: float
    field_px: int
    rendered: dict[str, float | int | None]
    target: dict[str, float | int | None]

    def override(self) -> str:
        """The Hydra overrides that render with this law."""
        return f"material.size.median_nm={self.median_nm:.1f} material.size.sigma={self.sigma:.3f}"

    def as_dict(self) -> dict:
        return {
            "median_nm": self.median_nm,
            "sigma": self.sigma,
            "field_px": self.field_px,
            "rendered_whole_particles": self.rendered,
            "measured_whole_particles": self.target,
            "override": self.override(),
        }


def check_fittable(material: MaterialConfig) -> MaterialConfig:
    """The material, if its size law can be fitted (a lognormal); else a one-line error."""
    if material.size.kind != "lognormal":
        raise ConfigError("material.size.kind", f"is {material.size.kind!r}; the law fit needs 'lognormal'")
    return material


def fitting_field_px(images: list[dict], material: MaterialConfig) -> int:
    """Side (material pixels) of the square field a law is measured in to compare it with the
    analysed images (their records: height, width, bar_rows, pixel_size_nm): their largest side."""
    sides_nm = [max(r["height"] - r["bar_rows"], r["width"]) * r["pixel_size_nm"] for r in images]
    return max(material.image_size, round(max(sides_nm) / material.pixel_size_nm))


def fit_size_law(
    material: MaterialConfig,
    diameters_nm: np.ndarray,
    field_px: int,
    iterations: int = 5,
    images: int = 256,
    seed: int = 0,
) -> LawFit:
    """Lognormal law of ``material`` (its count and placement kept) whose whole particles,
    rendered in square fields of ``field_px`` covering ``images`` material images, match the
    median and upper spread (:func:`upper_spread`) of ``diameters_nm`` (measured whole particles).

    A fixed-point iteration from the material's law: the median scales by target / rendered (the
    measured median is close to proportional to the law's), the squared spread adds the difference
    (projection, occlusion and cut add spread on top of the law's own)."""
    check_fittable(material)
    target = size_stats(diameters_nm)
    if int(target["n"]) < MIN_LAW_PARTICLES:  # type: ignore[arg-type]
        raise ValueError(f"{target['n']} measured particles; the law fit needs {MIN_LAW_PARTICLES}")
    t_median, t_spread = float(target["median_nm"]), upper_spread(target)  # type: ignore[arg-type]
    median, sigma = material.size.median_nm, material.size.sigma
    rendered: dict = {}
    for _ in range(iterations):
        law = replace(material, size=replace(material.size, median_nm=median, sigma=sigma))
        rendered = size_stats(law_diameters(law, images, seed, field_px=field_px))
        median *= t_median / float(rendered["median_nm"])  # type: ignore[arg-type]
        variance = sigma**2 + (t_spread**2 - upper_spread(rendered) ** 2) / Z90**2
        sigma = math.sqrt(max(variance, MIN_SIGMA**2))
    law = replace(material, size=replace(material.size, median_nm=median, sigma=sigma))
    rendered = size_stats(law_diameters(law, images, seed, field_px=field_px))
    return LawFit(median, sigma, field_px, rendered, target)
