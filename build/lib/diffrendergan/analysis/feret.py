"""Feret (caliper) diameters of a pixel region, on the outline skimage measures.

skimage's ``feret_diameter_max`` is taken on the marching-squares outline at level 0.5, a polygon
through the pixel-edge midpoints. skimage has no minimum Feret diameter, so it is computed here on
the same outline, so that ``feret_min <= feret_max`` and their ratio (the aspect ratio) compare
like with like. Convention (tested): an axis-aligned ``a x b`` pixel rectangle (``a >= b``) has
``feret_min = b`` and ``feret_max = sqrt(a**2 + (b - 1)**2)`` (the outline cuts its corners).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull

# Edge midpoints of a pixel relative to its centre (row, col): where the 0.5 outline crosses.
_EDGE_MIDPOINTS = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, -0.5], [0.0, 0.5]])


def outline_points(mask: np.ndarray) -> np.ndarray:
    """Edge midpoints of the region's rim pixels (interior pixels cannot be on the hull).

    mask: (h, w) bool -> (P, 2) float64 (row, col) points, P = 4 x rim pixels.
    """
    mask = np.asarray(mask, dtype=bool)
    rim = mask & ~ndi.binary_erosion(mask, border_value=0)
    centres = np.argwhere(rim).astype(np.float64)
    return (centres[:, None, :] + _EDGE_MIDPOINTS[None]).reshape(-1, 2)


def hull_vertices(points: np.ndarray) -> np.ndarray:
    """Convex hull vertices in counter-clockwise order. (P, 2) -> (V, 2), V >= 3.

    Edge-midpoint sets are never collinear (each pixel contributes a small diamond), so qhull
    always has a 2-D hull to return.
    """
    hull = ConvexHull(points)
    return points[hull.vertices]


def min_width(vertices: np.ndarray) -> float:
    """Minimum caliper width of a convex polygon (V, 2) by rotating calipers.

    The minimum-width pair of parallel supporting lines always has one line flush with a hull
    edge, so it suffices to try each edge direction. Vectorised: the (V, E) projections of every
    vertex onto every edge normal at once, instead of the incremental antipodal walk; O(V^2) memory
    is small for hulls of particles (tens to a few hundred vertices).
    """
    edges = np.roll(vertices, -1, axis=0) - vertices  # (E, 2), E = V
    lengths = np.linalg.norm(edges, axis=1)
    keep = lengths > 0
    normals = np.stack([-edges[keep, 1], edges[keep, 0]], axis=1) / lengths[keep, None]  # (E', 2)
    proj = vertices @ normals.T  # (V, E')
    return float((proj.max(axis=0) - proj.min(axis=0)).min())


def max_width(vertices: np.ndarray) -> float:
    """Maximum caliper width (= largest vertex distance) of a convex polygon (V, 2)."""
    d = vertices[:, None, :] - vertices[None, :, :]
    return float(np.sqrt((d**2).sum(-1)).max())


def feret_min(regionmask: np.ndarray) -> float:
    """Minimum Feret diameter (px) of one region; a ``regionprops`` extra property.

    regionmask: (h, w) bool, the region's bounding-box mask.
    """
    return min_width(hull_vertices(outline_points(regionmask)))
