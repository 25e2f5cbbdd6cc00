"""Segmentation metrics of the paper plus particle-size metrics (numpy, one image at a time).

Conventions (masks are 3-class: 0 background, 1 particle, 2 boundary):

* **Ground-truth instances** are the 4-connected components of class-1 pixels (the boundary class
  exists precisely so that this separates touching particles).
* **Particle foreground** is class >= 1 for ground truth *and* prediction: boundary pixels count as
  particle (they lie on a particle's rim), so Dice / IoU measure particle-vs-substrate only. When
  only a predicted instance map is given, its foreground is ``instances > 0``.
* **Matching**: a ground-truth and a predicted instance match when IoU > 0.5. At that threshold a
  match is necessarily one-to-one (two instances cannot both overlap one instance by more than
  half of their union). TP = matched pairs, FP = unmatched predictions, FN = unmatched ground truth.
* **AP50** = TP / (TP + FP + FN) (the single-threshold "AP" of cell/particle segmentation papers).
* **PQ** (panoptic quality, Kirillov et al. 2019) = sum of matched IoUs / (TP + FP/2 + FN/2).
* **Dice** = 2|A∩B| / (|A| + |B|) on the particle foreground; **particle IoU** = |A∩B| / |A∪B|;
  **mIoU** = mean of the background IoU and the particle IoU.
* Empty cases: a score whose denominator is 0 (nothing in either map) is 1.0 (perfect agreement);
  if only one side is empty the score is 0.0.
* **Equivalent diameter** of an instance = 2 sqrt(area / pi) (diameter of the disc of equal area),
  in pixels, and in nm when the pixel size is known. **Size errors** are signed (prediction -
  ground truth): difference of means and of medians, the mean difference relative to the
  ground-truth mean, and the 1-D Wasserstein distance between the two diameter distributions; NaN
  when either side has no instances. Every size key carries its unit (``_px`` or ``_nm``); nm keys
  appear only when every test image has a known pixel size.
* **Matched size error** = median over matched pairs (IoU > 0.5) of |d_pred - d_gt| / d_gt: how
  well the particles that were found are measured, independent of the unit.
* The dataset score of a metric is the **mean over test images** (``dsc``, ``ap50``, ``pq``, ...);
  ``ap50_pooled`` / ``pq_pooled`` pool TP/FP/FN over all images instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from skimage.measure import label
from torchmetrics.functional.classification import binary_f1_score, binary_jaccard_index

PARTICLE = 1


def instances_from_classes(classes: np.ndarray) -> np.ndarray:
    """Ground-truth instances: 4-connected components of class 1. (H,W) -> (H,W) int32."""
    return label(np.asarray(classes) == PARTICLE, connectivity=1).astype(np.int32)


def _ids_and_areas(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-zero instance ids and their pixel areas (both (K,))."""
    ids, counts = np.unique(np.asarray(instances), return_counts=True)
    keep = ids != 0
    return ids[keep], counts[keep]


def pairwise_iou(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every overlapping (gt, pred) instance pair, from a joint histogram of pixel ids.

    Args:
        gt, pred: (H,W) integer instance maps, 0 = background.
    Returns:
        gt_ids (P,), pred_ids (P,), iou (P,) for the P pairs that share at least one pixel.
    """
    gt = np.asarray(gt).ravel()
    pred = np.asarray(pred).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"shape mismatch: {gt.shape} vs {pred.shape}")
    g_ids, g_area = _ids_and_areas(gt)
    p_ids, p_area = _ids_and_areas(pred)
    both = (gt != 0) & (pred != 0)
    if not both.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=np.float64)
    gi = np.searchsorted(g_ids, gt[both])  # compact indices
    pi = np.searchsorted(p_ids, pred[both])
    pair, inter = np.unique(gi.astype(np.int64) * len(p_ids) + pi, return_counts=True)
    gi, pi = np.divmod(pair, len(p_ids))
    iou = inter / (g_area[gi] + p_area[pi] - inter)
    return g_ids[gi].astype(np.int64), p_ids[pi].astype(np.int64), iou.astype(np.float64)


def match_instances(
    gt: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5
) -> tuple[list[tuple[int, int, float]], int, int]:
    """One-to-one matching of instances at IoU > ``iou_threshold``.

    Pairs are taken greedily by decreasing IoU, which for thresholds >= 0.5 is the unique matching.

    Args:
        gt, pred: (H,W) integer instance maps, 0 = background.
    Returns:
        (matches [(gt_id, pred_id, iou)], n_gt, n_pred).
    """
    n_gt = len(_ids_and_areas(gt)[0])
    n_pred = len(_ids_and_areas(pred)[0])
    g, p, iou = pairwise_iou(gt, pred)
    keep = iou > iou_threshold
    g, p, iou = g[keep], p[keep], iou[keep]
    matches: list[tuple[int, int, float]] = []
    used_g: set[int] = set()
    used_p: set[int] = set()
    for k in np.argsort(-iou, kind="stable"):
        gk, pk = int(g[k]), int(p[k])
        if gk in used_g or pk in used_p:
            continue
        used_g.add(gk)
        used_p.add(pk)
        matches.append((gk, pk, float(iou[k])))
    return matches, n_gt, n_pred


def _counts(gt: np.ndarray, pred: np.ndarray) -> tuple[int, int, int, float]:
    """(TP, FP, FN, sum of matched IoUs) at IoU > 0.5."""
    matches, n_gt, n_pred = match_instances(gt, pred)
    tp = len(matches)
    return tp, n_pred - tp, n_gt - tp, float(sum(m[2] for m in matches))


def _ap50_from_counts(tp: int, fp: int, fn: int) -> float:
    den = tp + fp + fn
    return 1.0 if den == 0 else tp / den


def _pq_from_counts(tp: int, fp: int, fn: int, iou_sum: float) -> float:
    den = tp + 0.5 * fp + 0.5 * fn
    return 1.0 if den == 0 else iou_sum / den


def ap50(gt: np.ndarray, pred: np.ndarray) -> float:
    """TP / (TP + FP + FN) at IoU > 0.5. gt, pred: (H,W) instance maps."""
    tp, fp, fn, _ = _counts(gt, pred)
    return _ap50_from_counts(tp, fp, fn)


def panoptic_quality(gt: np.ndarray, pred: np.ndarray) -> float:
    """Sum of matched IoUs / (TP + FP/2 + FN/2). gt, pred: (H,W) instance maps."""
    tp, fp, fn, iou_sum = _counts(gt, pred)
    return _pq_from_counts(tp, fp, fn, iou_sum)


def dice(gt_fg: np.ndarray | torch.Tensor, pred_fg: np.ndarray | torch.Tensor) -> float:
    """Dice coefficient of two (H,W) boolean foreground masks (1.0 when both are empty): the
    binary F1 score of torchmetrics."""
    return float(binary_f1_score(_flat(pred_fg), _flat(gt_fg), zero_division=1.0))


def _flat(mask: np.ndarray | torch.Tensor) -> torch.Tensor:
    return (
        torch.as_tensor(np.asarray(mask, bool) if isinstance(mask, np.ndarray) else mask).reshape(-1).long()
    )


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(binary_jaccard_index(_flat(b), _flat(a), zero_division=1.0))


def particle_iou(gt_fg: np.ndarray, pred_fg: np.ndarray) -> float:
    """IoU of the particle foreground. gt_fg, pred_fg: (H,W) bool."""
    return _iou(np.asarray(gt_fg, bool), np.asarray(pred_fg, bool))


def miou(gt_fg: np.ndarray, pred_fg: np.ndarray) -> float:
    """Mean of background IoU and particle IoU. gt_fg, pred_fg: (H,W) bool."""
    a, b = np.asarray(gt_fg, bool), np.asarray(pred_fg, bool)
    return 0.5 * (_iou(a, b) + _iou(~a, ~b))


def equivalent_diameters(instances: np.ndarray, pixel_size_nm: float = 1.0) -> np.ndarray:
    """Equal-area disc diameter 2 sqrt(area / pi) of every instance, in nm. -> (K,) float64."""
    _, areas = _ids_and_areas(instances)
    return 2.0 * np.sqrt(areas / np.pi) * float(pixel_size_nm)


def size_distribution_errors(gt_d: np.ndarray, pred_d: np.ndarray, unit: str = "nm") -> dict[str, float]:
    """Signed size errors (prediction - ground truth) between two diameter samples in ``unit``.

    Returns ``mean_error_<unit>``, ``median_error_<unit>``, ``rel_mean_error`` (relative to the
    ground-truth mean) and ``wasserstein_<unit>``; all NaN when either sample is empty.
    """
    g = np.asarray(gt_d, dtype=np.float64).ravel()
    p = np.asarray(pred_d, dtype=np.float64).ravel()
    if g.size == 0 or p.size == 0:
        nan = float("nan")
        return {
            f"mean_error_{unit}": nan,
            f"median_error_{unit}": nan,
            "rel_mean_error": nan,
            f"wasserstein_{unit}": nan,
        }
    mean_err = float(p.mean() - g.mean())
    return {
        f"mean_error_{unit}": mean_err,
        f"median_error_{unit}": float(np.median(p) - np.median(g)),
        "rel_mean_error": mean_err / float(g.mean()) if g.mean() > 0 else float("nan"),
        f"wasserstein_{unit}": float(wasserstein_distance(g, p)),
    }


def matched_relative_errors(
    gt: np.ndarray, pred: np.ndarray, matches: list[tuple[int, int, float]]
) -> np.ndarray:
    """|d_pred - d_gt| / d_gt of every matched (gt_id, pred_id, iou) pair. -> (M,) float64."""
    if not matches:
        return np.zeros(0)
    g_ids, g_area = _ids_and_areas(gt)
    p_ids, p_area = _ids_and_areas(pred)
    ga = g_area[np.searchsorted(g_ids, [m[0] for m in matches])].astype(np.float64)
    pa = p_area[np.searchsorted(p_ids, [m[1] for m in matches])].astype(np.float64)
    return np.abs(np.sqrt(pa / ga) - 1.0)  # diameters scale with sqrt(area)


def evaluate_image(
    gt_classes: np.ndarray,
    pred_instances: np.ndarray,
    pred_classes: np.ndarray | None = None,
    gt_instances: np.ndarray | None = None,
) -> dict[str, Any]:
    """All per-image metrics.

    Args:
        gt_classes: (H,W) 3-class ground truth.
        pred_instances: (H,W) predicted instance ids, 0 = background.
        pred_classes: optional (H,W) predicted 3-class map; its class >= 1 is the predicted
            foreground (otherwise ``pred_instances > 0``).
        gt_instances: optional explicit ground-truth instance map (default: components of class 1).
    Returns:
        dict with dsc, ap50, pq, miou, particle_iou, n_gt, n_pred, tp, fp, fn, iou_sum, the
        diameter lists ``gt_diameters_px`` / ``pred_diameters_px`` and the matched pairs'
        relative diameter errors ``matched_rel_errors`` (JSON-serialisable).
    """
    gt_classes = np.asarray(gt_classes)
    pred_instances = np.asarray(pred_instances)
    gt_inst = instances_from_classes(gt_classes) if gt_instances is None else np.asarray(gt_instances)
    gt_fg = gt_classes >= 1
    pred_fg = pred_instances > 0 if pred_classes is None else np.asarray(pred_classes) >= 1
    matches, n_gt, n_pred = match_instances(gt_inst, pred_instances)
    tp = len(matches)
    fp, fn, iou_sum = n_pred - tp, n_gt - tp, float(sum(m[2] for m in matches))
    return {
        "dsc": dice(gt_fg, pred_fg),
        "ap50": _ap50_from_counts(tp, fp, fn),
        "pq": _pq_from_counts(tp, fp, fn, iou_sum),
        "miou": miou(gt_fg, pred_fg),
        "particle_iou": particle_iou(gt_fg, pred_fg),
        "n_gt": n_gt,
        "n_pred": n_pred,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "iou_sum": iou_sum,
        "gt_diameters_px": equivalent_diameters(gt_inst).tolist(),
        "pred_diameters_px": equivalent_diameters(pred_instances).tolist(),
        "matched_rel_errors": matched_relative_errors(gt_inst, pred_instances, matches).tolist(),
    }


MEAN_KEYS = ("dsc", "ap50", "pq", "miou", "particle_iou")


def _pooled(per_image: list[dict[str, Any]], key: str, scale: list[float] | None = None) -> np.ndarray:
    parts = [
        np.asarray(r[key], float) * (1.0 if scale is None else scale[k]) for k, r in enumerate(per_image)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def aggregate(
    per_image: list[dict[str, Any]], pixel_sizes_nm: list[float | None] | None = None
) -> dict[str, Any]:
    """Dataset summary: per-image means of the scores, pooled counts and pooled size errors.

    Besides the means (``dsc``, ``ap50``, ``pq``, ``miou``, ``particle_iou``) it reports
    ``ap50_pooled`` / ``pq_pooled`` from the summed TP/FP/FN (robust to images with few particles),
    the matched size error, and the size errors of all diameters pooled over images: in px, and in
    nm when ``pixel_sizes_nm`` (one per image) are all known.
    """
    out: dict[str, Any] = {"n_images": len(per_image)}
    for k in MEAN_KEYS:
        out[k] = float(np.mean([r[k] for r in per_image])) if per_image else float("nan")
    tp, fp, fn = (int(sum(r[k] for r in per_image)) for k in ("tp", "fp", "fn"))
    iou_sum = float(sum(r.get("iou_sum", 0.0) for r in per_image))
    out.update({"tp": tp, "fp": fp, "fn": fn})
    out["ap50_pooled"] = _ap50_from_counts(tp, fp, fn)
    out["pq_pooled"] = _pq_from_counts(tp, fp, fn, iou_sum)
    rel = _pooled(per_image, "matched_rel_errors")
    out["matched_median_rel_error"] = float(np.median(rel)) if rel.size else float("nan")
    units: list[tuple[str, list[float] | None]] = [("px", None)]
    if per_image and pixel_sizes_nm is not None and all(p is not None for p in pixel_sizes_nm):
        units.append(("nm", [float(p) for p in pixel_sizes_nm]))  # type: ignore[arg-type]
    for unit, scale in units:
        gt_d = _pooled(per_image, "gt_diameters_px", scale)
        pred_d = _pooled(per_image, "pred_diameters_px", scale)
        out.update(size_distribution_errors(gt_d, pred_d, unit))
        out[f"gt_mean_diameter_{unit}"] = float(gt_d.mean()) if gt_d.size else float("nan")
        out[f"pred_mean_diameter_{unit}"] = float(pred_d.mean()) if pred_d.size else float("nan")
    out["size_unit"] = units[-1][0]
    return out
