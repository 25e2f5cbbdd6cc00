"""Particle placement in the field of view: Poisson-disk agglomerates or uniform random.

``poisson`` follows the paper: a few agglomerate seeds are dropped at random; every further particle
is attached to a random member of its agglomerate, touching it, at a free spot among ``candidates``
directions on the contact circle (2-D, resting on the substrate) or contact sphere (``stacked``,
3-D: resting beside the anchor or supported on top of it, never in mid-air). Of ``max_tries``
anchor draws the first with a free spot wins, and one of its free spots is taken at random. No pair
interpenetrates by more than ``overlap_tolerance`` of the sum of their contact radii. Particles that
find no contact spot are dropped at random; those that find no spot at all are reported.

A particle's candidates are made and tested as arrays: the C spots of T tries form one (T, C, 3)
array, tested against every placed particle at once. The first try is tested alone (it usually
has a free spot), the other tries together. The growth loop is sequential, one particle after the
other, so its cost is the per-op overhead of some 60 ops on arrays of at most a few thousand
elements: it runs on float32 NumPy arrays (about a third of torch's per-op overhead on the 2-core
CPU), with every random number drawn from the layout's torch generator, one draw per block. Torch
ops run on one thread (:func:`serial_torch`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from diffrendergan.config import PlacementConfig


@contextmanager
def serial_torch() -> Iterator[None]:
    """Run the enclosed torch ops on the calling thread only.

    Sampling a layout is hundreds of ops on tensors of a few thousand elements. With the intra-op
    pool on, many still open an OpenMP parallel region (element-wise sin, cos, exp, sqrt from 65
    elements on, as measured with torch 2.11), and on a CPU that training keeps busy each region
    waits for a worker to be scheduled: ~8 ms apiece on the 2-core machine, where a TiO2 layout took
    0.26-0.37 s for 9 ms of work. One thread also makes layouts independent of the caller's thread
    count.
    ``torch.set_num_threads`` costs ~1 us and, under OpenMP, holds for the calling thread only; the
    previous count is restored on exit."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


@dataclass
class Placement:
    """centres: (P, 3) nm (x, y in the image plane, z height of the centre); placed: (P,) bool.

    agglomerate: (P,) long, the agglomerate each particle was drawn into (``random``: its own
    index). anchor: (P,) long, the particle it was attached to and touches, or -1 (seeds, random
    placement, particles that found no contact spot and were dropped at random, unplaced ones).
    """

    centres: torch.Tensor
    placed: torch.Tensor
    agglomerate: torch.Tensor
    anchor: torch.Tensor

    @property
    def n_unplaced(self) -> int:
        return int((~self.placed).sum())


class _Placed:
    """The particles placed so far, in placement order: coordinates (3, K) float32 (rows x, y, z,
    for per-coordinate broadcasting), radii (K,) and their indices among the P requested ones.
    Preallocated for all P, so adding one is two column writes."""

    def __init__(self, p: int) -> None:
        self.xyz = np.zeros((3, p), np.float32)
        self.radii = np.zeros(p, np.float32)
        self.index: list[int] = []

    def add(self, i: int, centre: np.ndarray, radius: float) -> int:
        """Record particle i at ``centre`` (3,); returns its row."""
        row = len(self.index)
        self.xyz[:, row] = centre
        self.radii[row] = radius
        self.index.append(i)
        return row

    def free(self, cand: np.ndarray, r: float, tol: float) -> np.ndarray:
        """Which candidate centres (..., 3) keep every placed particle at a legal distance, at
        least (r + r_k)(1 - tol) -> (...) bool. Squared distances are summed per coordinate:
        (..., K) temporaries, no reduction over a size-3 axis."""
        k = len(self.index)
        if k == 0 or tol >= 1.0:  # tolerance >= 1 means "overlap allowed" (crossing nanowires)
            return np.ones(cand.shape[:-1], dtype=bool)
        xyz = self.xyz[:, :k]
        d2 = np.square(cand[..., 0, None] - xyz[0])
        d2 += np.square(cand[..., 1, None] - xyz[1])
        d2 += np.square(cand[..., 2, None] - xyz[2])
        need = np.square(np.maximum((self.radii[:k] + r) * (1.0 - tol) - 1e-6, 0.0))
        return (d2 >= need).all(-1)


def _uniform(n: int, gen: torch.Generator) -> np.ndarray:
    """n uniform numbers in [0, 1) (n,) float32 from the torch generator (the layout's stream)."""
    return torch.rand(n, generator=gen).numpy()


def _tries(max_tries: int) -> list[int]:
    """Tries per test block: the first alone (it usually succeeds), then the rest at once."""
    return [n for n in (min(max_tries, 1), max_tries - 1) if n > 0]


def _uniform_xy(u: np.ndarray, field: tuple[float, float], margin: float) -> np.ndarray:
    """Uniform numbers (c, 2) -> positions (c, 2) over the field widened by ``margin`` on every side."""
    w, h = field
    lo = np.array([-margin * w, -margin * h], np.float32)
    span = np.array([w * (1 + 2 * margin), h * (1 + 2 * margin)], np.float32)
    return lo + u * span


@serial_torch()
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
    poisson = cfg.mode != "random"
    n_seeds = min(p, int(torch.randint(1, cfg.max_agglomerates + 1, (1,), generator=gen))) if poisson else p
    agg = torch.randint(max(n_seeds, 1), (p,), generator=gen)
    agg[:n_seeds] = torch.arange(n_seeds)
    anchor = [-1] * p
    if not poisson and cfg.overlap_tolerance >= 1.0:  # every random spot is free: all at once
        xy = torch.from_numpy(_uniform_xy(_uniform(2 * p, gen).reshape(p, 2), field_nm, cfg.margin))
        centres = torch.cat([xy, bottoms[:, None].float()], 1)
        return Placement(
            centres, torch.ones(p, dtype=torch.bool), agg, torch.tensor(anchor, dtype=torch.long)
        )
    done = _Placed(p)
    members: dict[int, list[int]] = {}  # agglomerate -> rows of its placed particles
    r_all, b_all, agg_all = radii.tolist(), bottoms.tolist(), agg.tolist()
    for i in range(p):
        rows = members.get(agg_all[i], []) if poisson and i >= n_seeds else []
        spot = _attach(done, rows, r_all[i], b_all[i], cfg, gen) if rows else None
        if spot is not None:
            centre, anchor[i] = spot[0], done.index[spot[1]]
        else:
            centre = _drop(done, r_all[i], b_all[i], field_nm, cfg, gen)
            if centre is None:
                continue
        members.setdefault(agg_all[i], []).append(done.add(i, centre, r_all[i]))
    centres = torch.zeros(p, 3)
    centres[done.index] = torch.from_numpy(done.xyz[:, : len(done.index)].T.copy())
    placed = torch.zeros(p, dtype=torch.bool)
    placed[done.index] = True
    return Placement(centres, placed, agg, torch.tensor(anchor, dtype=torch.long))


def _first_free(cand: np.ndarray, ok: np.ndarray, pick: float) -> tuple[int, np.ndarray] | None:
    """Among candidates (T, C, 3) with free flags (T, C): the first try with a free spot and, at
    ``pick`` in [0, 1), one of its free spots (3,) -- as if the tries had been tested in turn."""
    hit = ok.any(1)
    if not hit.any():
        return None
    first = int(hit.argmax())
    good = ok[first].nonzero()[0]
    return first, cand[first, good[int(pick * len(good))]]


def _attach(
    done: _Placed, rows: list[int], r: float, bottom: float, cfg: PlacementConfig, gen: torch.Generator
) -> tuple[np.ndarray, int] | None:
    """A free centre (3,) touching a random member (one of ``rows``) and that member's row, or None
    after ``max_tries`` anchor draws."""
    c_top = cfg.candidates - cfg.candidates // 2 if cfg.stacked else 0
    for t in _tries(cfg.max_tries):
        u = _uniform(t * (2 + c_top) + 1, gen)  # anchors (T), ring offsets (T), elevations, pick
        j = np.asarray(rows)[(u[:t].astype(np.float64) * len(rows)).astype(np.int64)]  # (T,) anchor rows
        elev = u[2 * t : t * (2 + c_top)].reshape(t, c_top)
        cand, valid = _contact_candidates(done.xyz[:, j].T, done.radii[j], r, bottom, cfg, u[t : 2 * t], elev)
        hit = _first_free(cand, valid & done.free(cand, r, cfg.overlap_tolerance), float(u[-1]))
        if hit is not None:
            return hit[1], int(j[hit[0]])
    return None


def _drop(
    done: _Placed,
    r: float,
    bottom: float,
    field_nm: tuple[float, float],
    cfg: PlacementConfig,
    gen: torch.Generator,
) -> np.ndarray | None:
    """The first free one (3,) of up to ``max_tries`` x ``candidates`` uniform spots resting on the
    substrate, or None."""
    for t in _tries(cfg.max_tries):
        c = t * cfg.candidates
        xy = _uniform_xy(_uniform(2 * c, gen).reshape(c, 2), field_nm, cfg.margin)
        cand = np.concatenate([xy, np.full((c, 1), bottom, np.float32)], 1)
        ok = done.free(cand, r, cfg.overlap_tolerance)
        if ok.any():
            return cand[int(ok.argmax())]
    return None


def _contact_candidates(
    anchors: np.ndarray,
    r_anchor: np.ndarray,
    r: float,
    bottom: float,
    cfg: PlacementConfig,
    u_phi: np.ndarray,
    u_elev: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Centres touching each of T anchors (T, 3) of radii (T,) -> candidates (T, C, 3) and which
    exist (T, C) bool, from uniform numbers for the rings' angular offsets (T,) and (``stacked``)
    the elevations (T, C - C // 2).

    Every candidate is the anchor plus (rho cos phi, rho sin phi, h) at distance ``dist``, at C
    evenly spaced azimuths phi: on the contact circle at resting height (h = bottom - anchor z;
    missing where the contact sphere does not reach that plane) or, for ``stacked``, half of them
    on top of the anchor (elevation 30-80 deg, supported by it; missing where they would sink into
    the substrate). No side contacts in mid-air."""
    c, t = cfg.candidates, anchors.shape[0]
    n_ring = c - u_elev.shape[1]
    dist = ((r_anchor + r) * (1.0 - 0.5 * cfg.overlap_tolerance))[:, None]  # (T, 1)
    phi = (2 * math.pi / c) * (np.arange(c, dtype=np.float32) + u_phi[:, None])  # (T, C)
    dz = bottom - anchors[:, 2:]  # (T, 1)
    rho = np.broadcast_to(np.sqrt(np.maximum(np.square(dist) - np.square(dz), 0.0)), (t, n_ring))
    z = np.full((t, n_ring), bottom, np.float32)
    ok = np.broadcast_to(np.abs(dz) <= dist, (t, n_ring))
    if n_ring < c:
        elev = np.deg2rad(30.0 + 50.0 * u_elev)
        top_z = anchors[:, 2:] + dist * np.sin(elev)
        rho = np.concatenate([rho, dist * np.cos(elev)], 1)
        z = np.concatenate([z, top_z], 1)
        ok = np.concatenate([ok, top_z >= bottom], 1)
    x = anchors[:, 0:1] + rho * np.cos(phi)
    y = anchors[:, 1:2] + rho * np.sin(phi)
    return np.stack([x, y, z], -1), ok
