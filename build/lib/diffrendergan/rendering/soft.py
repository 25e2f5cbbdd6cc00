"""Geometry-gradient mode: soft silhouettes so gradients reach vertex positions and particle sizes.

SoftRas-style coverage (Liu et al. 2019) per particle window: each of the K nearest faces within
``blur_px`` contributes 1 if the pixel is inside it and ``2 sigmoid(-d / sigma)`` otherwise (d:
squared distance to the face, px²), the particle's coverage is ``1 - prod(1 - a_k)``, and
particles combine as ``1 - prod_p (1 - a_p)``.

PyTorch3D's rasterizer chooses, without gradients, which K faces touch each pixel and whether the
pixel lies inside one; the outside distances d are then re-evaluated here in closed form (point to
triangle edges) so autograd differentiates them. Same values as the rasterizer's ``dists``, but the
backward is a few vectorised tensor ops instead of PyTorch3D's CPU kernel, which costs ~25 ms per
particle window (``rasterizer_grad=True`` keeps that path as the reference; benchmarks/run.py
``soft_coverage`` compares the two).
Only used when geometry is learned (topography learning); the default path stays hard and cached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.structures import Meshes

from diffrendergan.rendering.rasterize import _EDGE_JITTER_PX, _scene_device, _size_class, _to_ndc, _z_top
from diffrendergan.scene.layout import Particles


def soft_coverage(
    particles: list[Particles],
    image_size: int,
    pixel_size_nm: float,
    blur_px: float = 1.0,
    faces_per_pixel: int = 24,
    weights: list[torch.Tensor] | None = None,
    sigma_px2: float | None = None,
    rasterizer_grad: bool = False,
) -> torch.Tensor:
    """Differentiable particle coverage (B, 1, H, W) in [0, 1].

    ``weights``: optional per-image (P,) presence weights in [0, 1] multiplying each particle's
    coverage (relaxed particle counts). ``rasterizer_grad``: reference mode that backpropagates
    through PyTorch3D's own distances (same values and gradients, ~35x slower backward on CPU)."""
    h = w = image_size
    if sigma_px2 is None:  # coverage falls to 1e-4 at the blur radius (the SoftRas recipe)
        sigma_px2 = max(blur_px, 1e-3) ** 2 / math.log(1.0 / 1e-4 - 1.0)
    soft = _Soft(pixel_size_nm, _z_top(particles), blur_px, sigma_px2, faces_per_pixel, rasterizer_grad)
    dev = _scene_device(particles)
    log_free = torch.zeros(len(particles) * h * w, dtype=torch.float32, device=dev)
    for b, part in enumerate(particles):
        if part.verts.shape[0] == 0:
            continue
        r0, c0, size = _soft_windows(part, image_size, pixel_size_nm, math.ceil(blur_px) + 1)
        for s in sorted(set(size.tolist())):
            idx = (size == s).nonzero().flatten()
            a = _window_coverage(part.verts[idx], part.faces[idx], r0[idx], c0[idx], s, soft)
            if weights is not None:
                a = a * weights[b][idx].to(a)[:, None, None]
            log_free_win = torch.log1p(-a.clamp(max=1 - 1e-6))
            rows = r0[idx, None] + torch.arange(s, device=dev)[None]
            cols = c0[idx, None] + torch.arange(s, device=dev)[None]
            ok = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
            g = b * h * w + rows[:, :, None].clamp(0, h - 1) * w + cols[:, None, :].clamp(0, w - 1)
            log_free = log_free.index_add(0, g[ok], log_free_win[ok])
    return (1.0 - torch.exp(log_free)).view(len(particles), 1, h, w)


@dataclass(frozen=True)
class _Soft:
    """Settings shared by every window of one :func:`soft_coverage` call."""

    pixel_size_nm: float
    z_top: float  # depth origin of the batch (nm)
    blur_px: float
    sigma_px2: float
    faces_per_pixel: int
    rasterizer_grad: bool


def _soft_windows(part: Particles, image_size: int, pixel_size_nm: float, pad: int):
    """Each particle's window, padded by the blur radius: top-left rows/cols (P,) (may be
    negative) and side size classes (P,)."""
    h = w = image_size
    col = part.verts[..., 0].detach() / pixel_size_nm
    row = part.verts[..., 1].detach() / pixel_size_nm
    c0 = (torch.floor(col.min(1).values).long() - pad).clamp(-pad, w)
    r0 = (torch.floor(row.min(1).values).long() - pad).clamp(-pad, h)
    c1 = (torch.ceil(col.max(1).values).long() + pad).clamp(0, w + pad)
    r1 = (torch.ceil(row.max(1).values).long() + pad).clamp(0, h + pad)
    return r0, c0, _size_class(torch.maximum(c1 - c0, r1 - r0) + 1)


def _window_coverage(
    verts: torch.Tensor, faces: torch.Tensor, r0: torch.Tensor, c0: torch.Tensor, s: int, soft: _Soft
) -> torch.Tensor:
    """Soft coverage (N, s, s) of N particles (verts (N, V, 3) nm, faces (N, F, 3)) in their
    s x s windows at (r0, c0): PyTorch3D picks the faces, distances are re-derived for autograd."""
    px_ndc = 2.0 / s
    with torch.set_grad_enabled(soft.rasterizer_grad and torch.is_grad_enabled()):
        ndc = _to_ndc(verts if soft.rasterizer_grad else verts.detach(), r0, c0, s,
                      soft.pixel_size_nm, soft.z_top, False)  # fmt: skip
        p2f, _, _, dists = rasterize_meshes(
            Meshes(verts=ndc, faces=faces),
            image_size=s,
            blur_radius=(soft.blur_px * px_ndc) ** 2,
            faces_per_pixel=soft.faces_per_pixel,
            bin_size=0,
            perspective_correct=False,
        )
    if soft.rasterizer_grad:
        d_px2 = dists / px_ndc**2
    else:
        col = verts[..., 0] / soft.pixel_size_nm - c0[:, None] + _EDGE_JITTER_PX[0]
        row = verts[..., 1] / soft.pixel_size_nm - r0[:, None] + _EDGE_JITTER_PX[1]
        d_px2 = face_distance_px2(torch.stack([col, row], -1), faces, p2f)
    # Inside a face: fully covered; outside: 2 sigmoid(-d / sigma) decays from 1 at the edge.
    # (A plain sigmoid would leave interior pixels near tiny faces' edges half-covered.)
    inside = torch.ones_like(d_px2)
    a = torch.where(dists <= 0, inside, 2 * torch.sigmoid(-d_px2 / soft.sigma_px2)) * (p2f >= 0)
    return 1.0 - torch.prod(1.0 - a.clamp(max=1 - 1e-6), -1)  # particle coverage (N, S, S)


def face_distance_px2(verts_px: torch.Tensor, faces: torch.Tensor, pix_to_face: torch.Tensor) -> torch.Tensor:
    """Squared 2-D distance (px²) from each pixel centre to its selected faces, differentiable.

    verts_px: (N, V, 2) window coordinates (col, row) in px; faces: (N, F, 3) per-mesh indices;
    pix_to_face: (N, S, S, K) packed face indices from PyTorch3D (-1 = none). Returns (N, S, S, K):
    the distance to the nearest of the triangle's three edges (the caller handles inside pixels).
    """
    n, v_count, _ = verts_px.shape
    size = pix_to_face.shape[1]
    offsets = (torch.arange(n, device=faces.device) * v_count)[:, None, None]
    tri = verts_px.reshape(-1, 2)[(faces + offsets).reshape(-1, 3)[pix_to_face.clamp_min(0)]]  # (N,S,S,K,3,2)
    centre = torch.arange(size, dtype=verts_px.dtype, device=verts_px.device) + 0.5
    p = torch.stack(torch.broadcast_tensors(centre[None, :], centre[:, None]), -1)  # (S, S, 2): (col, row)
    p = p[None, :, :, None, None, :]
    a, b = tri, tri.roll(-1, dims=-2)
    ab, ap = b - a, p - a
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0.0, 1.0)
    closest = a + t[..., None] * ab
    return ((p - closest) ** 2).sum(-1).min(-1).values


def dilate_into_background(values: torch.Tensor, mask: torch.Tensor, steps: int = 3) -> torch.Tensor:
    """Extend per-pixel particle values a few pixels outward so that soft edges have a colour.

    values, mask: (B, 1, H, W); returns values where mask, nearest-ish particle value elsewhere.
    """
    v, m = values * mask, mask
    for _ in range(steps):
        num = F.avg_pool2d(v, 3, 1, 1)
        den = F.avg_pool2d(m, 3, 1, 1)
        grown = (den > 0).float()
        v = torch.where(m > 0, v, num / den.clamp_min(1e-6) * grown)
        m = torch.maximum(m, grown)
    return v
