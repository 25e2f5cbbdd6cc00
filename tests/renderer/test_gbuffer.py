"""G-buffer quantities: the fast axis-aligned detector shadow equals the marching reference."""

from __future__ import annotations

import pytest
import torch

from diffrendergan.rendering.gbuffer import detector_shadow, edge_distance


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
    d = edge_distance(inst, height, pixel_size_nm=2.0)[0, 0]
    assert d[5, 10] == 0 and d[10, 10] == pytest.approx(2.0 * 5, abs=1e-4)
    assert d[0, 0] == 1e4  # substrate: no edge effect


def test_occluded_particle_has_no_edge_where_the_front_one_covers_it() -> None:
    inst = torch.zeros(1, 20, 30, dtype=torch.long)
    height = torch.zeros(1, 20, 30)
    inst[0, 5:15, 3:15], height[0, 5:15, 3:15] = 1, 10.0  # rear, lower
    inst[0, 5:15, 15:27], height[0, 5:15, 15:27] = 2, 30.0  # front, higher
    d = edge_distance(inst, height, pixel_size_nm=1.0)[0, 0]
    assert d[10, 15] == 0  # the front particle's edge over the rear one is free
    assert d[10, 14] == pytest.approx(4.0)  # the rear's pixel there: its own nearest free edge (row 14)
    assert d[10, 3] == 0  # the rear's edge towards the substrate is free


def test_touching_grains_of_equal_height_share_no_edge_and_border_is_none() -> None:
    inst = torch.zeros(1, 12, 24, dtype=torch.long)
    inst[0, :, :12], inst[0, :, 12:] = 1, 2  # fill the image: no substrate at all
    height = torch.full((1, 12, 24), 5.0)
    d = edge_distance(inst, height, pixel_size_nm=1.0)[0, 0]
    assert (d == 1e4).all()  # a crease between equal grains and the image border are no edges
