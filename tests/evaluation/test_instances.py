"""3-class prediction -> instances, and the Otsu + watershed baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffrendergan.evaluation.instances import (
    instances_from_prediction,
    otsu_watershed,
    remove_small,
)
from diffrendergan.metrics.segmentation import match_instances
from diffrendergan.rendering.masks import classes_from_rendered


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


@pytest.fixture(scope="module")
def two_discs() -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping discs: exact instance map and the 3-class target built from it."""
    inst, height = _spheres((64, 80), [(32, 28, 13), (32, 50, 13)])
    classes, _ = classes_from_rendered(torch.from_numpy(inst)[None], torch.from_numpy(height)[None])
    return inst, classes[0].numpy()


def _assert_recovers(exact: np.ndarray, pred: np.ndarray, min_iou: float) -> None:
    matches, n_gt, n_pred = match_instances(exact, pred)
    assert (n_gt, n_pred) == (2, 2)
    assert len(matches) == 2
    assert min(m[2] for m in matches) > min_iou, matches


@pytest.mark.parametrize("method", ["boundary", "watershed"])
def test_touching_discs_are_separated(two_discs, method: str) -> None:
    exact, classes = two_discs
    assert (classes == 2).any()
    pred = instances_from_prediction(classes, method=method)
    assert pred.dtype == np.int32
    _assert_recovers(exact, pred, min_iou=0.9)
    # Every foreground pixel is given to a particle: no area is lost to the boundary class.
    assert ((pred > 0) == (classes >= 1)).all()


def test_probabilities_input_equals_class_input(two_discs) -> None:
    _, classes = two_discs
    probs = np.eye(3, dtype=np.float32)[classes].transpose(2, 0, 1)  # (3,H,W) one-hot
    for method in ("boundary", "watershed"):
        a = instances_from_prediction(classes, method=method)
        b = instances_from_prediction(torch.from_numpy(probs), method=method)
        np.testing.assert_array_equal(a, b)


def test_watershed_survives_a_gap_in_the_boundary(two_discs) -> None:
    exact, classes = two_discs
    broken = classes.copy()
    ys, xs = np.nonzero(broken == 2)
    mid = np.argsort(np.abs(ys - 32))[:3]  # open the line around the neck
    broken[ys[mid], xs[mid]] = 1
    assert instances_from_prediction(broken, method="boundary").max() == 1  # merged
    _assert_recovers(exact, instances_from_prediction(broken, method="watershed"), min_iou=0.8)


def test_grow_px_zero_keeps_bare_components(two_discs) -> None:
    _, classes = two_discs
    pred = instances_from_prediction(classes, method="boundary", grow_px=0)
    assert not (pred[classes == 2] > 0).any()
    assert ((pred > 0) == (classes == 1)).all()


def test_small_instances_removed_and_relabelled() -> None:
    c = np.zeros((20, 20), np.uint8)
    c[1:6, 1:6] = 1
    c[10, 10] = 1  # single-pixel speck
    c[12:18, 12:18] = 1
    out = instances_from_prediction(c, min_size_px=4)
    assert out.max() == 2 and out[10, 10] == 0
    assert set(np.unique(out)) == {0, 1, 2}
    inst = np.array([[0, 5, 5], [9, 0, 0]])
    np.testing.assert_array_equal(remove_small(inst, 2), [[0, 1, 1], [0, 0, 0]])
    with pytest.raises(ValueError):
        instances_from_prediction(c, method="nope")  # type: ignore[arg-type]


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
