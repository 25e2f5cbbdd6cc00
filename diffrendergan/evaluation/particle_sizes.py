"""Particle size distributions measured the way a microscopist measures them by hand.

Projected equal-area diameter 2 sqrt(area / pi) of every *whole* particle (instances touching the
image border are cut, so they are left out) — on annotated masks, and on exact instance maps
rendered from a size law. Measuring the learned law through the same projection (occlusion by
neighbours, shapes that are not discs) makes it directly comparable with the hand-made masks; the
law's own moments (volume-equivalent diameters) are not.

Whole particles depend on the field: a border cuts large particles more often than small ones, so
a 256 px tile keeps a smaller median than a whole micrograph (the Rühle TiO2 masks: 176.9 nm in
their 256 px tiles, 184.5 nm in the whole 1024 x 712 px images). A law is therefore measured in
fields of the masks' size when it is compared with them (``field_px``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from skimage.measure import label

from diffrendergan.config import MaterialConfig, RendererConfig
from diffrendergan.data.labeled import find_labeled_pairs, load_labeled
from diffrendergan.metrics.segmentation import equivalent_diameters
from diffrendergan.rendering.masks import BOUNDARY
from diffrendergan.rendering.renderer import MicroscopyRenderer
from diffrendergan.scene.layout import sample_layout, scaled_to_size

SIZE_SEED_BASE = 2_000_000_011  # layouts measured here never coincide with training/eval seeds


def whole_particles(instances: np.ndarray, min_px: int = 4) -> np.ndarray:
    """Instance map (H, W) with border-touching and tiny (< ``min_px``) instances set to 0."""
    inst = np.asarray(instances).copy()
    border = np.unique(np.concatenate([inst[0], inst[-1], inst[:, 0], inst[:, -1]]))
    inst[np.isin(inst, border[border > 0])] = 0
    ids, counts = np.unique(inst[inst > 0], return_counts=True)
    inst[np.isin(inst, ids[counts < min_px])] = 0
    return inst


def size_stats(diameters_nm: np.ndarray) -> dict[str, float | int | None]:
    """n, mean, median, std, p10, p90 (nm) and the log-normal sigma (std of log d) of a sample."""
    d = np.asarray(diameters_nm, dtype=np.float64).ravel()
    if d.size == 0:
        return {k: None for k in ("mean_nm", "median_nm", "std_nm", "p10_nm", "p90_nm", "log_sigma")} | {
            "n": 0
        }
    p10, p50, p90 = np.percentile(d, [10, 50, 90])
    return {
        "n": int(d.size),
        "mean_nm": float(d.mean()),
        "median_nm": float(p50),
        "std_nm": float(d.std(ddof=1)) if d.size > 1 else 0.0,
        "p10_nm": float(p10),
        "p90_nm": float(p90),
        "log_sigma": float(np.log(d).std(ddof=1)) if d.size > 1 else 0.0,
    }


def labeled_diameters(
    folder: str | Path, pixel_size_nm: float, crop_bottom_px: int | None = None
) -> tuple[np.ndarray, int]:
    """(whole-particle diameters (nm), the largest image side (px)) of an annotated folder
    (images/ + masks/; data bar removed, the bar's edge counts as image border). The side is the
    field a law is measured in to be compared with these masks (see the module docstring)."""
    out, side = [], 0
    for pair in find_labeled_pairs(folder):
        _, instance, _ = load_labeled(pair, crop_bottom_px)
        out.append(equivalent_diameters(whole_particles(instance), pixel_size_nm))
        side = max(side, *instance.shape)
    return (np.concatenate(out) if out else np.zeros(0)), side


@torch.no_grad()
def law_instances(
    material: MaterialConfig, n_images: int = 32, seed: int = 0, renderer: RendererConfig | None = None
) -> Iterator[np.ndarray]:
    """Exact instance maps (H, W) int64 of ``n_images`` layouts drawn from the material's
    size/count/placement laws, without the rendered boundary rims (hand-made masks leave the
    outline of a grain over a hidden one as background too)."""
    r = MicroscopyRenderer(material, renderer or RendererConfig())
    for i in range(n_images):
        lay = sample_layout(material, SIZE_SEED_BASE + seed * 10_007 + i)
        classes, instances = r.masks([lay])
        yield instances[0].numpy().astype(np.int64) * (classes[0].numpy() != BOUNDARY)


def law_diameters(
    material: MaterialConfig,
    n_images: int = 32,
    seed: int = 0,
    renderer: RendererConfig | None = None,
    field_px: int | None = None,
) -> np.ndarray:
    """Whole-particle diameters (nm) in exact instance maps of layouts drawn from the material's
    size/count/placement laws, annotated like hand-made masks (boundary rims excluded).

    ``n_images`` images of the material's size, or, with ``field_px``, square fields of that side
    covering at least the same area (the same specimen: counts scale with the area)."""
    if field_px is not None and field_px != material.image_size:
        n_images = max(1, math.ceil(n_images * (material.image_size / field_px) ** 2))
        material = scaled_to_size(material, field_px)
    out = []
    for inst in law_instances(material, n_images, seed, renderer):
        # Hand-made masks separate touching particles by background lines: measure the same parts.
        inst = label(inst, connectivity=1, background=0) if inst.max() > 0 else inst
        out.append(equivalent_diameters(whole_particles(inst), material.pixel_size_nm))
    return np.concatenate(out) if out else np.zeros(0)
