"""The Otsu + watershed baseline (decoders of learned maps: tests/segmentation)."""

from __future__ import annotations

import numpy as np

from diffrendergan.evaluation.classical import otsu_watershed
from diffrendergan.metrics.segmentation import match_instances


def _spheres(shape: tuple[int, int], discs: list[tuple[float, float, float]]):
    """Exact instance map and height map of spheres (cy, cx, r); nearer surface wins."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    inst = np.zeros(shape, np.int64)
    height = np.full(shape, -np.inf)
    for k, (cy, cx, r) in enumerate(discs, start=1):
        d2 = r**2 - (yy - cy) ** 2 - (xx - cx) ** 2
        h = np.sqrt(np.clip(d2, 0, None)) + k * 0.5  # later spheres sit slightly higher
        front = (d2 >= 0) & (h > height)
        inst[front] = k
        height[front] = h[front]
    return inst, np.where(np.isfinite(height), height, 0.0)


def test_otsu_watershed_five_noisy_discs() -> None:
    discs = [(20, 20, 9), (20, 60, 8), (60, 22, 10), (64, 60, 9), (64, 77, 8)]  # last two touch
    inst, _ = _spheres((96, 96), discs)
    rng = np.random.default_rng(0)
    image = np.where(inst > 0, 0.75, 0.25) + rng.normal(0, 0.08, inst.shape)
    pred = otsu_watershed(image, min_distance_px=3, min_size_px=8)
    assert pred.max() == 5
    matches, n_gt, n_pred = match_instances(inst, pred)
    assert (n_gt, n_pred, len(matches)) == (5, 5, 5)
    assert otsu_watershed(np.zeros((16, 16))).max() == 0
