"""G-buffer: every per-pixel geometric quantity a shader needs, computed once per layout.

Geometry is fixed in the base method, so everything here is computed without autograd and cached;
shaders are then cheap, differentiable functions of (G-buffer, parameters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from diffrendergan.rendering.rasterize import SurfaceMaps


@dataclass
class GBuffer:
    """Per-pixel geometry, all (B, 1, H, W) except ``normal`` (B, 3, H, W) and ``instance`` (B, H, W).

    instance: 0 substrate, k particle k (1-based). height: surface height (nm). normal: unit
    normal (x right, y down, z up). facing: the normal's component towards the side detector
    (``normal . (cos az, sin az, 0)``, in [-1, 1]), so that shaders and the cast shadow see one
    detector direction. edge_dist: distance (nm) from a particle pixel to its own nearest free edge,
    over the film or over a lower grain; film_edge_dist: the same to its nearest edge over the film
    (see :func:`edge_distances`). shadow: how far (nm) the surface lies below the line of
    sight towards the side detector within :data:`SHADOW_REACH_NM` (0 = unshadowed). occlusion:
    fraction of the sky above a pixel hidden by nearby surfaces, in [0, 1) (0 = open; see
    :func:`ambient_occlusion`). grain: a seeded standard-normal value per particle, constant over
    it (0 on the substrate), for the grain-to-grain spread of SE yield. texture:
    zero-mean, unit-std smooth substrate texture. film, film_coarse: zero-mean, unit-std
    band-limited fields at two correlation lengths, independent of each other, whose blend's level
    set the shader draws as the support film's residue (:func:`film_field`).
    thickness: path length through particles (nm) or None.
    """

    instance: torch.Tensor
    particle: torch.Tensor
    height: torch.Tensor
    normal: torch.Tensor
    facing: torch.Tensor
    edge_dist: torch.Tensor
    film_edge_dist: torch.Tensor
    shadow: torch.Tensor
    occlusion: torch.Tensor
    grain: torch.Tensor
    texture: torch.Tensor
    film: torch.Tensor
    film_coarse: torch.Tensor
    thickness: torch.Tensor | None
    pixel_size_nm: float

    def to(self, device: torch.device | str) -> GBuffer:
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in kw.items():
            if isinstance(v, torch.Tensor):
                kw[k] = v.to(device)
        return GBuffer(**kw)

    def index(self, idx: slice | list[int] | torch.Tensor) -> GBuffer:
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in kw.items():
            if isinstance(v, torch.Tensor):
                kw[k] = v[idx]
        return GBuffer(**kw)

    @staticmethod
    def cat(items: list[GBuffer]) -> GBuffer:
        kw = {}
        for f in fields(GBuffer):
            vals = [getattr(g, f.name) for g in items]
            if isinstance(vals[0], torch.Tensor):
                kw[f.name] = torch.cat(vals)
            else:
                kw[f.name] = vals[0]
        return GBuffer(**kw)


def edge_distances(
    instance: torch.Tensor, height: torch.Tensor, pixel_size_nm: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances (nm) from every particle pixel to its own particle's free edges: (to any free
    edge, to an edge over the film), each (B, 1, H, W), from instance (B, H, W), height (B, H, W).

    A particle pixel is on a free edge when a 4-neighbour is substrate (an edge over the film) or
    a surface lower by more than one pixel size (the particle stands in front of it): there
    secondary electrons escape through the side as well as the top (the edge effect). The rear
    particle of an occlusion and two grains meeting in a crease have no free edge there. Pixels
    whose nearest free edge belongs to another particle, and substrate pixels, get 1e4 nm (no edge
    effect); the image border is not an edge (the specimen continues). One pass gives both maps.
    """
    inst, h = instance.numpy(), height.numpy()
    to_any, to_film = (np.full(inst.shape, 1e4, dtype=np.float32) for _ in range(2))
    for b in range(inst.shape[0]):
        any_edge, film_edge = _free_edges(inst[b], h[b], step=pixel_size_nm)
        for k, box in enumerate(ndimage.find_objects(inst[b]), start=1):
            if box is None:
                continue
            own = inst[b][box] == k
            for edge, out in ((any_edge, to_any), (film_edge, to_film)):
                mine = edge[box] & own
                if mine.any():
                    dist = ndimage.distance_transform_edt(~mine)  # to the particle's own edges
                    out[b][box][own] = dist[own] * pixel_size_nm
    return torch.from_numpy(to_any)[:, None], torch.from_numpy(to_film)[:, None]


def _free_edges(inst: np.ndarray, height: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) bool each: particle pixels next to substrate or to a surface lower by more than
    ``step``, and those next to substrate."""
    any_edge = np.zeros(inst.shape, dtype=bool)
    film_edge = np.zeros(inst.shape, dtype=bool)
    for axis in (0, 1):
        for shift in (1, -1):
            nb_inst = np.roll(inst, shift, axis)
            lower = np.roll(height, shift, axis) < height - step
            other = (inst > 0) & (nb_inst != inst)
            border = [slice(None)] * 2
            border[axis] = 0 if shift == 1 else -1  # np.roll wraps: the image border is no edge
            over_film = other & (nb_inst == 0)
            free = over_film | (other & lower)
            over_film[tuple(border)] = free[tuple(border)] = False
            film_edge |= over_film
            any_edge |= free
    return any_edge, film_edge


# Secondary electrons blocked on their way to the detector are those emitted close to a wall:
# farther away, the (in-lens or side) detector's field pulls them around it. Occluders farther
# than this are ignored, so a tall stack cannot cast a band across the image.
SHADOW_REACH_NM = 100.0


def detector_shadow(
    height: torch.Tensor,
    pixel_size_nm: float,
    azimuth_deg: float,
    elevation_deg: float = 30.0,
    max_steps: int = 48,
    reach_px: int | None = None,
) -> torch.Tensor:
    """Depth (nm) by which each pixel lies below the line of sight towards a side detector.

    The line of sight from a pixel towards the detector azimuth rises by tan(elevation) per unit
    distance; occlusion = max over the pixels ahead (at most ``reach_px`` of them; None = all) of
    (their height - rise - height here), >= 0. height (B, H, W) -> (B, 1, H, W). For the four
    image axes this is an exact windowed maximum; other azimuths march ``max_steps`` shifted
    copies of the height map.
    """
    quarter = round(azimuth_deg / 90.0)
    if abs(azimuth_deg - 90.0 * quarter) < 1e-6:
        rise_per_px = pixel_size_nm * math.tan(math.radians(elevation_deg))
        return _axis_shadow(height, rise_per_px, quarter % 4, reach_px)[:, None]
    h = height[:, None]
    hmax = float(h.max()) if h.numel() else 0.0
    if hmax <= 0:
        return torch.zeros_like(h)
    rise = pixel_size_nm * math.tan(math.radians(elevation_deg))
    steps = min(max_steps, math.ceil(hmax / rise), reach_px or max_steps)
    dx, dy = math.cos(math.radians(azimuth_deg)), math.sin(math.radians(azimuth_deg))
    occl = torch.zeros_like(h)
    big = F.pad(h, (steps, steps, steps, steps))
    hh, ww = h.shape[-2:]
    for t in range(1, steps + 1):
        ox, oy = round(t * dx), round(t * dy)
        ahead = big[..., steps + oy : steps + oy + hh, steps + ox : steps + ox + ww]
        occl = torch.maximum(occl, ahead - h - t * rise)
    return occl


def _axis_shadow(
    height: torch.Tensor, rise: float, quarter: int, reach_px: int | None = None
) -> torch.Tensor:
    """Shadow depth for a detector along +x (0), +y (1), -x (2) or -y (3). height (B, H, W).

    Along the viewing axis, S(c) = max_{c < c' <= c + reach} (h(c') - (c' - c) rise) = c rise +
    M(c), with M the maximum of g(c') = h(c') - c' rise over the window ahead: a suffix maximum
    (one ``cummax``) without a reach, a sliding-window maximum with one."""
    to_axis = {
        0: lambda x: x,
        1: lambda x: x.transpose(-2, -1),
        2: lambda x: x.flip(-1),
        3: lambda x: x.flip(-2).transpose(-2, -1),
    }
    back = {
        0: lambda x: x,
        1: lambda x: x.transpose(-2, -1),
        2: lambda x: x.flip(-1),
        3: lambda x: x.transpose(-2, -1).flip(-2),
    }
    h = to_axis[quarter](height)
    c = torch.arange(h.shape[-1], dtype=h.dtype, device=h.device) * rise
    if reach_px is None:
        g = (h - c).flip(-1).cummax(-1).values.flip(-1)  # max over c' >= c
        ahead = F.pad(g[..., 1:], (0, 1), value=float("-inf"))  # c' > c
    else:  # max over c < c' <= c + reach
        g = F.pad((h - c)[..., 1:], (0, int(reach_px)), value=float("-inf"))
        ahead = g.unfold(-1, int(reach_px), 1).amax(-1)
    occl = (c + ahead - h).clamp_min(0.0)
    return back[quarter](occl).contiguous()


# Secondary electrons leave a surface with a cosine distribution and a few eV: those emitted into
# a crease between grains or at a wall's foot hit the neighbouring surface and are recaptured,
# whatever the detector. Walls farther away than this hardly shade the sky (the horizon angle of a
# 180 nm grain 60 nm away is already below 70 degrees and falling).
OCCLUSION_REACH_NM = 60.0
OCCLUSION_DIRECTIONS = 8


def ambient_occlusion(
    height: torch.Tensor, normal: torch.Tensor, pixel_size_nm: float, reach_nm: float = OCCLUSION_REACH_NM
) -> torch.Tensor:
    """Fraction of the sky hidden from each pixel by surfaces within ``reach_nm``, beyond what its
    own tilt hides: the mean over :data:`OCCLUSION_DIRECTIONS` azimuths of sin(horizon elevation) -
    sin(tangent-plane elevation), >= 0 (horizon-based ambient occlusion of the height field).
    0 on open flat film and all over a convex grain; largest in creases between touching grains
    and at the foot of a grain. height (B, H, W), normal (B, 3, H, W) -> (B, 1, H, W) in [0, 1).

    Unlike the detector shadow, it has no preferred direction: an in-lens detector collects the
    SEs that escape, and what is recaptured nearby is lost whatever the detector's azimuth. The
    image border continues the edge heights (the specimen goes on), so it occludes nothing new."""
    h = height[:, None]
    steps = max(1, math.ceil(reach_nm / pixel_size_nm))
    big = F.pad(h, (steps, steps, steps, steps), mode="replicate")
    hh, ww = h.shape[-2:]
    nz = normal[:, 2:3].clamp_min(0.05)
    total = torch.zeros_like(h)
    rise = torch.empty_like(h)
    for k in range(OCCLUSION_DIRECTIONS):
        angle = 2 * math.pi * k / OCCLUSION_DIRECTIONS
        dx, dy = math.cos(angle), math.sin(angle)
        horizon = torch.full_like(h, -math.inf)  # largest height gain per nm to any pixel ahead
        for t in range(1, steps + 1):
            ox, oy = round(t * dx), round(t * dy)
            ahead = big[..., steps + oy : steps + oy + hh, steps + ox : steps + ox + ww]
            torch.sub(ahead, h, out=rise).mul_(1.0 / (math.hypot(ox, oy) * pixel_size_nm))
            torch.maximum(horizon, rise, out=horizon)
        tangent = (normal[:, 0:1] * dx + normal[:, 1:2] * dy).div_(nz).neg_()  # height gain per nm
        total += (_sine(horizon) - _sine(tangent)).clamp_min_(0.0)
    return total / OCCLUSION_DIRECTIONS


def _sine(slope: torch.Tensor) -> torch.Tensor:
    """sin(atan(slope)): the elevation's sine of a rise per unit run."""
    return slope / torch.sqrt(1.0 + slope * slope)


def grain_values(seeds: list[int], instance: torch.Tensor) -> torch.Tensor:
    """One seeded standard-normal value per particle of each image, painted over its pixels (0 on
    the substrate). Particle k's value depends only on the layout's seed and k, so it is the same
    at every supersampling scale and in every epoch. instance (B, H, W) -> (B, 1, H, W)."""
    inst = instance.cpu().numpy()
    out = np.zeros(inst.shape, dtype=np.float32)
    for b, seed in enumerate(seeds):
        z = np.random.default_rng(int(seed) + 15_485_863).standard_normal(int(inst[b].max()) + 1)
        z[0] = 0.0
        out[b] = z.astype(np.float32)[inst[b]]
    return torch.from_numpy(out)[:, None]


def substrate_texture(seeds: list[int], size: int, scale_px: float = 8.0) -> torch.Tensor:
    """Seeded smooth undulation of the support film (B, 1, H, W), zero mean and unit std per
    image. (Thin bright structures on the film are its residue: :func:`film_field`.)"""
    out = []
    for seed in seeds:
        rng = np.random.default_rng(int(seed) + 7919)
        smooth = ndimage.gaussian_filter(rng.standard_normal((size, size)), scale_px, mode="wrap")
        smooth = (smooth - smooth.mean()) / (smooth.std() + 1e-9)
        out.append(torch.from_numpy(smooth.astype(np.float32)))
    return torch.stack(out)[:, None]


RESIDUE_SCALE_NM = 22.0  # correlation length of the film field: residue islands ~8-25 px at 7.3 nm/px
# The coarse field's length: islands ~20-45 px at 7.3 nm/px, the larger loops of the real TiO2 film
# (README, "Residue at two scales"). The shader blends the two with a learned weight.
RESIDUE_COARSE_SCALE_NM = 66.0
FILM_STREAM, COARSE_FILM_STREAM = 104_729, 611_953  # seed offsets: independent draws


def film_field(
    seeds: list[int],
    size: int,
    pixel_size_nm: float,
    scale_nm: float = RESIDUE_SCALE_NM,
    stream: int = FILM_STREAM,
) -> torch.Tensor:
    """Seeded band-limited random field of the support film (B, 1, H, W), zero mean and unit std
    per image, with correlation length ``scale_nm``. The film's dried residue is a set of thin
    islands where it exceeds a level; the shader draws their bright outlines (``film_residue``)
    with the level learned. ``stream`` offsets the seeds: fields drawn from different streams are
    independent, so any blend cos(a) f + sin(a) g of two keeps unit std."""
    sigma_px = max(scale_nm / pixel_size_nm, 1.0)
    out = []
    for seed in seeds:
        rng = np.random.default_rng(int(seed) + stream)
        field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma_px, mode="wrap")
        field = (field - field.mean()) / (field.std() + 1e-12)
        out.append(torch.from_numpy(field.astype(np.float32)))
    return torch.stack(out)[:, None]


def facing_detector(normal: torch.Tensor, azimuth_deg: float) -> torch.Tensor:
    """normal (B, 3, H, W) -> its component towards the detector azimuth (B, 1, H, W)."""
    dx, dy = math.cos(math.radians(azimuth_deg)), math.sin(math.radians(azimuth_deg))
    return normal[:, 0:1] * dx + normal[:, 1:2] * dy


def build_gbuffer(
    maps: SurfaceMaps, pixel_size_nm: float, azimuth_deg: float, texture_seeds: list[int]
) -> GBuffer:
    """Derive the shading inputs from rasterized surface maps."""
    size = maps.instance.shape[-1]
    to_any, to_film = edge_distances(maps.instance, maps.height, pixel_size_nm)
    return GBuffer(
        instance=maps.instance,
        particle=(maps.instance > 0).float()[:, None],
        height=maps.height[:, None],
        normal=maps.normal,
        facing=facing_detector(maps.normal, azimuth_deg),
        edge_dist=to_any,
        film_edge_dist=to_film,
        shadow=detector_shadow(
            maps.height, pixel_size_nm, azimuth_deg, reach_px=math.ceil(SHADOW_REACH_NM / pixel_size_nm)
        ),
        occlusion=ambient_occlusion(maps.height, maps.normal, pixel_size_nm),
        grain=grain_values(texture_seeds, maps.instance),
        texture=substrate_texture(texture_seeds, size),
        film=film_field(texture_seeds, size, pixel_size_nm),
        film_coarse=film_field(
            texture_seeds, size, pixel_size_nm, RESIDUE_COARSE_SCALE_NM, COARSE_FILM_STREAM
        ),
        thickness=None if maps.thickness is None else maps.thickness[:, None],
        pixel_size_nm=pixel_size_nm,
    )
