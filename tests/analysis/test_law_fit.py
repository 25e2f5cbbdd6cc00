"""The size law refitted to measured whole particles (analysis.law_fit)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from diffrendergan.analysis.law_fit import check_fittable, fit_size_law, fitting_field_px, upper_spread
from diffrendergan.config import MaterialConfig
from diffrendergan.errors import ConfigError
from diffrendergan.evaluation.particle_sizes import law_diameters, size_stats


@pytest.fixture
def spheres(make_material: Callable[..., MaterialConfig]) -> MaterialConfig:
    """Spheres (1 nm/px, 64 px images) that never touch, of a lognormal law of 10 nm, sigma 0.25."""
    placement = {"mode": "random", "overlap_tolerance": 0.0, "margin": 0.0}
    return make_material(size={"median_nm": 10.0, "sigma": 0.25}, count={"n": 8}, placement=placement)


def test_the_fit_recovers_the_law_that_made_the_measurements(spheres: MaterialConfig) -> None:
    """Whole particles measured in 128 px fields of a known law; the fit starts from another law
    and finds the known one (median and sigma) again, measured in fields of the same size."""
    truth = spheres
    measured = law_diameters(truth, n_images=64, seed=5, field_px=128)
    start = replace(truth, size=replace(truth.size, median_nm=16.0, sigma=0.1))
    fit = fit_size_law(start, measured, field_px=128, images=32, seed=1)
    assert fit.median_nm == pytest.approx(10.0, rel=0.08)
    assert fit.sigma == pytest.approx(0.25, abs=0.08)
    assert fit.rendered["median_nm"] == pytest.approx(np.median(measured), rel=0.05)
    override = f"material.size.median_nm={fit.median_nm:.1f} material.size.sigma={fit.sigma:.3f}"
    assert fit.override() == override


def test_upper_spread_of_a_lognormal_sample_is_z90_sigma() -> None:
    d = np.exp(np.random.default_rng(0).normal(np.log(50.0), 0.3, 20_000))
    assert upper_spread(size_stats(d)) == pytest.approx(1.2816 * 0.3, rel=0.03)


def test_field_is_the_largest_analysed_side_in_material_pixels(spheres: MaterialConfig) -> None:
    material = spheres  # 1 nm/px, 64 px images
    images = [
        {"height": 600, "width": 400, "bar_rows": 100, "pixel_size_nm": 2.0},  # 500 x 400 px -> 1000 nm
        {"height": 300, "width": 300, "bar_rows": 0, "pixel_size_nm": 1.0},
    ]
    assert fitting_field_px(images, material) == 1000
    tiny = [{"height": 20, "width": 20, "bar_rows": 0, "pixel_size_nm": 1.0}]
    assert fitting_field_px(tiny, material) == 64  # never below one material image


def test_only_a_lognormal_law_is_fitted_and_too_few_particles_are_refused(
    spheres: MaterialConfig, make_material: Callable[..., MaterialConfig]
) -> None:
    gaussian = make_material(size={"kind": "gaussian", "mean_nm": 10.0, "std_nm": 2.0})
    with pytest.raises(ConfigError, match=r"material\.size\.kind"):
        check_fittable(gaussian)
    with pytest.raises(ValueError, match="measured particles"):
        fit_size_law(spheres, np.array([10.0, 11.0]), field_px=64)
