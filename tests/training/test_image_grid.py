"""The real | synthetic | overlay grid: tile positions and the mask tints."""

from __future__ import annotations

import numpy as np

from diffrendergan.training.callbacks import image_grid


def test_grid_rows_hold_real_synthetic_and_tinted_overlay() -> None:
    rng = np.random.default_rng(0)
    real, fake = rng.random((3, 20, 24)), np.full((3, 20, 24), 0.5)
    classes = np.zeros((3, 20, 24), np.uint8)
    classes[:, 5:10, 5:10], classes[:, 12, 5:10] = 1, 2
    pad, h, w = 4, 20, 24
    grid = image_grid(real, fake, classes, pad=pad)
    assert grid.shape == (3 * h + 4 * pad, 3 * w + 4 * pad, 3) and grid.dtype == np.uint8
    x = pad + 2 * (w + pad)  # third column
    tile = lambda row: grid[pad + row * (h + pad) : pad + row * (h + pad) + h, x : x + w]  # noqa: E731
    assert np.abs(tile(0)[..., 0].astype(float) - real[2] * 255).max() <= 1.0
    assert (tile(1) == 127).all()  # 0.5 grey, no tint
    overlay = tile(2).astype(int)
    particle, boundary, substrate = overlay[7, 7], overlay[12, 7], overlay[0, 0]
    assert (substrate == 127).all()
    assert particle[1] > particle[0] and particle[1] > particle[2]  # green
    assert boundary[0] > boundary[1] and boundary[0] > boundary[2]  # red
    assert (grid[:pad] == 255).all() and (grid[:, :pad] == 255).all()  # white padding
