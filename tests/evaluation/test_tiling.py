"""Sliding-window inference must reproduce the untiled result for pointwise predictors; plain tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffrendergan.evaluation.tiling import blend_window, tiled_predict, tiles


def _pointwise(batch: torch.Tensor) -> torch.Tensor:
    """Fixed per-pixel 3-class logits: (N,1,t,t) -> (N,3,t,t)."""
    return torch.cat([3 * batch, 1 - 2 * batch, torch.sin(6 * batch)], dim=1)


def _reference(image: torch.Tensor) -> torch.Tensor:
    return torch.softmax(_pointwise(image[None, None]), dim=1)[0]


@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap"),
    [(1024, 712, 256, 32), (300, 260, 128, 48), (50, 37, 256, 32), (64, 64, 64, 0)],
)
def test_stitched_equals_untiled(h: int, w: int, tile: int, overlap: int) -> None:
    image = torch.rand(h, w, generator=torch.Generator().manual_seed(h + w))
    seen: list[tuple[int, ...]] = []

    def fn(batch: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(batch.shape))
        return _pointwise(batch)

    probs = tiled_predict(fn, image, tile=tile, overlap=overlap, multiple=32)
    assert probs.shape == (3, h, w) and probs.dtype == torch.float32
    torch.testing.assert_close(probs, _reference(image), atol=1e-5, rtol=0)
    torch.testing.assert_close(probs.sum(0), torch.ones(h, w), atol=1e-5, rtol=0)
    assert all(s[1] == 1 and s[2] % 32 == 0 and s[3] % 32 == 0 for s in seen)
    assert all(s[2] <= tile and s[3] <= tile for s in seen)


def test_numpy_input_and_tile_count() -> None:
    image = np.random.default_rng(0).random((200, 130)).astype(np.float32)
    calls: list[int] = []

    def fn(batch: torch.Tensor) -> torch.Tensor:
        calls.append(batch.shape[0])
        return _pointwise(batch)

    probs = tiled_predict(fn, image, tile=64, overlap=16, multiple=32, batch_size=4)
    # padded 224x160 -> origins 0,48,96,144,160 (rows) x 0,48,96 (cols) = 15 tiles
    assert sum(calls) == 15 and max(calls) <= 4
    torch.testing.assert_close(probs, _reference(torch.from_numpy(image)), atol=1e-5, rtol=0)


def test_blend_window_is_positive_and_flat_inside() -> None:
    win = blend_window(64, 64, 16)
    assert win.min() > 0
    assert win[20:44, 20:44].eq(1).all()
    assert win[0, 32] < win[8, 32] < win[16, 32]


def test_seams_are_blended_for_a_non_local_predictor() -> None:
    """A predictor that sees tile borders: blending keeps the result close to untiled."""
    conv = torch.nn.Conv2d(1, 3, 5, padding=2, padding_mode="reflect")
    torch.manual_seed(0)
    torch.nn.init.normal_(conv.weight, std=0.3)
    yy, xx = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    image = 0.5 + 0.4 * torch.sin(yy / 9) * torch.cos(xx / 13)
    with torch.no_grad():
        full = torch.softmax(conv(image[None, None]), dim=1)[0]
    tiled = tiled_predict(conv, image, tile=64, overlap=32, multiple=32)
    assert (tiled - full).abs().max() < 0.05
    with pytest.raises(ValueError):
        tiled_predict(conv, image, tile=64, overlap=64)


def test_tiles_leave_out_the_remainder() -> None:
    cut = tiles(np.arange(10 * 7).reshape(10, 7), 3)
    assert len(cut) == 3 * 2
    assert cut[1][0, 0] == 3 and cut[2][0, 0] == 3 * 7
