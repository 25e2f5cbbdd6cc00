"""Manual masks measured like predictions, and how far the predicted size distribution is from them.

A size distribution from a segmenter is only trustworthy once it has been checked against a few
hand-annotated micrographs. The manual masks (binary with separating lines, or label images; see
:func:`diffrendergan.data.labeled.mask_to_instances`) get exactly the predictions' treatment: the
same data-bar rows cut, the same smallest size (the decoder's ``min_size_px``, on the file's
grid), the same table, the same border exclusion. Compared on the equivalent diameter: the
relative error of the median per image (the number a microscopist reports), and the two-sample
Kolmogorov-Smirnov and Wasserstein distances of the pooled distributions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from diffrendergan.analysis.tables import Table, counted, select
from diffrendergan.data.labeled import mask_to_instances
from diffrendergan.errors import DataError

SIZE = "equivalent_diameter_nm"


def manual_instances(mask: np.ndarray, height: int, path: Path, min_size_px: float = 0) -> np.ndarray:
    """Instances of a manual mask's specimen rows (the image's rows above its data bar), without
    the specks below ``min_size_px`` pixels that the segmenter's decoder could never return.

    mask: (H, W) stored values -> (height, W) int64, 0 = background.
    """
    try:
        inst = mask_to_instances(np.asarray(mask)[:height])
    except ValueError as exc:
        raise DataError(path, str(exc)) from exc
    ids, counts = np.unique(inst[inst > 0], return_counts=True)
    inst[np.isin(inst, ids[counts < min_size_px])] = 0
    return inst


def median_rel_error(predicted: np.ndarray, manual: np.ndarray) -> float | None:
    """(median(pred) - median(manual)) / median(manual) of two (N,) samples; None if one is empty."""
    if predicted.size == 0 or manual.size == 0:
        return None
    reference = float(np.median(manual))
    return (float(np.median(predicted)) - reference) / reference


def distances(predicted: np.ndarray, manual: np.ndarray) -> dict[str, float | None]:
    """KS statistic (and its p-value) and Wasserstein distance (nm) of two (N,) diameter samples."""
    if predicted.size == 0 or manual.size == 0:
        return {"ks_distance": None, "ks_pvalue": None, "wasserstein_nm": None}
    ks = stats.ks_2samp(predicted, manual)
    return {
        "ks_distance": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "wasserstein_nm": float(stats.wasserstein_distance(predicted, manual)),
    }


def compare(predicted: Table, manual: Table, include_border: bool = False) -> dict[str, Any]:
    """Predicted vs. manual equivalent diameters on the annotated images.

    Per image the signed relative error of the median; overall the median of their absolute
    values, the pooled relative error of the median, KS and Wasserstein distances. Both tables
    pass through the same border filter.
    """
    pred, man = counted(predicted, include_border), counted(manual, include_border)
    per_image = []
    for name in dict.fromkeys(manual["image"]):
        p, m = (select(t, t["image"] == name)[SIZE] for t in (pred, man))
        per_image.append(
            {
                "image": name,
                "n_predicted": int(p.size),
                "n_manual": int(m.size),
                "median_rel_error": median_rel_error(p, m),
            }
        )
    errors = [abs(r["median_rel_error"]) for r in per_image if r["median_rel_error"] is not None]
    return {
        "n_images": len(per_image),
        "n_predicted": int(pred[SIZE].size),
        "n_manual": int(man[SIZE].size),
        "median_predicted_nm": float(np.median(pred[SIZE])) if pred[SIZE].size else None,
        "median_manual_nm": float(np.median(man[SIZE])) if man[SIZE].size else None,
        "median_abs_rel_error_per_image": float(np.median(errors)) if errors else None,
        "pooled_median_rel_error": median_rel_error(pred[SIZE], man[SIZE]),
        **distances(pred[SIZE], man[SIZE]),
        "per_image": per_image,
    }
