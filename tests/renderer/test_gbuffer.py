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


def test_edge_distance_is_zero_on_edges_and_grows_inside() -> None:
    inst = torch.zeros(1, 21, 21, dtype=torch.long)
    inst[0, 5:16, 5:16] = 1
    d = edge_distance(inst, pixel_size_nm=2.0)[0, 0]
    assert d[5, 10] == 0 and d[10, 10] == pytest.approx(2.0 * 5, abs=1e-4)
