"""Hard rasterization of particle scenes with PyTorch3D, seen by an orthographic top-down camera.

Camera convention: an orthographic projection along -z (the beam). Pixel (row i, column j) covers
x in [j, j+1) * pixel_size and y in [i, i+1) * pixel_size (nm); x runs right, y runs down, z is
height above the substrate plane (z = 0), which fills every pixel no particle covers. We map nm
directly to PyTorch3D NDC (+x left, +y up, z = depth), which is exactly what
``FoVOrthographicCameras`` spanning the field of view would do, without a camera object.

Two equivalent paths:

* :func:`rasterize_windowed` (default): every particle is rasterized in its own small square
  screen window (all windows of one size class form one padded PyTorch3D batch), and the windows
  are composited by depth with scatter-min. PyTorch3D's CPU rasterizer tests every face against
  every pixel, so cost drops from pixels x all faces to sum(window pixels) x faces per particle.
* :func:`rasterize_full`: the reference — all particles of an image joined into one mesh and
  rasterized over the full image. Tests check both agree.

Both run under ``no_grad``: geometry is fixed in the base method, shading is differentiated later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.structures import Meshes

from diffrendergan.scene.layout import Particles


@dataclass
class SurfaceMaps:
    """Visible-surface maps of a batch of images.

    instance: (B, H, W) long — 0 substrate, k = particle k-1 of the image's layout (1-based).
    height: (B, H, W) float — visible surface height above the substrate (nm), 0 on substrate.
    normal: (B, 3, H, W) float — unit surface normal (x right, y down, z up); (0, 0, 1) on substrate.
    thickness: (B, H, W) float or None — summed path length through particles along the beam (nm).
    """

    instance: torch.Tensor
    height: torch.Tensor
    normal: torch.Tensor
    thickness: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> SurfaceMaps:
        thick = None if self.thickness is None else self.thickness.to(device)
        return SurfaceMaps(self.instance.to(device), self.height.to(device), self.normal.to(device), thick)


_EDGE_JITTER_PX = (1.37e-3, 0.91e-3)


def _to_ndc(
    verts: torch.Tensor,
    r0: torch.Tensor,
    c0: torch.Tensor,
    size: int,
    px: float,
    z0: float,
    flip_z: bool,
):
    """nm -> NDC of a square window of ``size`` px whose top-left pixel is (r0, c0). verts (N, V, 3)."""
    # A tiny fixed sub-pixel offset: PyTorch3D assigns a pixel centre lying exactly on an edge
    # shared by two faces to neither, which would punch holes through axis-aligned layouts.
    col = verts[..., 0] / px - c0[:, None] + _EDGE_JITTER_PX[0]
    row = verts[..., 1] / px - r0[:, None] + _EDGE_JITTER_PX[1]
    z = verts[..., 2]
    depth = (z + z0) if flip_z else (z0 - z)
    return torch.stack([1.0 - 2.0 * col / size, 1.0 - 2.0 * row / size, depth], -1)


def _raster(verts_ndc: torch.Tensor, faces: torch.Tensor, normals: torch.Tensor, size: int):
    """Rasterize N meshes (N, V, 3) into (N, size, size) windows; nearest face per pixel.

    Returns packed face index (N, S, S) (-1 = empty), zbuf (N, S, S) and interpolated normals
    (N, S, S, 3).
    """
    meshes = Meshes(verts=verts_ndc, faces=faces)
    p2f, zbuf, bary, _ = rasterize_meshes(
        meshes,
        image_size=size,
        blur_radius=0.0,
        faces_per_pixel=1,
        bin_size=0,
        perspective_correct=False,
    )
    p2f, zbuf, bary = p2f[..., 0], zbuf[..., 0], bary[..., 0, :]
    faces_packed = meshes.faces_packed()
    vn = normals.reshape(-1, 3)[faces_packed[p2f.clamp_min(0)]]  # (N, S, S, 3 verts, 3)
    n = (bary[..., None] * vn).sum(-2)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return p2f, zbuf, n


def _scene_device(particles: list[Particles]) -> torch.device:
    """Where the particles' meshes live (the CPU for a batch of empty images)."""
    return next((p.verts.device for p in particles if p.verts.numel()), torch.device("cpu"))


def _z_top(particles: list[Particles]) -> float:
    """Depth origin of a batch: 1 nm above its highest vertex, so every depth is positive."""
    tops = (float(p.verts[..., 2].detach().max()) for p in particles if p.verts.numel())
    return 1.0 + max(tops, default=1.0)


def _size_class(s: torch.Tensor) -> torch.Tensor:
    """Round window sizes up to a few classes (multiples of 8) so that windows batch together."""
    return (torch.ceil(s.float() / 8) * 8).long().clamp_min(8)


@dataclass
class _Windows:
    """One entry per particle whose bounding box meets the image: image ``b``, particle ``p``,
    window top-left ``(r0, c0)`` in pixels and window side ``size`` (a size class); all (E,) long."""

    b: torch.Tensor
    p: torch.Tensor
    r0: torch.Tensor
    c0: torch.Tensor
    size: torch.Tensor


def _windows(particles: list[Particles], image_size: int, pixel_size_nm: float) -> _Windows:
    """Every particle's window, built with tensor ops image by image."""
    h = w = image_size
    cols: list[list[torch.Tensor]] = [[], [], [], [], []]
    for b, part in enumerate(particles):
        if part.verts.shape[0] == 0:
            continue
        col = part.verts[..., 0] / pixel_size_nm
        row = part.verts[..., 1] / pixel_size_nm
        c0 = torch.floor(col.min(1).values).long().clamp(0, w)
        c1 = torch.ceil(col.max(1).values).long().clamp(0, w)
        r0 = torch.floor(row.min(1).values).long().clamp(0, h)
        r1 = torch.ceil(row.max(1).values).long().clamp(0, h)
        idx = ((c1 > c0) & (r1 > r0)).nonzero().flatten()
        size = _size_class(torch.maximum(c1 - c0, r1 - r0)[idx] + 1)
        for column, value in zip(cols, (torch.full_like(idx, b), idx, r0[idx], c0[idx], size)):
            column.append(value)
    dev = _scene_device(particles)
    return _Windows(*(torch.cat(c) if c else torch.zeros(0, dtype=torch.long, device=dev) for c in cols))


@dataclass
class _Fragments:
    """Covered pixels of every window, flattened: global pixel index ``g`` into (B*H*W),
    depth ``d``, instance id ``inst`` (particle + 1), normal ``nrm`` (F, 3)."""

    g: list[torch.Tensor] = field(default_factory=list)
    d: list[torch.Tensor] = field(default_factory=list)
    inst: list[torch.Tensor] = field(default_factory=list)
    nrm: list[torch.Tensor] = field(default_factory=list)


def _raster_size_class(
    particles: list[Particles], win: _Windows, size: int, scene: tuple[int, float, float],
    out: _Fragments, thick: torch.Tensor | None,
) -> None:  # fmt: skip
    """Rasterize all windows of one size class in one PyTorch3D call; append their fragments to
    ``out`` and, with ``thick`` (B*H*W,), add front-to-back thickness. ``scene``: (image side,
    pixel size nm, depth origin)."""
    h, pixel_size_nm, z_top = scene
    w, dev = h, win.b.device
    sel = (win.size == size).nonzero().flatten()  # ordered by image, then particle
    bidx, pidx, r0, c0 = win.b[sel], win.p[sel], win.r0[sel], win.c0[sel]
    images = sorted(set(bidx.tolist()))
    verts = torch.cat([particles[b].verts[pidx[bidx == b]] for b in images])
    faces = torch.cat([particles[b].faces[pidx[bidx == b]] for b in images])
    normals = torch.cat([particles[b].normals[pidx[bidx == b]] for b in images])
    p2f, zbuf, nrm = _raster(_to_ndc(verts, r0, c0, size, pixel_size_nm, z_top, False), faces, normals, size)
    rows = r0[:, None] + torch.arange(size, device=dev)[None]  # (N, S)
    cols = c0[:, None] + torch.arange(size, device=dev)[None]
    in_img = (rows[:, :, None] < h) & (cols[:, None, :] < w)
    g = (
        bidx[:, None, None] * (h * w)
        + rows[:, :, None].clamp_max(h - 1) * w
        + cols[:, None, :].clamp_max(w - 1)
    )
    valid = (p2f >= 0) & in_img
    out.g.append(g[valid])
    out.d.append(zbuf[valid])
    out.inst.append((pidx + 1)[:, None, None].expand_as(g)[valid])
    out.nrm.append(nrm[valid])
    if thick is not None:
        p2f_b, zbuf_b, _ = _raster(
            _to_ndc(verts, r0, c0, size, pixel_size_nm, z_top, True), faces, normals, size
        )
        both = valid & (p2f_b >= 0)
        thick.index_add_(0, g[both], ((z_top - zbuf) - (zbuf_b - z_top))[both].clamp_min(0))


def _composite(frags: _Fragments, total: int, z_top: float, dev: torch.device):
    """Nearest fragment per pixel (ties: the larger instance id) -> flat instance (total,),
    height (total,) and normal (total, 3) maps; uncovered pixels: 0, 0 and +z."""
    instance = torch.zeros(total, dtype=torch.long, device=dev)
    height = torch.zeros(total, device=dev)
    normal = torch.zeros(total, 3, device=dev)
    normal[:, 2] = 1.0
    if frags.g:
        g, d, inst, nrm = (torch.cat(x) for x in (frags.g, frags.d, frags.inst, frags.nrm))
        dmin = torch.full((total,), math.inf, device=dev).scatter_reduce(0, g, d, "amin")
        win = d == dmin[g]
        imax = torch.full((total,), -1, dtype=torch.long, device=dev)
        imax = imax.scatter_reduce(0, g[win], inst[win], "amax")
        win &= inst == imax[g]
        instance[g[win]] = inst[win]
        height[g[win]] = z_top - d[win]
        normal[g[win]] = nrm[win]
    return instance, height, normal


@torch.no_grad()
def rasterize_windowed(
    particles: list[Particles], image_size: int, pixel_size_nm: float, thickness: bool = False
) -> SurfaceMaps:
    """Rasterize each particle in its own window and composite by depth. See module docstring.

    Runs on the particles' device (PyTorch3D's CUDA rasterizer on a GPU); maps come back there."""
    b_count, h = len(particles), image_size
    dev = _scene_device(particles)
    z_top = _z_top(particles)
    win = _windows(particles, image_size, pixel_size_nm)
    total = b_count * h * h
    frags = _Fragments()
    thick = torch.zeros(total, device=dev) if thickness else None
    for size in sorted(set(win.size.tolist())):
        _raster_size_class(particles, win, size, (h, pixel_size_nm, z_top), frags, thick)
    instance, height, normal = _composite(frags, total, z_top, dev)
    return SurfaceMaps(
        instance=instance.view(b_count, h, h),
        height=height.view(b_count, h, h),
        normal=normal.view(b_count, h, h, 3).permute(0, 3, 1, 2).contiguous(),
        thickness=None if thick is None else thick.view(b_count, h, h),
    )


@torch.no_grad()
def rasterize_full(particles: list[Particles], image_size: int, pixel_size_nm: float) -> SurfaceMaps:
    """Reference path: one joined mesh per image, every face against every pixel (PyTorch3D naive).
    Runs on the particles' device, like :func:`rasterize_windowed`."""
    h = w = image_size
    dev = _scene_device(particles)
    z_top = _z_top(particles)
    instance = torch.zeros(len(particles), h, w, dtype=torch.long, device=dev)
    height = torch.zeros(len(particles), h, w, device=dev)
    normal = torch.zeros(len(particles), 3, h, w, device=dev)
    normal[:, 2] = 1.0
    origin = torch.zeros(1, device=dev)
    for b, part in enumerate(particles):
        p, v = part.verts.shape[:2]
        if p == 0:
            continue
        offs = (torch.arange(p, device=dev) * v)[:, None, None]
        faces = (part.faces + offs).reshape(-1, 3)
        face_particle = torch.arange(p, device=dev)[:, None].expand(-1, part.faces.shape[1]).reshape(-1)
        keep = (part.faces >= 0).all(-1).reshape(-1)
        faces, face_particle = faces[keep], face_particle[keep]
        verts = part.verts.reshape(1, -1, 3)
        ndc = _to_ndc(verts, origin, origin, w, pixel_size_nm, z_top, False)
        p2f, zbuf, n = (t[0] for t in _raster(ndc, faces[None], part.normals.reshape(1, -1, 3), w))
        hit = p2f >= 0
        instance[b][hit] = face_particle[p2f[hit]] + 1
        height[b][hit] = z_top - zbuf[hit]
        normal[b].permute(1, 2, 0)[hit] = n[hit]
    return SurfaceMaps(instance, height, normal)
