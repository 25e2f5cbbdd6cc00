"""Particle placement in the field of view: Poisson-disk agglomerates or uniform random.

``poisson`` follows the paper: a few agglomerate seeds are dropped at random; every further particle
is attached to a random member of its agglomerate, touching it, at the first free spot among
``candidates`` directions on the contact circle (2-D, resting on the substrate) or contact sphere
(``stacked``, 3-D: resting beside the anchor or supported on top of it, never in mid-air). No pair
interpenetrates by more than ``overlap_tolerance`` of the sum of their contact radii. Particles that
find no spot are reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from diffrendergan.config import PlacementConfig


@dataclass
class Placement:
    """centres: (P, 3) nm (x, y in the image plane, z height of the centre); placed: (P,) bool."""

    centres: torch.Tensor
    placed: torch.Tensor

    @property
    def n_unplaced(self) -> int:
        return int((~self.placed).sum())


def _free(
    cand: torch.Tensor, r: float, centres: torch.Tensor, radii: torch.Tensor, tol: float
) -> torch.Tensor:
    """Which candidate centres (C, 3) keep every placed particle (K, 3) at a legal distance -> (C,)."""
    if centres.shape[0] == 0:
        return torch.ones(cand.shape[0], dtype=torch.bool)
    dist = torch.cdist(cand, centres)
    return (dist >= (radii[None, :] + r) * (1.0 - tol) - 1e-6).all(1)


def _uniform_xy(c: int, field: tuple[float, float], margin: float, gen: torch.Generator) -> torch.Tensor:
    w, h = field
    u = torch.rand(c, 2, generator=gen)
    lo = torch.tensor([-margin * w, -margin * h])
    span = torch.tensor([w * (1 + 2 * margin), h * (1 + 2 * margin)])
    return lo + u * span


def place(
    radii: torch.Tensor,
    bottoms: torch.Tensor,
    field_nm: tuple[float, float],
    cfg: PlacementConfig,
    gen: torch.Generator,
) -> Placement:
    """Place P particles.

    Args:
        radii: (P,) contact radii (nm).
        bottoms: (P,) distance from each centre down to its lowest vertex (nm): resting height.
        field_nm: (width, height) of the field of view in nm.
    """
    p = radii.shape[0]
    centres = torch.zeros(p, 3)
    placed = torch.zeros(p, dtype=torch.bool)
    tol = cfg.overlap_tolerance
    check = tol < 1.0  # tolerance >= 1 means "overlap allowed" (e.g. crossing nanowires)
    n_seeds = (
        p
        if cfg.mode == "random"
        else min(p, int(torch.randint(1, cfg.max_agglomerates + 1, (1,), generator=gen)))
    )
    agg = torch.randint(max(n_seeds, 1), (p,), generator=gen)
    agg[:n_seeds] = torch.arange(n_seeds)

    def try_random(i: int) -> bool:
        for _ in range(cfg.max_tries):
            xy = _uniform_xy(cfg.candidates, field_nm, cfg.margin, gen)
            cand = torch.cat([xy, bottoms[i].expand(cfg.candidates, 1)], 1)
            ok = (
                _free(cand, float(radii[i]), centres[placed], radii[placed], tol)
                if check
                else torch.ones(len(cand), dtype=torch.bool)
            )
            if ok.any():
                centres[i] = cand[int(ok.nonzero()[0])]
                return True
        return False

    for i in range(p):
        if i < n_seeds or cfg.mode == "random":
            placed[i] = try_random(i)
            continue
        members = ((agg == agg[i]) & placed).nonzero().flatten()
        ok_any = False
        for _ in range(cfg.max_tries if members.numel() else 0):
            j = int(members[torch.randint(members.numel(), (1,), generator=gen)])
            cand = _contact_candidates(
                centres[j], float(radii[j]), float(radii[i]), float(bottoms[i]), cfg, gen
            )
            if cand.shape[0] == 0:
                continue
            ok = _free(cand, float(radii[i]), centres[placed], radii[placed], tol)
            if ok.any():
                good = cand[ok]
                k = int(torch.randint(good.shape[0], (1,), generator=gen))
                centres[i] = good[k]
                ok_any = True
                break
        placed[i] = ok_any or try_random(i)
    return Placement(centres, placed)


def _contact_candidates(
    anchor: torch.Tensor,
    r_anchor: float,
    r: float,
    bottom: float,
    cfg: PlacementConfig,
    gen: torch.Generator,
) -> torch.Tensor:
    """Centres touching ``anchor`` (C, 3): on the contact circle at resting height, or (stacked) on
    the contact sphere above the substrate."""
    c = cfg.candidates
    dist = (r_anchor + r) * (1.0 - 0.5 * cfg.overlap_tolerance)
    phi = 2 * math.pi * (torch.arange(c) + torch.rand(1, generator=gen)) / c
    if cfg.stacked:
        # Half the candidates rest on the substrate beside the anchor, half sit on top of it
        # (elevation 30-80 deg, supported by the anchor); no side contacts in mid-air.
        ring = _ring(anchor, dist, bottom, phi[: c // 2])
        elev = torch.deg2rad(30.0 + 50.0 * torch.rand(c - c // 2, generator=gen))
        p2 = phi[c // 2 :]
        d = torch.stack(
            [torch.cos(p2) * torch.cos(elev), torch.sin(p2) * torch.cos(elev), torch.sin(elev)], 1
        )
        top = anchor[None] + dist * d
        top = top[top[:, 2] >= bottom]
        return torch.cat([ring, top])
    return _ring(anchor, dist, bottom, phi)


def _ring(anchor: torch.Tensor, dist: float, bottom: float, phi: torch.Tensor) -> torch.Tensor:
    """Centres resting on the substrate (z = bottom) at 3-D distance ``dist`` from ``anchor``."""
    dz = bottom - float(anchor[2])
    if abs(dz) > dist:
        return torch.zeros(0, 3)
    dxy = math.sqrt(dist**2 - dz**2)
    return torch.stack(
        [
            anchor[0] + dxy * torch.cos(phi),
            anchor[1] + dxy * torch.sin(phi),
            torch.full_like(phi, bottom),
        ],
        1,
    )
