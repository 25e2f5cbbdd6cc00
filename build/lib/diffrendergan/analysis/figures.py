"""Pictures of an analysis: the size histogram with its lognormal fit, and per-image overlays.

The histogram lets a reader see whether the lognormal summary fits at all (bimodal samples,
agglomerates counted as one particle); the overlay shows what was counted. Figures are built
with matplotlib's object API (no pyplot state, no display needed) and saved atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from skimage.segmentation import find_boundaries

from diffrendergan.analysis.lognormal import LognormalFit, lognormal_pdf
from diffrendergan.analysis.tables import Table
from diffrendergan.tasks.segment import overlay
from diffrendergan.utils.io import atomic_write

BORDER_RGB = (0, 200, 255)  # outlines of particles left out of the statistics (cut by an edge)
ID_COLOUR = "#ff4040"
MAX_BINS = 60


def _save(fig: Figure, path: Path, dpi: int = 120) -> Path:
    return atomic_write(path, lambda p: fig.savefig(p, dpi=dpi))


def bin_edges(*samples: np.ndarray) -> np.ndarray:
    """Shared histogram edges of (N,) samples (numpy's ``auto`` rule, at most ``MAX_BINS`` bins)."""
    pooled = np.concatenate([np.asarray(s, dtype=np.float64) for s in samples])
    if pooled.size == 0:
        return np.linspace(0.0, 1.0, 11)
    edges = np.histogram_bin_edges(pooled, bins="auto")
    return edges if len(edges) <= MAX_BINS + 1 else np.linspace(edges[0], edges[-1], MAX_BINS + 1)


def histogram(diameters_nm: np.ndarray, fit: LognormalFit, path: Path) -> Path:
    """Equivalent-diameter histogram (density) of (N,) diameters with the fitted lognormal density."""
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    edges = bin_edges(diameters_nm)
    ax.hist(diameters_nm, bins=edges, density=True, color="#9ab", edgecolor="white", label=f"n = {fit.n}")
    if fit.median_nm is not None and fit.sigma is not None and fit.sigma > 0:
        x = np.linspace(max(edges[0], 1e-9), edges[-1], 400)
        label = f"lognormal: median {fit.median_nm:.1f} nm, σ {fit.sigma:.3f}"
        ax.plot(x, lognormal_pdf(x, fit.median_nm, fit.sigma), color="#c33", lw=2, label=label)
    ax.set_xlabel("equivalent diameter (nm)")
    ax.set_ylabel("density (1/nm)")
    ax.legend(frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def histogram_vs_labels(predicted_nm: np.ndarray, manual_nm: np.ndarray, path: Path) -> Path:
    """Predicted and manual equivalent-diameter histograms (densities, shared bins) in one plot."""
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    edges = bin_edges(predicted_nm, manual_nm)
    for values, name, colour in ((manual_nm, "manual", "#555"), (predicted_nm, "predicted", "#c33")):
        ax.hist(
            values,
            bins=edges,
            density=True,
            histtype="step",
            lw=2,
            color=colour,
            label=f"{name} (n = {len(values)})",
        )
    ax.set_xlabel("equivalent diameter (nm)")
    ax.set_ylabel("density (1/nm)")
    ax.legend(frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def overlay_image(
    full: np.ndarray, instances: np.ndarray, table: Table, pixel_size_nm: float, path: Path
) -> Path:
    """The whole micrograph with instance outlines (yellow; cyan = touches an edge, not counted by
    default) and every id at its centroid, at the file's own resolution.

    full: (H, W) in [0, 1]; instances: (h, W) ids on the specimen rows (h <= H, the data bar
    below); table: their measurements (:func:`~diffrendergan.analysis.measure.measure_particles`).
    """
    grid = np.zeros(full.shape, dtype=np.int64)
    grid[: instances.shape[0]] = instances
    rgb = overlay(full, grid)
    cut = np.isin(grid, table["id"][table["touches_border"]])
    rgb[find_boundaries(np.where(cut, grid, 0), mode="inner")] = BORDER_RGB
    h, w = full.shape
    dpi = 100
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(rgb, interpolation="nearest")
    ax.set_axis_off()
    size = float(np.clip(min(h, w) / 120, 4, 9))
    xs, ys = table["centroid_x_nm"] / pixel_size_nm, table["centroid_y_nm"] / pixel_size_nm
    for i, x, y in zip(table["id"], xs, ys):
        ax.text(x, y, str(int(i)), color=ID_COLOUR, fontsize=size, ha="center", va="center")
    return _save(fig, path, dpi=dpi)
