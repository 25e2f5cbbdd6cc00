"""The detector direction is one quantity: rotating scene and detector together rotates the image;
cast shadows are bounded; the substrate residue is thin, bounded, seeded,
grows as its learned level falls and coarsens with its learned blend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import torch

from diffrendergan.config import RendererConfig
from diffrendergan.rendering.gbuffer import (
    COARSE_FILM_STREAM,
    RESIDUE_COARSE_SCALE_NM,
    detector_shadow,
    film_field,
)
from diffrendergan.rendering.renderer import MicroscopyRenderer
from diffrendergan.scene.layout import Layout
from diffrendergan.shading.sem import RESIDUE_FILL, film_blend, film_residue

SIZE = 64
# (x, y, z) -> (y, S - x, z): the rotation torch.rot90(image, 1) applies to image positions.
ROT90 = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def _rotated(lay: Layout) -> Layout:
    xyz = lay.xyzs[:, :3] @ ROT90.T + torch.tensor([0.0, float(SIZE), 0.0])
    return replace(
        lay, xyzs=torch.cat([xyz, lay.xyzs[:, 3:]], 1), rotation=ROT90 @ lay.rotation, seed=lay.seed
    )


def _render(material, layout: Layout) -> torch.Tensor:
    r = MicroscopyRenderer(material, RendererConfig(cache_fragments=False))
    values = {n: 0.5 * (rg.low + rg.high) for n, rg in r.space.ranges.items()}
    values.update(detector_asymmetry=0.45, shadow_strength=0.6, substrate_texture=0.0, residue_gain=0.0)
    unit = r.space.to_unit(values)
    return r.shade(r.gbuffer([layout]), unit, noise=False).image[0, 0]


@pytest.mark.parametrize("azimuth", [90.0, 20.0])  # 20: off-axis (marching shadow, no rounding ties)
def test_rotating_scene_and_detector_rotates_the_image(
    make_material: Callable, make_layout: Callable, azimuth: float
) -> None:
    m = make_material(
        image_size=SIZE, shape={"family": "faceted", "elongation": 1.6}, detector_azimuth_deg=azimuth
    )
    g = torch.Generator().manual_seed(4)
    rot = torch.linalg.qr(torch.randn(3, 3, 3, generator=g))[0]
    rot = rot * torch.linalg.det(rot)[:, None, None].sign()  # proper rotations
    lay = make_layout([[20.3, 24.1, 12.0, 18.0], [41.7, 38.2, 9.0, 16.0], [30.2, 45.5, 24.0, 12.0]], rot)
    image = _render(m, lay)
    turned = _render(replace(m, detector_azimuth_deg=azimuth - 90.0), _rotated(lay))
    expected = torch.rot90(image, 1, dims=(0, 1))
    close = (turned - expected).abs() < 1e-3
    assert close.float().mean() > 0.99  # rasterization may flip a few silhouette pixels
    # The contrast really depends on the direction: the same scene with an unrotated detector differs.
    wrong = _render(replace(m, detector_azimuth_deg=azimuth), _rotated(lay))
    assert ((wrong - expected).abs() > 1e-2).float().mean() > 0.02


def test_shadow_is_bounded_by_its_reach() -> None:
    h = torch.zeros(1, 64, 64)
    h[0, 40:50, 30:34] = 500.0  # a tall stack; detector towards +y (down): shadow extends upwards
    free = detector_shadow(h, 1.0, 90.0)[0, 0]
    bounded = detector_shadow(h, 1.0, 90.0, reach_px=6)[0, 0]
    assert free[0:40, 32].gt(0).sum() == 40  # unbounded: a band to the image edge
    assert bounded[0:40, 32].gt(0).sum() == 6  # bounded: six pixels
    assert torch.equal(bounded[34:40], free[34:40])  # within the reach both agree


def test_bounded_shadow_matches_marching_reference() -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.rand(2, 48, 56, generator=g)
    h[:, 10:20, 20:30] += 30.0
    fast = detector_shadow(h, 1.0, 180.0, reach_px=7)
    ref = detector_shadow(h, 1.0, 180.0 + 1e-4, max_steps=200, reach_px=7)
    assert torch.allclose(fast, ref, atol=1e-4)


def test_film_field_is_seeded_and_standardised() -> None:
    a = film_field([1, 2], 256, 7.34)
    assert a.shape == (2, 1, 256, 256)
    assert torch.allclose(a.mean((1, 2, 3)), torch.zeros(2), atol=1e-4)
    assert torch.allclose(a.std((1, 2, 3)), torch.ones(2), atol=1e-3)
    assert torch.equal(a, film_field([1, 2], 256, 7.34))
    assert not torch.equal(a[0], a[1])


def test_residue_is_thin_bounded_and_grows_as_its_level_falls() -> None:
    """Outlines peak at 1 where the field crosses the level; a lower level gives more residue; at
    the old threshold (1.3 stds) it stays sparse: thin loops, not a network."""
    field = film_field([1, 2], 256, 7.34)
    covered = {}
    for level in (0.8, 1.3, 1.8):
        r = film_residue(field, torch.full((2,), level))
        assert r.min() >= 0 and r.max() <= 1 + RESIDUE_FILL
        covered[level] = float((r > 0.3).float().mean())
    assert covered[0.8] > covered[1.3] > covered[1.8] > 0
    assert 0.005 < covered[1.3] < 0.15


def test_coarse_film_field_is_independent_and_the_blend_keeps_unit_std() -> None:
    """The coarse field is its own draw: blended with the fine one by cos / sin the field stays
    unit-std, so the residue level keeps its meaning; the blend's ends are the two fields, and
    the coarse field's islands are larger (fewer level crossings per pixel)."""
    fine = film_field([1, 2], 256, 7.34)
    coarse = film_field([1, 2], 256, 7.34, RESIDUE_COARSE_SCALE_NM, COARSE_FILM_STREAM)
    assert abs(float((fine * coarse).mean())) < 0.05
    for c in (0.0, 0.3, 0.5, 1.0):
        blend = film_blend(fine, coarse, torch.full((2,), c))
        assert torch.allclose(blend.std((1, 2, 3)), torch.ones(2), atol=0.05)
    assert torch.allclose(film_blend(fine, coarse, torch.zeros(2)), fine)
    assert torch.allclose(film_blend(fine, coarse, torch.ones(2)), coarse, atol=1e-6)

    def crossings(f: torch.Tensor) -> float:
        above = f > 1.3
        return float((above[..., 1:] != above[..., :-1]).float().mean())

    assert crossings(coarse) < 0.6 * crossings(fine)
