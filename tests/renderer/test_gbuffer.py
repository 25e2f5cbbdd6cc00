"""G-buffer quantities: the fast axis-aligned detector shadow equals the marching reference; edge
distances; ambient occlusion of convex grains, creases and grain feet."""

from __future__ import annotations

import pytest
import torch

from diffrendergan.rendering.gbuffer import ambient_occlusion, detector_shadow, edge_distances


@pytest.mark.parametrize("azimuth", [0.0, 90.0, 180.0, 270.0])
def test_axis_shadow_matches_marching(azimuth: float) -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.rand(2, 48, 56, generator=g)
    h[:, 10:20, 20:30] += 30.0
    h[:, 30:34, 5:9] += 12.0
    fast = detector_shadow(h, 1.0, azimuth)
    # A tiny azimuth offset forces the marching path (same rounded pixel offsets).
    ref = detector_shadow(h, 1.0, azimuth + 1e-4, max_steps=200)
    assert torch.allclose(fast, ref, atol=1e-4)
    assert fast.max() > 20  # the tall block casts a real shadow


def test_shadow_falls_on_the_side_away_from_the_detector() -> None:
    h = torch.zeros(1, 32, 32)
    h[0, 12:20, 12:20] = 20.0
    shadow = detector_shadow(h, 1.0, 0.0)[0, 0]  # detector towards +x (right)
    assert shadow[16, 8] > 0  # left of the block: the block hides the detector
    assert shadow[16, 24] == 0  # right of the block: free line of sight


def test_edge_distance_is_zero_on_free_edges_and_grows_inside() -> None:
    inst = torch.zeros(1, 21, 21, dtype=torch.long)
    inst[0, 5:16, 5:16] = 1
    height = (inst > 0).float() * 10.0
    d = edge_distances(inst, height, pixel_size_nm=2.0)[0][0, 0]
    assert d[5, 10] == 0 and d[10, 10] == pytest.approx(2.0 * 5, abs=1e-4)
    assert d[0, 0] == 1e4  # substrate: no edge effect


def _rear_and_front() -> tuple[torch.Tensor, torch.Tensor]:
    """Instances and heights (1, 20, 30) of a rear block and a higher one in front of it."""
    inst = torch.zeros(1, 20, 30, dtype=torch.long)
    height = torch.zeros(1, 20, 30)
    inst[0, 5:15, 3:15], height[0, 5:15, 3:15] = 1, 10.0  # rear, lower
    inst[0, 5:15, 15:27], height[0, 5:15, 15:27] = 2, 30.0  # front, higher
    return inst, height


def test_occluded_particle_has_no_edge_where_the_front_one_covers_it() -> None:
    d = edge_distances(*_rear_and_front(), pixel_size_nm=1.0)[0][0, 0]
    assert d[10, 15] == 0  # the front particle's edge over the rear one is free
    assert d[10, 14] == pytest.approx(4.0)  # the rear's pixel there: its own nearest free edge (row 14)
    assert d[10, 3] == 0  # the rear's edge towards the substrate is free


def test_film_edges_leave_out_the_edge_over_another_grain() -> None:
    any_edge, film = (d[0, 0] for d in edge_distances(*_rear_and_front(), pixel_size_nm=1.0))
    assert any_edge[10, 15] == 0 and film[10, 15] == pytest.approx(4.0)  # film edges: rows 5, 14
    assert film[10, 26] == 0 and film[5, 20] == 0  # its edges over the film stay
    assert torch.equal(film[:, :15], any_edge[:, :15])  # the rear particle had none over a grain
    assert (film >= any_edge).all()


def test_touching_grains_of_equal_height_share_no_edge_and_border_is_none() -> None:
    inst = torch.zeros(1, 12, 24, dtype=torch.long)
    inst[0, :, :12], inst[0, :, 12:] = 1, 2  # fill the image: no substrate at all
    height = torch.full((1, 12, 24), 5.0)
    d = edge_distances(inst, height, pixel_size_nm=1.0)[0][0, 0]
    assert (d == 1e4).all()  # a crease between equal grains and the image border are no edges


def _spheres(centres_px: list[tuple[float, float]], radius_nm: float, size: int, px: float):
    """Height (1, H, W) and unit normal (1, 3, H, W) of spheres resting on flat film (z = 0),
    seen from above; where they overlap the higher surface wins."""
    y, x = torch.meshgrid(torch.arange(size) * px, torch.arange(size) * px, indexing="ij")
    height, normal = torch.zeros(size, size), torch.zeros(3, size, size)
    normal[2] = 1.0
    for cy, cx in centres_px:
        dx, dy = x - cx * px, y - cy * px
        z = torch.sqrt((radius_nm**2 - dx**2 - dy**2).clamp_min(0.0))
        top = (dx**2 + dy**2 < radius_nm**2) & (radius_nm + z > height)
        height = torch.where(top, radius_nm + z, height)
        for k, comp in enumerate((dx, dy, z)):
            normal[k] = torch.where(top, comp / radius_nm, normal[k])
    return height[None], normal[None]


def test_occlusion_is_zero_on_a_grain_cap_and_open_film_and_high_at_its_foot() -> None:
    height, normal = _spheres([(24.3, 24.6)], radius_nm=60.0, size=48, px=5.0)
    occ = ambient_occlusion(height, normal, pixel_size_nm=5.0)[0, 0]
    cap = (height[0] > 0) & (normal[0, 2] > 0.5)
    assert occ[cap].max() < 0.01  # a convex surface hides no sky beyond its own tilt
    assert occ[0, 0] == 0 and occ[47, 47] == 0  # open film, beyond the reach
    # The steep sidewall's emission hemisphere dips towards the film below it.
    assert occ[(height[0] > 0) & (normal[0, 2] < 0.2)].min() > 0.05
    rows, cols = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    foot = (height[0] == 0) & (torch.hypot(rows - 24.3, cols - 24.6) < 13.5)
    assert occ[foot].min() > 0.2  # beside the grain a fifth of the sky is wall


def test_occlusion_darkens_the_crease_between_touching_grains() -> None:
    height, normal = _spheres([(24.0, 14.0), (24.0, 33.0)], radius_nm=50.0, size=48, px=5.0)
    occ = ambient_occlusion(height, normal, pixel_size_nm=5.0)[0, 0]
    crease = occ[20:29, 23:25]  # the grains meet on the column between x = 23 and 24
    summits = torch.stack([occ[24, 14], occ[24, 33]])
    assert crease.mean() > 0.1 and summits.max() < 0.01


def test_occlusion_rotates_with_the_surface() -> None:
    """The eight azimuths are symmetric under a quarter turn: turning the surface (heights and
    normals) turns the occlusion map exactly."""
    height, normal = _spheres([(20.2, 15.7), (27.5, 30.1), (12.0, 33.0)], radius_nm=45.0, size=48, px=5.0)
    occ = ambient_occlusion(height, normal, 5.0)
    # A quarter turn of the image (rot90 over (H, W)): a vector (x, y) becomes (y, -x).
    turned_normal = torch.stack([normal[:, 1], -normal[:, 0], normal[:, 2]], 1).rot90(1, (-2, -1))
    turned = ambient_occlusion(height.rot90(1, (-2, -1)), turned_normal, 5.0)
    assert occ.max() > 0.2
    assert torch.allclose(turned, occ.rot90(1, (-2, -1)), atol=1e-5)
