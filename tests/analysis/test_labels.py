"""Manual masks measured like predictions, and the distances between both distributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffrendergan.analysis.labels import compare, manual_instances
from diffrendergan.analysis.measure import measure_particles
from diffrendergan.analysis.tables import concat


def binary_mask() -> np.ndarray:
    """Two squares touching but for a 0-valued line, a 2-pixel speck, and rows of a data bar."""
    m = np.zeros((40, 40), np.uint8)
    m[5:15, 5:15] = 255
    m[5:15, 16:26] = 255  # column 15 separates the two particles
    m[30, 30:32] = 255
    m[36:, :] = 255  # the bar rows: cut by ``height``
    return m


def test_manual_instances_split_at_lines_cut_the_bar_and_drop_specks() -> None:
    inst = manual_instances(binary_mask(), 34, Path("m.png"), min_size_px=4)
    assert inst.shape == (34, 40)
    assert len(np.unique(inst[inst > 0])) == 2
    assert len(np.unique(manual_instances(binary_mask(), 34, Path("m.png")))) == 4  # 0 + 3 ids


def test_compare_identical_and_shifted_distributions() -> None:
    rng = np.random.default_rng(0)
    tables = []
    for k in range(2):
        inst = np.zeros((80, 80), np.int32)
        for i, (r, c) in enumerate(((10, 10), (10, 40), (40, 10), (40, 40), (60, 60))):
            side = int(rng.integers(6, 12))
            inst[r : r + side, c : c + side] = i + 1
        tables.append(measure_particles(inst, 2.0, f"img{k}"))
    manual = concat(tables)
    same = compare(manual, manual)
    assert same["ks_distance"] == 0.0 and same["wasserstein_nm"] == 0.0
    assert same["median_abs_rel_error_per_image"] == 0.0 and same["n_images"] == 2
    bigger = {**manual, "equivalent_diameter_nm": manual["equivalent_diameter_nm"] * 1.1}
    cmp = compare(bigger, manual)
    assert cmp["pooled_median_rel_error"] == pytest.approx(0.1)
    assert [r["median_rel_error"] for r in cmp["per_image"]] == pytest.approx([0.1, 0.1])
    assert cmp["wasserstein_nm"] == pytest.approx(0.1 * manual["equivalent_diameter_nm"].mean())
    empty = compare(concat([]), manual)
    assert empty["ks_distance"] is None and empty["per_image"][0]["median_rel_error"] is None
