"""Layouts: what the generator sees (x, y, z, size per particle) and how to rebuild the meshes.

A layout is cheap to store (metadata.jsonl) and fully determines the geometry: unit shapes are
regenerated from ``shape_seed``, so masks can always be reproduced from metadata.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import torch

from diffrendergan.config import CountLaw, MaterialConfig
from diffrendergan.geometry.shapes import UnitShapes, make_unit_shapes, random_rotations, vertex_normals
from diffrendergan.scene.laws import sample_count, sample_sizes_and_noise
from diffrendergan.scene.placement import Placement, place, serial_torch


@dataclass
class Layout:
    """One image's particles.

    xyzs: (P, 4) float32 nm — centre x (right), y (down), z (height of the centre), size
        (volume-equivalent diameter; wire diameter for wires).
    rotation: (P, 3, 3) particle orientation. shape_index: (P,) index into the unit shapes made
    from ``shape_seed`` (``n_shapes`` of them). ``n_requested`` counts unplaced particles too.
    """

    xyzs: torch.Tensor
    rotation: torch.Tensor
    shape_index: torch.Tensor
    shape_seed: int
    n_shapes: int
    n_requested: int
    seed: int
    size_eps: torch.Tensor | None = None
    size_second: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return int(self.xyzs.shape[0])

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "shape_seed": self.shape_seed,
            "n_shapes": self.n_shapes,
            "n_requested": self.n_requested,
            "xyzs_nm": [[round(float(v), 4) for v in row] for row in self.xyzs],
            "rotation": [[round(float(v), 6) for v in r.flatten()] for r in self.rotation],
            "shape_index": self.shape_index.tolist(),
        }


@dataclass
class Particles:
    """World-space meshes of one image's particles (nm). verts/normals: (P, V, 3); faces: (P, F, 3)."""

    verts: torch.Tensor
    faces: torch.Tensor
    normals: torch.Tensor

    def to(self, device: torch.device | str) -> Particles:
        return Particles(self.verts.to(device), self.faces.to(device), self.normals.to(device))


@serial_torch()
def _unit_shapes(material: MaterialConfig, n: int, shape_seed: int) -> UnitShapes:
    """The n unit shapes of a layout, regenerated from its seed (single-threaded: ``serial_torch``)."""
    return make_unit_shapes(n, material.shape, torch.Generator().manual_seed(shape_seed))


def _extents(
    material: MaterialConfig, shape_seed: int, rot: torch.Tensor, sizes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What placement needs of P oriented particles (nm): contact radii (P,), distance from the
    centre down to the lowest vertex (P,) and half-extent in x, y (P, 2)."""
    n = sizes.shape[0]
    if n == 0:
        return torch.zeros(0), torch.zeros(0), torch.zeros(0, 2)
    unit = _unit_shapes(material, n, shape_seed).verts
    rel = torch.einsum("pij,pvj->pvi", rot, unit) * sizes[:, None, None]  # (P, V, 3)
    radii = sizes / 2 if material.shape.family == "wire" else rel.norm(dim=-1).mean(1)
    return radii, -rel[..., 2].amin(1), rel[..., :2].abs().amax(1)


@dataclass
class FieldSample:
    """The whole laid-out field of one seed, before the image window is cut (field coordinates).

    sizes, eps: (P,) float; second: (P,) bool; rotation: (P, 3, 3); radii: (P,) contact radii;
    bottoms: (P,) resting height of each centre; reach: (P, 2) half-extent in x, y (all nm);
    placement: where each went, in which agglomerate, touching which particle. Tests check the
    placement laws on it; :func:`sample_layout` cuts the image window out of it.
    """

    field: MaterialConfig
    sizes: torch.Tensor
    eps: torch.Tensor
    second: torch.Tensor
    shape_seed: int
    rotation: torch.Tensor
    radii: torch.Tensor
    bottoms: torch.Tensor
    reach: torch.Tensor
    placement: Placement


def scaled_to_size(material: MaterialConfig, size: int) -> MaterialConfig:
    """The same specimen over a ``size``-px field (same pixel size): particle and agglomerate
    counts scale with the area, so every image-sized part of it follows the material's laws."""
    k = (size / material.image_size) ** 2
    c = material.count
    count = CountLaw(c.kind, round(c.n * k), round(c.low * k), round(c.high * k), c.mean * k)
    placement = replace(
        material.placement, max_agglomerates=max(1, round(material.placement.max_agglomerates * k))
    )
    return replace(material, image_size=size, count=count, placement=placement)


def field_material(material: MaterialConfig) -> MaterialConfig:
    """The material of the whole laid-out field: the image plus its guard band (see
    :class:`~diffrendergan.config.PlacementConfig`); the material itself without a guard."""
    guard = material.placement.guard
    if guard <= 0:
        return material
    field = scaled_to_size(material, round(material.image_size * (1 + 2 * guard)))
    # No margin of its own: the image never sees the field's border, and a margin would dilute it.
    return replace(field, placement=replace(field.placement, guard=0.0, margin=0.0))


def sample_field(material: MaterialConfig, seed: int) -> FieldSample:
    """Draw count, sizes, shapes, orientations and positions over the laid-out field (the image
    plus its guard band, :func:`field_material`); deterministic in seed. Warns about particles that
    found no spot."""
    field = field_material(material)
    gen = torch.Generator().manual_seed(int(seed))
    with serial_torch():
        n = sample_count(field.count, gen)
        sizes, eps, second = sample_sizes_and_noise(field.size, n, gen)
        shape_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        rot = random_rotations(n, gen, flat=material.shape.family == "wire")
        radii, bottoms, reach = _extents(material, shape_seed, rot, sizes)
        fov = field.image_size * field.pixel_size_nm
        pl = place(radii, bottoms, (fov, fov), field.placement, gen)
    if pl.n_unplaced:
        warnings.warn(
            f"{pl.n_unplaced} of {n} particles could not be placed (seed {seed}); "
            "lower material.count or raise material.placement.overlap_tolerance/max_tries",
            RuntimeWarning,
            stacklevel=3,
        )
    return FieldSample(field, sizes, eps, second, shape_seed, rot, radii, bottoms, reach, pl)


def sample_layout(material: MaterialConfig, seed: int) -> Layout:
    """Draw count, sizes, shapes, orientations and positions for one image (deterministic in seed).

    With a guard band the specimen is laid out over the larger field and the layout keeps the
    particles that reach into the image window at its centre, in image coordinates."""
    f = sample_field(material, seed)
    n = f.sizes.shape[0]
    keep, centres = f.placement.placed, f.placement.centres
    if f.field is not material:  # image window at the field's centre
        shift = (f.field.image_size - material.image_size) / 2 * material.pixel_size_nm
        centres = centres - torch.tensor([shift, shift, 0.0])
        window = material.image_size * material.pixel_size_nm
        keep = keep & ((centres[:, :2] + f.reach > 0) & (centres[:, :2] - f.reach < window)).all(1)
    xyzs = torch.cat([centres[keep], f.sizes[keep, None]], 1).float()
    return Layout(
        xyzs=xyzs,
        rotation=f.rotation[keep],
        shape_index=torch.arange(n)[keep],
        shape_seed=f.shape_seed,
        n_shapes=n,
        n_requested=n,
        seed=int(seed),
        size_eps=f.eps[keep],
        size_second=f.second[keep],
    )


def build_particles(layout: Layout, material: MaterialConfig, sizes: torch.Tensor | None = None) -> Particles:
    """Rebuild world-space meshes from a layout.

    ``sizes`` (P,) overrides the layout's sizes, e.g. a reparameterised tensor that carries
    gradients (geometry-gradient mode). Particles then rest on the substrate at their new size, and
    the meshes are built on the sizes' device (so soft rasterization runs where the law learns).
    """
    if layout.n == 0:
        return Particles(torch.zeros(0, 3, 3), torch.zeros(0, 1, 3, dtype=torch.long), torch.zeros(0, 3, 3))
    dev = layout.xyzs.device if sizes is None else sizes.device  # meshes live where the sizes do
    unit = _unit_shapes(material, layout.n_shapes, layout.shape_seed)
    verts = unit.verts[layout.shape_index].to(dev)
    faces = unit.faces[layout.shape_index].to(dev)
    xyzs = layout.xyzs.to(dev)
    centres = xyzs[:, :3]
    if sizes is None:
        sizes = xyzs[:, 3]
    else:  # keep the same contact geometry: scale about the centre, keep resting height ratio
        centres = torch.cat([centres[:, :2], centres[:, 2:3] * sizes[:, None] / xyzs[:, 3:4]], 1)
    rotation = layout.rotation.to(dev)
    world = torch.einsum("pij,pvj->pvi", rotation, verts) * sizes[:, None, None] + centres[:, None, :]
    return Particles(world, faces, vertex_normals(world, faces))


def layouts_to_tensor(
    layouts: list[Layout], max_particles: int, fov_nm: float, size_ref_nm: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Network input: normalised (x, y, z, size) per particle, zero-padded.

    Returns (B, max_particles, 4) with x, y, z divided by the field of view and size by
    ``size_ref_nm``, and a (B, max_particles) bool mask of real particles. Extra particles beyond
    ``max_particles`` are dropped from the *input* only (they are still rendered).
    """
    out = torch.zeros(len(layouts), max_particles, 4)
    mask = torch.zeros(len(layouts), max_particles, dtype=torch.bool)
    for b, lay in enumerate(layouts):
        k = min(lay.n, max_particles)
        x = lay.xyzs[:k].clone()
        x[:, :3] /= fov_nm
        x[:, 3] /= size_ref_nm
        out[b, :k] = x
        mask[b, :k] = True
    return out, mask
