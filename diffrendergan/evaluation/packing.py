"""How particles pack: contacts, lone grains and agglomerates per image, in annotated masks and
in a layout law's renders -- the placement law's calibration, as :mod:`particle_sizes` is the
size law's.

Touching grains are what a segmenter must learn to split, and the seams between them shape the
bright blobs a critic sees. On the 5 labeled Rühle TiO2 SEM micrographs, cut into 256-px tiles,
grains touch 1.32 times per particle and only 6 % lie alone; layouts of 1-4 agglomerates per image
touched 1.10 times with 9 % alone (README, "Packing like the specimen").

Masks are cut into tiles of the rendered image size because a render is a window of a larger
specimen (the placement's guard band): both count agglomerates cut by the window's edge alike.
Contacts are the pairs of :func:`~diffrendergan.metrics.contacts.seams_and_pairs` (particles
within a few pixels across a separating line); an agglomerate is a connected component of the
contact graph.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from diffrendergan.config import MaterialConfig, RendererConfig
from diffrendergan.data.labeled import find_labeled_pairs, load_labeled
from diffrendergan.evaluation.particle_sizes import law_instances
from diffrendergan.evaluation.tiling import tiles
from diffrendergan.metrics.contacts import seams_and_pairs


@dataclass(frozen=True)
class Packing:
    """Counts summed over a set of instance maps."""

    images: int = 0
    particles: int = 0
    pairs: int = 0
    isolated: int = 0
    agglomerates: int = 0

    def __add__(self, other: Packing) -> Packing:
        return Packing(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def summary(self) -> dict[str, float]:
        """Per-particle and per-image rates (NaN without particles)."""
        per_particle = self.particles or float("nan")
        per_image = self.images or float("nan")
        return {
            "particles_per_image": self.particles / per_image,
            "contacts_per_particle": self.pairs / per_particle,
            "isolated_share": self.isolated / per_particle,
            "agglomerates_per_image": self.agglomerates / per_image,
        }


def image_packing(instances: np.ndarray) -> Packing:
    """Packing of one instance map (H, W) int, 0 = background; a lone grain is an agglomerate."""
    inst = np.asarray(instances).astype(np.int64)
    ids = np.unique(inst[inst > 0])
    if ids.size == 0:
        return Packing(images=1)
    _, pairs = seams_and_pairs(inst)
    n = int(ids.max()) + 1
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    touching = np.zeros(n, bool)
    touching[pairs.ravel()] = True
    return Packing(
        images=1,
        particles=int(ids.size),
        pairs=len(pairs),
        isolated=int((~touching[ids]).sum()),
        agglomerates=int(np.unique(component[ids]).size),
    )


def packing(instance_maps: Iterable[np.ndarray]) -> Packing:
    """Packing summed over instance maps."""
    return sum((image_packing(m) for m in instance_maps), Packing())


def labeled_packing(folder: str | Path, tile_px: int, crop_bottom_px: int | None = None) -> Packing:
    """Packing of an annotated folder's masks (images/ + masks/, data bar removed) cut into
    ``tile_px`` tiles, the size of a render."""
    maps = (
        t
        for pair in find_labeled_pairs(folder)
        for t in tiles(load_labeled(pair, crop_bottom_px)[1], tile_px)
    )
    return packing(maps)


def law_packing(
    material: MaterialConfig, n_images: int = 64, seed: int = 0, renderer: RendererConfig | None = None
) -> Packing:
    """Packing of the exact instance maps of ``n_images`` layouts drawn from the material's laws."""
    return packing(law_instances(material, n_images, seed, renderer))
