"""Granulometry: the max-pool openings equal scipy's grey openings, the spectrum finds a disc's
radius, ignores gain and offset, and carries a gradient to the image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from diffrendergan.models.granulometry import (
    MIN_RADIUS_PX,
    mean_radius,
    opened_mass,
    pattern_spectrum,
    spectrum_gap,
)


def _discs(radius: float, size: int = 96, seed: int = 0) -> torch.Tensor:
    """(1, 1, size, size) image of four bright discs apart on dark film with a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    img = 0.1 + 0.02 * rng.standard_normal((size, size))
    for cy, cx in np.array([[1, 1], [1, 3], [3, 1], [3, 3]]) * size / 4 + rng.uniform(-2, 2, (4, 2)):
        img[(y - cy) ** 2 + (x - cx) ** 2 <= radius**2] = 0.7
    return torch.from_numpy(img)[None, None]


def test_openings_equal_scipys_grey_openings() -> None:
    img = torch.rand(2, 1, 40, 52, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    masses = opened_mass(img, max_radius=6)
    for r in range(7):
        ref = sum(
            ndimage.grey_opening(im[0].numpy(), size=(2 * r + 1, 2 * r + 1), mode="nearest").sum()
            for im in img
        )
        assert masses[r].item() == pytest.approx(ref, rel=1e-12)
    assert (torch.diff(masses) <= 0).all()


@pytest.mark.parametrize("radius", [6.0, 11.0])
def test_spectrum_peaks_where_the_square_no_longer_fits_in_the_disc(radius: float) -> None:
    spec = pattern_spectrum(_discs(radius))
    peak = MIN_RADIUS_PX + int(spec.argmax())
    assert abs(peak - (radius / math.sqrt(2) + 0.5)) <= 1  # past the inscribed square's half-width
    assert spec.sum().item() == pytest.approx(1.0)


def test_spectrum_ignores_gain_offset_and_count() -> None:
    img = _discs(8.0)
    spec = pattern_spectrum(img)
    assert torch.allclose(pattern_spectrum(2.5 * img + 0.3), spec, atol=1e-9)
    more = torch.cat([img, _discs(8.0, seed=1)])
    assert mean_radius(pattern_spectrum(more)).item() == pytest.approx(mean_radius(spec).item(), abs=0.3)
    larger = mean_radius(pattern_spectrum(_discs(12.0)))
    assert larger > mean_radius(spec) + 1  # less than the discs' 4 / √2 px: the film's noise adds a flat tail


def test_gap_is_differentiable_and_zero_on_itself() -> None:
    target = pattern_spectrum(_discs(9.0))
    img = _discs(6.0).clone().requires_grad_(True)
    gap = spectrum_gap(pattern_spectrum(img), target)
    gap.backward()
    assert gap.item() > 1.0 and img.grad.abs().sum() > 0
    assert spectrum_gap(target, target).item() == 0.0
