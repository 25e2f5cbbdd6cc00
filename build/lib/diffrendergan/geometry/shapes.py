"""Particle shape families as fixed-topology meshes, generated for many particles at once.

Every family returns *unit* particles: centred at the origin, volume-equivalent diameter 1,
vertices ``(P, V, 3)`` and faces ``(F, 3)`` (one topology shared by all P particles; ``-1`` rows pad
user meshes with fewer faces). Sharing a topology is what lets the renderer rasterize hundreds of
particles as one padded batch. Frame: x right, y down the image, z up towards the detector.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from pytorch3d.transforms import axis_angle_to_matrix, quaternion_to_matrix

from diffrendergan.config import ShapeConfig
from diffrendergan.errors import ConfigError, DataError


@dataclass
class UnitShapes:
    """Unit particles. verts: (P, V, 3); faces: (P, F, 3) long, -1 rows are padding."""

    verts: torch.Tensor
    faces: torch.Tensor


@lru_cache(maxsize=8)
def icosphere(level: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-radius icosphere (PyTorch3D's), outward CCW winding. -> verts (V, 3), faces (F, 3)."""
    from pytorch3d.utils import ico_sphere

    mesh = ico_sphere(level)
    return mesh.verts_packed().detach().clone(), mesh.faces_packed().clone()


def _random_unit(p: int, n: int, gen: torch.Generator) -> torch.Tensor:
    v = torch.randn(p, n, 3, generator=gen)
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-9)


def _smooth_noise(dirs: torch.Tensor, p: int, gen: torch.Generator, waves: int = 6) -> torch.Tensor:
    """Zero-mean smooth noise on the unit sphere, (P, V), std ~ 1: a sum of random plane waves."""
    d = _random_unit(p, waves, gen)  # (P, J, 3)
    freq = 2.0 + 3.0 * torch.rand(p, waves, 1, generator=gen)
    phase = 2 * math.pi * torch.rand(p, waves, 1, generator=gen)
    proj = torch.einsum("pjc,vc->pjv", d, dirs)
    return torch.cos(freq * proj + phase).sum(1) * math.sqrt(2.0 / waves)


def _normalise_volume(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Scale each particle to volume-equivalent diameter 1. verts (P, V, 3), faces (P, F, 3)."""
    vol = mesh_volume(verts, faces).abs().clamp_min(1e-12)
    d_eq = (6.0 * vol / math.pi) ** (1.0 / 3.0)
    return verts / d_eq[:, None, None]


def mesh_volume(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Signed volume of closed meshes (divergence theorem). verts (P, V, 3), faces (P, F, 3) -> (P,)."""
    valid = (faces >= 0).all(-1)
    f = faces.clamp_min(0)
    tri = torch.gather(verts[:, None].expand(-1, f.shape[1], -1, -1), 2, f[..., None].expand(-1, -1, -1, 3))
    vol = (tri[:, :, 0] * torch.cross(tri[:, :, 1], tri[:, :, 2], dim=-1)).sum(-1) / 6.0
    return (vol * valid).sum(1)


def sphere(n: int, cfg: ShapeConfig, gen: torch.Generator) -> UnitShapes:
    """Icospheres with optional mild radial roughness (SiO2)."""
    dirs, faces = icosphere(cfg.ico_level)
    r = 0.5 * (1.0 + cfg.roughness * _smooth_noise(dirs, n, gen)).clamp_min(0.2)
    verts = dirs[None] * r[..., None]
    faces = faces[None].expand(n, -1, -1)
    return UnitShapes(_normalise_volume(verts, faces), faces)


def faceted(n: int, cfg: ShapeConfig, gen: torch.Generator) -> UnitShapes:
    """Irregular rounded grains (TiO2): a random polyhedron (intersection of ``n_facets`` random
    half-spaces) blended towards a sphere by ``rounding``, stretched by a random aspect ratio up to
    ``elongation``, plus optional smooth roughness. Star-shaped, so radial construction stays valid."""
    dirs, faces = icosphere(cfg.ico_level)
    normals = _random_unit(n, max(cfg.n_facets, 4), gen)  # (P, N, 3)
    offsets = 0.42 + 0.08 * torch.rand(n, normals.shape[1], generator=gen)
    cos = torch.einsum("pnc,vc->pvn", normals, dirs)  # (P, V, N)
    r_poly = torch.where(cos > 1e-3, offsets[:, None, :] / cos.clamp_min(1e-3), torch.full_like(cos, 1e3))
    r_poly = r_poly.min(-1).values.clamp(max=0.75)
    r = cfg.rounding * 0.5 + (1.0 - cfg.rounding) * r_poly
    if cfg.roughness > 0:
        r = r * (1.0 + cfg.roughness * _smooth_noise(dirs, n, gen)).clamp_min(0.3)
    verts = dirs[None] * r[..., None]
    aspect = 1.0 + (max(cfg.elongation, 1.0) - 1.0) * torch.rand(n, generator=gen)
    scale = torch.stack([aspect, torch.ones_like(aspect), 1.0 / aspect.sqrt()], -1)  # (P, 3)
    verts = verts * scale[:, None, :]
    faces = faces[None].expand(n, -1, -1)
    return UnitShapes(_normalise_volume(verts, faces), faces)


def wire(n: int, cfg: ShapeConfig, gen: torch.Generator) -> UnitShapes:
    """Pentagonal prisms with pyramidal tips along x (Ag nanowires), gently bent in the x-y plane.

    The unit is the *diameter*: the returned wire has diameter 1 and length ``aspect`` (drawn in
    [aspect_min, aspect_max]); its volume is not normalised, since a wire's size is its diameter.
    """
    seg = max(cfg.wire_segments, 1)
    aspect = cfg.aspect_min + (cfg.aspect_max - cfg.aspect_min) * torch.rand(n, generator=gen)
    t = torch.linspace(-0.5, 0.5, seg + 1)  # ring positions along the axis (fraction of length)
    ang = torch.arange(5) * (2 * math.pi / 5)
    ring = torch.stack([torch.zeros(5), 0.5 * torch.cos(ang), 0.5 * torch.sin(ang)], -1)  # (5, 3)
    x = t[None, :] * aspect[:, None]  # (P, R)
    bend = cfg.bend * (2 * torch.rand(n, generator=gen) - 1)
    y_off = bend[:, None] * aspect[:, None] * (t[None, :] ** 2 - 0.25)  # parabola in the substrate plane
    rings = ring[None, None] + torch.stack([x, y_off, torch.zeros_like(x)], -1)[:, :, None, :]
    tip = 0.35
    tips = torch.stack(
        [
            torch.stack([x[:, 0] - tip, y_off[:, 0], torch.zeros(n)], -1),
            torch.stack([x[:, -1] + tip, y_off[:, -1], torch.zeros(n)], -1),
        ],
        1,
    )
    verts = torch.cat([rings.reshape(n, -1, 3), tips], 1)  # (P, 5R + 2, 3)
    faces = _wire_faces(seg + 1)
    # Winding is outward by construction (ring quads and tip fans), like PyTorch3D's icosphere.
    return UnitShapes(verts, faces[None].expand(n, -1, -1))


@lru_cache(maxsize=8)
def _wire_faces(rings: int) -> torch.Tensor:
    f = []
    for r in range(rings - 1):
        for k in range(5):
            a, b = r * 5 + k, r * 5 + (k + 1) % 5
            c, d = a + 5, b + 5
            f += [(a, b, d), (a, d, c)]
    t0, t1 = rings * 5, rings * 5 + 1
    for k in range(5):
        f.append((t0, (k + 1) % 5, k))
        last = (rings - 1) * 5
        f.append((t1, last + k, last + (k + 1) % 5))
    return torch.tensor(f, dtype=torch.long)


def load_mesh(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a user .obj/.ply mesh -> verts (V, 3), faces (F, 3), with errors naming the file."""
    from pytorch3d.io import load_obj, load_ply

    suffix = str(path).lower().rsplit(".", 1)[-1]
    try:
        if suffix == "obj":
            verts, faces, _ = load_obj(path, load_textures=False)
            faces = faces.verts_idx
        elif suffix == "ply":
            verts, faces = load_ply(path)
        else:
            raise DataError(path, "unsupported mesh format; expected .obj or .ply")
    except DataError:
        raise
    except Exception as exc:  # pytorch3d raises a mix of ValueError/OSError/IndexError
        raise DataError(path, f"cannot read mesh ({type(exc).__name__}: {exc})") from exc
    if faces.numel() == 0 or verts.numel() == 0:
        raise DataError(path, "mesh has no faces; expected a closed triangle mesh")
    return verts.float(), faces.long()


def user_meshes(n: int, cfg: ShapeConfig, gen: torch.Generator) -> UnitShapes:
    """User meshes (one per particle, chosen at random), centred and scaled to unit equivalent
    diameter; faces padded with -1 to a common count."""
    meshes = [load_mesh(p) for p in cfg.mesh_paths]
    v_max = max(v.shape[0] for v, _ in meshes)
    f_max = max(f.shape[0] for _, f in meshes)
    pick = torch.randint(len(meshes), (n,), generator=gen)
    verts = torch.zeros(n, v_max, 3)
    faces = torch.full((n, f_max, 3), -1, dtype=torch.long)
    for i, k in enumerate(pick.tolist()):
        v, f = meshes[k]
        verts[i, : v.shape[0]] = v - v.mean(0)
        verts[i, v.shape[0] :] = verts[i, 0]
        faces[i, : f.shape[0]] = f
    return UnitShapes(_normalise_volume(verts, faces), faces)


SHAPE_REGISTRY: dict[str, Callable[[int, ShapeConfig, torch.Generator], UnitShapes]] = {
    "sphere": sphere,
    "faceted": faceted,
    "wire": wire,
    "mesh": user_meshes,
}


def make_unit_shapes(n: int, cfg: ShapeConfig, gen: torch.Generator) -> UnitShapes:
    """Dispatch to a registered family; unknown names fail naming the config key."""
    try:
        fn = SHAPE_REGISTRY[cfg.family]
    except KeyError:
        raise ConfigError(
            "material.shape.family",
            f"unknown shape family {cfg.family!r}; expected one of {sorted(SHAPE_REGISTRY)}",
        ) from None
    return fn(n, cfg, gen)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals. verts (P, V, 3), faces (P, F, 3) -> (P, V, 3).

    PyTorch3D's ``Meshes.verts_normals_padded`` gives the same values but costs 2.4x as much per
    layout (benchmarks/run.py ``vertex_normals``: 2.05 vs 0.85 ms, tio2), on the layout path."""
    f = faces.clamp_min(0)
    valid = (faces >= 0).all(-1, keepdim=True).to(verts.dtype)
    tri = torch.gather(verts[:, None].expand(-1, f.shape[1], -1, -1), 2, f[..., None].expand(-1, -1, -1, 3))
    fn = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1) * valid
    normals = torch.zeros_like(verts)
    for k in range(3):
        normals.scatter_add_(1, f[..., k : k + 1].expand(-1, -1, 3), fn)
    return normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def random_rotations(n: int, gen: torch.Generator, flat: bool = False) -> torch.Tensor:
    """Uniform random rotations (P, 3, 3) from unit quaternions; ``flat`` = rotation about z only."""
    if flat:
        angle = 2 * math.pi * torch.rand(n, generator=gen)
        return axis_angle_to_matrix(torch.stack([torch.zeros_like(angle)] * 2 + [angle], -1))
    q = torch.randn(n, 4, generator=gen)  # real part first, as quaternion_to_matrix expects
    return quaternion_to_matrix(q / q.norm(dim=-1, keepdim=True))
