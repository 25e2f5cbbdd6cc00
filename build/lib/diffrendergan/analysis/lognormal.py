"""Lognormal fit of particle diameters, with 95 % confidence intervals.

Particle sizes from nucleation and growth are close to lognormal, and papers report the fit as a
median and a geometric spread: ``median = exp(mean(log d))`` and ``sigma = std(log d)`` (sample
standard deviation, ddof = 1). Two intervals are given:

* ``bootstrap`` (the one the report quotes): percentile interval of both parameters over
  ``n_boot`` resamples of the particles with replacement, seeded, so a rerun gives the same
  numbers. It assumes only that particles are independent draws, not that d is lognormal.
* ``analytic``: the exact intervals if log d is normal — Student t for the mean of log d (mapped
  through exp for the median), chi² for sigma.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
MAX_CHUNK_ELEMENTS = 4_000_000  # bootstrap index matrix per chunk (memory bound for big samples)


@dataclass(frozen=True)
class LognormalFit:
    """Fitted parameters and intervals (None when the sample is too small: n < 2)."""

    n: int
    median_nm: float | None
    sigma: float | None
    ci_bootstrap: dict[str, list[float]] | None
    ci_analytic: dict[str, list[float]] | None
    n_boot: int
    seed: int

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "median_nm": self.median_nm,
            "sigma": self.sigma,
            "ci95_bootstrap": self.ci_bootstrap,
            "ci95_analytic": self.ci_analytic,
            "ci_method": f"bootstrap percentile over particles, {self.n_boot} resamples, seed {self.seed}",
        }


def _log_sample(diameters: np.ndarray) -> np.ndarray:
    d = np.asarray(diameters, dtype=np.float64).ravel()
    d = d[np.isfinite(d) & (d > 0)]
    return np.log(d)


def bootstrap_ci(logs: np.ndarray, n_boot: int, seed: int, level: float = LEVEL) -> dict[str, list[float]]:
    """Percentile intervals of the median (exp of mean log) and sigma. logs: (n,) log diameters.

    Resamples are drawn in chunks so that the (chunk, n) index matrix stays small.
    """
    rng = np.random.default_rng(seed)
    n = logs.size
    chunk = max(1, MAX_CHUNK_ELEMENTS // n)
    means, sds = [], []
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        resampled = logs[idx]  # (b, n)
        means.append(resampled.mean(axis=1))
        sds.append(resampled.std(axis=1, ddof=1))
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    lo_m, hi_m = np.percentile(np.concatenate(means), q)
    lo_s, hi_s = np.percentile(np.concatenate(sds), q)
    return {"median_nm": [float(np.exp(lo_m)), float(np.exp(hi_m))], "sigma": [float(lo_s), float(hi_s)]}


def analytic_ci(logs: np.ndarray, level: float = LEVEL) -> dict[str, list[float]]:
    """t interval of the mean of log d (-> median) and chi² interval of sigma. logs: (n,)."""
    n = logs.size
    m, s = float(logs.mean()), float(logs.std(ddof=1))
    alpha = 1 - level
    half = stats.t.ppf(1 - alpha / 2, n - 1) * s / np.sqrt(n)
    chi_hi, chi_lo = stats.chi2.ppf(1 - alpha / 2, n - 1), stats.chi2.ppf(alpha / 2, n - 1)
    return {
        "median_nm": [float(np.exp(m - half)), float(np.exp(m + half))],
        "sigma": [float(s * np.sqrt((n - 1) / chi_hi)), float(s * np.sqrt((n - 1) / chi_lo))],
    }


def fit_lognormal(diameters_nm: np.ndarray, n_boot: int = 2000, seed: int = 0) -> LognormalFit:
    """Lognormal fit of (N,) diameters (non-positive or non-finite values are ignored)."""
    logs = _log_sample(diameters_nm)
    n = int(logs.size)
    if n == 0:
        return LognormalFit(0, None, None, None, None, n_boot, seed)
    median = float(np.exp(logs.mean()))
    if n < 2:
        return LognormalFit(n, median, None, None, None, n_boot, seed)
    sigma = float(logs.std(ddof=1))
    boot = bootstrap_ci(logs, n_boot, seed) if n_boot > 0 else None
    return LognormalFit(n, median, sigma, boot, analytic_ci(logs), n_boot, seed)


def lognormal_pdf(x: np.ndarray, median: float, sigma: float) -> np.ndarray:
    """Density of the fitted lognormal at (M,) diameters x (same unit as ``median``)."""
    return stats.lognorm.pdf(np.asarray(x, dtype=np.float64), s=sigma, scale=median)
