"""Segmentation metrics (AP50, PQ, Dice, mIoU) and particle-size metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffrendergan.metrics.segmentation import (
    aggregate,
    ap50,
    dice,
    equivalent_diameters,
    evaluate_image,
    instances_from_classes,
    match_instances,
    miou,
    pairwise_iou,
    panoptic_quality,
    particle_iou,
    size_distribution_errors,
)


def _disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def _touching_gt() -> np.ndarray:
    """3-class map: two touching squares separated by a boundary column, plus one isolated."""
    c = np.zeros((40, 40), np.uint8)
    c[5:15, 5:25] = 1
    c[5:15, 15] = 2  # separating line -> two instances
    c[25:35, 25:35] = 1
    return c


def _three_instance_example() -> tuple[np.ndarray, np.ndarray]:
    """GT: A (5x5), B (10x10), C (6x6). Pred: A missed, B split 40/50 px, C one row short."""
    gt = np.zeros((40, 40), np.int32)
    gt[0:5, 0:5] = 1  # A, 25 px
    gt[20:30, 0:10] = 2  # B, 100 px
    gt[10:16, 20:26] = 3  # C, 36 px
    pred = np.zeros_like(gt)
    pred[20:30, 0:4] = 7  # B left piece, 40 px: IoU 0.4
    pred[20:30, 5:10] = 9  # B right piece, 50 px: IoU 0.5 (not > 0.5)
    pred[10:15, 20:26] = 4  # C, 30 px: IoU 30/36
    return gt, pred


def test_instances_from_classes_uses_4_connectivity() -> None:
    c = _touching_gt()
    inst = instances_from_classes(c)
    assert inst.dtype == np.int32 and inst.max() == 3
    diag = np.zeros((4, 4), np.uint8)
    diag[0, 0] = diag[1, 1] = 1  # diagonal neighbours are separate instances
    assert instances_from_classes(diag).max() == 2


def test_pairwise_iou_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, (30, 30)) * 3  # non-contiguous ids
    pred = rng.integers(0, 4, (30, 30)) + 100 * (rng.random((30, 30)) > 0.5)
    g, p, iou = pairwise_iou(gt, pred)
    assert len(g) == len(set(zip(g.tolist(), p.tolist())))
    for gi, pi, v in zip(g, p, iou):
        a, b = gt == gi, pred == pi
        assert v == pytest.approx((a & b).sum() / (a | b).sum())
    assert all(gi != 0 and pi != 0 for gi, pi in zip(g, p))


def test_hand_made_three_instance_example() -> None:
    gt, pred = _three_instance_example()
    matches, n_gt, n_pred = match_instances(gt, pred)
    assert (n_gt, n_pred) == (3, 3)
    assert len(matches) == 1
    g, p, iou = matches[0]
    assert (g, p) == (3, 4) and iou == pytest.approx(30 / 36)
    tp, fp, fn = 1, 2, 2
    assert ap50(gt, pred) == pytest.approx(tp / (tp + fp + fn))  # 0.2
    assert panoptic_quality(gt, pred) == pytest.approx((30 / 36) / (tp + fp / 2 + fn / 2))  # 5/18
    r = evaluate_image((gt > 0).astype(np.uint8), pred, gt_instances=gt)
    assert (r["tp"], r["fp"], r["fn"], r["n_gt"], r["n_pred"]) == (1, 2, 2, 3, 3)
    assert r["ap50"] == pytest.approx(0.2)
    assert r["pq"] == pytest.approx(5 / 18)
    # Foreground: gt 161 px, pred 120 px, all predicted pixels are on gt particles.
    assert r["dsc"] == pytest.approx(240 / 281)
    assert r["particle_iou"] == pytest.approx(120 / 161)
    bg_iou = (1600 - 161) / (1600 - 120)
    assert r["miou"] == pytest.approx(0.5 * (120 / 161 + bg_iou))


def test_lower_threshold_still_one_to_one() -> None:
    gt, pred = _three_instance_example()
    matches, _, _ = match_instances(gt, pred, iou_threshold=0.3)
    assert sorted((g, p) for g, p, _ in matches) == [(2, 9), (3, 4)]  # B -> larger piece only


def test_perfect_prediction() -> None:
    c = _touching_gt()
    pred = instances_from_classes(c)
    r = evaluate_image(c, pred, pred_classes=c)
    for k in ("dsc", "ap50", "pq", "miou", "particle_iou"):
        assert r[k] == pytest.approx(1.0), k
    assert (r["tp"], r["fp"], r["fn"]) == (3, 0, 0)
    assert r["matched_rel_errors"] == [0.0, 0.0, 0.0]
    agg = aggregate([r, r], [2.0, 2.0])
    assert agg["ap50"] == pytest.approx(1.0) and agg["pq"] == pytest.approx(1.0)
    assert agg["size_unit"] == "nm" and agg["matched_median_rel_error"] == 0.0
    assert agg["gt_mean_diameter_nm"] == pytest.approx(2.0 * agg["gt_mean_diameter_px"])
    assert agg["mean_error_nm"] == pytest.approx(0.0, abs=1e-12)
    assert agg["wasserstein_nm"] == pytest.approx(0.0, abs=1e-12)
    assert agg["rel_mean_error"] == pytest.approx(0.0, abs=1e-12)


def test_empty_cases() -> None:
    z = np.zeros((8, 8), np.int32)
    one = z.copy()
    one[2:5, 2:5] = 1
    assert ap50(z, z) == 1.0 and panoptic_quality(z, z) == 1.0
    assert dice(z > 0, z > 0) == 1.0 and miou(z > 0, z > 0) == 1.0
    assert ap50(one, z) == 0.0 and panoptic_quality(one, z) == 0.0
    assert ap50(z, one) == 0.0 and panoptic_quality(z, one) == 0.0
    assert dice(one > 0, z > 0) == 0.0 and particle_iou(one > 0, z > 0) == 0.0
    assert match_instances(z, one) == ([], 0, 1)
    r = evaluate_image(z.astype(np.uint8), one)
    assert (r["tp"], r["fp"], r["fn"]) == (0, 1, 0)
    err = size_distribution_errors(np.array([]), np.array([3.0]))
    assert all(math.isnan(v) for v in err.values())
    assert math.isnan(aggregate([r])["mean_error_px"])
    assert "mean_error_nm" not in aggregate([r], [None])  # unknown pixel size: no nm keys at all


def test_equivalent_diameter_of_discs() -> None:
    inst = np.zeros((120, 120), np.int32)
    inst[_disc(inst.shape, 30, 30, 20)] = 1
    inst[_disc(inst.shape, 80, 85, 12.5)] = 5
    d = equivalent_diameters(inst)
    assert d.shape == (2,)
    assert abs(d[0] - 40) < 1 and abs(d[1] - 25) < 1
    d_nm = equivalent_diameters(inst, pixel_size_nm=2.5)
    np.testing.assert_allclose(d_nm, 2.5 * d)
    assert equivalent_diameters(np.zeros((5, 5), np.int32)).size == 0


def test_size_distribution_errors_signed_values() -> None:
    gt = np.array([10.0, 20.0, 30.0])
    pred = gt + 2.0
    e = size_distribution_errors(gt, pred)
    assert e["mean_error_nm"] == pytest.approx(2.0)
    assert e["median_error_nm"] == pytest.approx(2.0)
    assert e["rel_mean_error"] == pytest.approx(0.1)
    assert e["wasserstein_nm"] == pytest.approx(2.0)
    assert size_distribution_errors(pred, gt)["mean_error_nm"] == pytest.approx(-2.0)


def test_aggregate_means_and_pooling() -> None:
    gt, pred = _three_instance_example()
    bad = evaluate_image((gt > 0).astype(np.uint8), pred, gt_instances=gt)
    c = _touching_gt()
    good = evaluate_image(c, instances_from_classes(c))
    agg = aggregate([bad, good])
    assert agg["n_images"] == 2
    assert agg["ap50"] == pytest.approx((0.2 + 1.0) / 2)
    assert agg["pq"] == pytest.approx((5 / 18 + 1.0) / 2)
    assert (agg["tp"], agg["fp"], agg["fn"]) == (4, 2, 2)
    assert agg["ap50_pooled"] == pytest.approx(4 / 8)
    pooled_gt = bad["gt_diameters_px"] + good["gt_diameters_px"]
    assert agg["gt_mean_diameter_px"] == pytest.approx(np.mean(pooled_gt))
    assert agg["size_unit"] == "px" and "gt_mean_diameter_nm" not in agg


def test_matched_relative_errors_of_a_grown_disc() -> None:
    gt = np.zeros((60, 60), np.int32)
    gt[_disc(gt.shape, 30, 30, 10)] = 1
    pred = np.zeros_like(gt)
    pred[_disc(gt.shape, 30, 30, 12)] = 7  # IoU ~ 0.69: matched, diameter 20 % too large
    r = evaluate_image((gt > 0).astype(np.uint8), pred, gt_instances=gt)
    expected = np.sqrt((pred > 0).sum() / (gt > 0).sum()) - 1.0  # diameters scale with sqrt(area)
    assert r["tp"] == 1 and r["matched_rel_errors"][0] == pytest.approx(expected)
    assert expected == pytest.approx(0.2, abs=0.03)


def test_panoptic_quality_agrees_with_torchmetrics() -> None:
    """Ours (IoU > 0.5 matching, things only) against torchmetrics' PanopticQuality on random
    instance maps."""
    torch = pytest.importorskip("torch")
    from torchmetrics.detection import PanopticQuality

    rng = np.random.default_rng(0)
    for _ in range(5):
        gt = _random_instances(rng)
        pred = _random_instances(rng) if rng.random() < 0.3 else _perturb(gt, rng)
        ours = panoptic_quality(gt, pred)
        # torchmetrics averages PQ over categories; the substrate is its "stuff" class, so compare
        # with the per-class value of the particle ("thing") category.
        metric = PanopticQuality(things={1}, stuffs={0}, return_per_class=True)
        theirs = float(metric(_as_panoptic(pred, torch), _as_panoptic(gt, torch)).flatten()[0])
        assert theirs == pytest.approx(ours, abs=1e-6)


def _as_panoptic(inst: np.ndarray, torch):
    """(H, W) instances -> torchmetrics' (1, H, W, 2) [category, instance id] layout."""
    cat = (inst > 0).astype(np.int64)
    return torch.from_numpy(np.stack([cat, inst.astype(np.int64)], -1))[None]


def _random_instances(rng: np.random.Generator, n: int = 6) -> np.ndarray:
    inst = np.zeros((64, 64), np.int32)
    for k in range(1, n + 1):
        cy, cx, r = rng.integers(8, 56), rng.integers(8, 56), rng.integers(3, 9)
        inst[_disc(inst.shape, cy, cx, r)] = k
    return inst


def _perturb(inst: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift the map by a pixel or two and drop one instance: some matches, some misses."""
    out = np.roll(inst, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
    out[out == rng.integers(1, inst.max() + 1)] = 0
    return out
