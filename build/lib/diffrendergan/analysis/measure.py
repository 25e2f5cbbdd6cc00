"""The per-particle table of one instance map: sizes and shapes in nm.

Everything is measured with ``skimage.measure.regionprops_table`` in pixels and scaled by the
file's pixel size. Conventions:

* ``area_nm2``: pixel count x nm²; ``equivalent_diameter_nm``: 2 sqrt(area / pi), the diameter of
  the disc of equal area (the projected size microscopists report);
* ``feret_max_nm`` / ``feret_min_nm``: largest and smallest caliper width of the half-pixel outline
  (see :mod:`.feret`; a 20 x 10 px rectangle measures sqrt(20² + 9²) and 10 px);
* ``aspect_ratio``: feret_max / feret_min (>= 1);
* ``solidity``: area / convex-hull area (1 for convex particles, lower for aggregates);
* ``centroid_x_nm`` / ``centroid_y_nm``: column / row of the centroid, pixel centres at integer
  coordinates, (0, 0) = centre of the top-left pixel;
* ``touches_border``: the particle has a pixel on the edge of the measured map: the image border,
  or the data bar's top edge when a bar was cropped (cut particles have no true size).
"""

from __future__ import annotations

import numpy as np
from skimage.measure import regionprops_table
from skimage.segmentation import clear_border

from diffrendergan.analysis.feret import feret_min
from diffrendergan.analysis.tables import Table, empty_table

PROPERTIES = ("label", "area", "equivalent_diameter_area", "feret_diameter_max", "solidity", "centroid")


def border_ids(instances: np.ndarray) -> np.ndarray:
    """Ids of the instances with a pixel on the map's edge. (H, W) int -> (B,) int64, sorted."""
    inst = np.asarray(instances)
    kept = clear_border(inst)
    return np.setdiff1d(np.unique(inst[inst > 0]), np.unique(kept[kept > 0])).astype(np.int64)


def measure_particles(instances: np.ndarray, pixel_size_nm: float, image: str) -> Table:
    """One row per instance of ``instances`` (H, W) int (0 = background), in nm.

    ``instances`` covers the specimen area only (data bar removed), so its bottom edge is the
    bar's edge; ``image`` fills the ``image`` column (the file's name).
    """
    inst = np.asarray(instances).astype(np.int64)
    if not (inst > 0).any():
        return empty_table()
    p = regionprops_table(inst, properties=PROPERTIES, extra_properties=(feret_min,))
    nm = float(pixel_size_nm)
    ids = p["label"].astype(np.int64)
    f_max, f_min = p["feret_diameter_max"], p["feret_min"]
    return {
        "image": np.full(len(ids), image, dtype=object),
        "id": ids,
        "area_nm2": p["area"] * nm**2,
        "equivalent_diameter_nm": p["equivalent_diameter_area"] * nm,
        "feret_max_nm": f_max * nm,
        "feret_min_nm": f_min * nm,
        "aspect_ratio": f_max / np.maximum(f_min, 1e-12),
        "solidity": p["solidity"].astype(np.float64),
        "centroid_x_nm": p["centroid-1"] * nm,
        "centroid_y_nm": p["centroid-0"] * nm,
        "touches_border": np.isin(ids, border_ids(inst)),
    }
