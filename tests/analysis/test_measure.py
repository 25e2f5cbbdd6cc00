"""Per-particle measurements on hand-made label images, border exclusion and the summary."""

from __future__ import annotations

import numpy as np
import pytest

from diffrendergan.analysis.lognormal import fit_lognormal
from diffrendergan.analysis.measure import measure_particles
from diffrendergan.analysis.report import distribution
from diffrendergan.analysis.tables import COLUMNS, select

NM = 2.0


def shapes() -> np.ndarray:
    """1: a 20 (wide) x 10 (tall) rectangle, 2: a disc of radius 8, 3: a square cut by the left edge."""
    inst = np.zeros((60, 80), np.int32)
    inst[5:15, 30:50] = 1
    yy, xx = np.mgrid[:60, :80]
    inst[(yy - 40) ** 2 + (xx - 50) ** 2 <= 8**2] = 2
    inst[30:36, 0:6] = 3
    return inst


def test_rectangle_and_disc_columns() -> None:
    t = measure_particles(shapes(), NM, "hand.png")
    assert tuple(t) == COLUMNS and list(t["id"]) == [1, 2, 3]
    assert list(t["image"]) == ["hand.png"] * 3
    rect = {c: v[0] for c, v in t.items()}
    assert rect["area_nm2"] == pytest.approx(200 * NM**2)
    assert rect["equivalent_diameter_nm"] == pytest.approx(2 * np.sqrt(200 / np.pi) * NM)
    assert rect["feret_max_nm"] == pytest.approx(np.hypot(20, 9) * NM)  # the 0.5 outline cuts corners
    assert rect["feret_min_nm"] == pytest.approx(10 * NM)
    assert rect["aspect_ratio"] == pytest.approx(np.hypot(20, 9) / 10)
    assert rect["solidity"] == pytest.approx(1.0)
    assert (rect["centroid_x_nm"], rect["centroid_y_nm"]) == pytest.approx((39.5 * NM, 9.5 * NM))
    disc = {c: v[1] for c, v in t.items()}
    n_px = int((shapes() == 2).sum())
    assert disc["equivalent_diameter_nm"] == pytest.approx(2 * np.sqrt(n_px / np.pi) * NM)
    # a digital disc of radius 8 spans 17 px along the axes, a little less across its cut corners
    assert 16 * NM <= disc["feret_min_nm"] <= disc["feret_max_nm"] <= 17.2 * NM
    assert 1.0 <= disc["aspect_ratio"] < 1.1 and (disc["centroid_x_nm"], disc["centroid_y_nm"]) == (
        50 * NM,
        40 * NM,
    )
    assert list(t["touches_border"]) == [False, False, True]


def test_border_particles_are_left_out_unless_included() -> None:
    t = measure_particles(shapes(), NM, "hand.png")
    fit = fit_lognormal(select(t, ~t["touches_border"])["equivalent_diameter_nm"], n_boot=50)
    default = distribution(t, include_border=False, fit=fit)
    assert (default["count"], default["count_all"], default["count_touching_border"]) == (2, 3, 1)
    eq = default["measures"]["equivalent_diameter_nm"]
    whole = t["equivalent_diameter_nm"][:2]
    assert eq["mean"] == pytest.approx(whole.mean()) and eq["median"] == pytest.approx(np.median(whole))
    included = distribution(t, include_border=True, fit=fit)
    assert included["count"] == 3
    assert included["measures"]["area_nm2"]["mean"] == pytest.approx(t["area_nm2"].mean())


def test_lognormal_fit_recovers_its_parameters() -> None:
    d = np.random.default_rng(1).lognormal(np.log(40.0), 0.25, size=400)
    fit = fit_lognormal(d, n_boot=300, seed=0)
    lo, hi = fit.ci_bootstrap["median_nm"]
    assert lo < 40.0 < hi and fit.sigma == pytest.approx(0.25, abs=0.03)
    assert fit_lognormal(np.array([]), n_boot=10).median_nm is None
