"""Scene sampling: size/count laws, agglomerate placement, layouts and their network encoding."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from diffrendergan.config import CountLaw, MaterialConfig, PlacementConfig, SizeLaw
from diffrendergan.scene.laws import sample_count, sample_sizes, size_law_moments
from diffrendergan.scene.layout import build_particles, layouts_to_tensor, sample_field, sample_layout
from diffrendergan.scene.placement import place

SIZE_LAWS = [
    SizeLaw(kind="lognormal", median_nm=60.0, sigma=0.25),
    SizeLaw(kind="gaussian", mean_nm=80.0, std_nm=12.0),
    SizeLaw(kind="bimodal", mean_nm=50.0, std_nm=6.0, mean2_nm=120.0, std2_nm=15.0, weight=0.3),
]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("law", SIZE_LAWS, ids=lambda law: law.kind)
def test_sample_sizes_match_moments(law: SizeLaw) -> None:
    d = sample_sizes(law, 20000, _gen(1)).double()
    moments = size_law_moments(law)
    assert d.mean().item() == pytest.approx(moments["mean_size_nm"], rel=0.03)
    assert d.std().item() == pytest.approx(moments["std_size_nm"], rel=0.03)
    assert (d >= law.min_nm).all() and (d <= law.max_nm).all()


def test_sample_sizes_are_clipped() -> None:
    law = SizeLaw(kind="gaussian", mean_nm=20.0, std_nm=20.0, min_nm=10.0, max_nm=30.0)
    d = sample_sizes(law, 5000, _gen(2))
    assert d.min().item() == 10.0 and d.max().item() == 30.0


def test_sample_count_ranges() -> None:
    g = _gen(3)
    assert {sample_count(CountLaw(kind="fixed", n=7), g) for _ in range(20)} == {7}
    uniform = [sample_count(CountLaw(kind="uniform", low=3, high=6), g) for _ in range(300)]
    assert set(uniform) == {3, 4, 5, 6}  # inclusive on both ends
    law = CountLaw(kind="poisson", mean=12.0, low=8, high=15)
    poisson = torch.tensor([sample_count(law, g) for _ in range(500)], dtype=torch.float32)
    assert poisson.min() >= 8 and poisson.max() <= 15
    assert poisson.min() == 8 and poisson.max() == 15  # clipping is hit from both sides
    assert 10.5 < poisson.mean().item() < 13.0


def _pairwise(centres: torch.Tensor, radii: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dist = torch.cdist(centres.double(), centres.double())
    contact = (radii[:, None] + radii[None, :]).double()
    eye = torch.eye(len(radii), dtype=torch.bool)
    return dist.masked_fill(eye, float("inf")), contact


@pytest.mark.parametrize("max_agglomerates", [1, 3])
def test_poisson_2d_no_overlap_and_touching(max_agglomerates: int) -> None:
    g = _gen(4)
    p, tol = 25, 0.05
    radii = 8.0 + 8.0 * torch.rand(p, generator=g)
    bottoms = radii.clone()  # spheres resting on the substrate
    cfg = PlacementConfig(
        mode="poisson", max_agglomerates=max_agglomerates, overlap_tolerance=tol, margin=0.0
    )
    pl = place(radii, bottoms, (600.0, 600.0), cfg, g)
    assert pl.placed.all()
    assert torch.allclose(pl.centres[:, 2], bottoms)  # 2-D: everything rests on the substrate
    dist, contact = _pairwise(pl.centres, radii)
    assert (dist >= contact * (1 - tol) - 1e-4).all()
    touching = (dist <= contact * (1 + 1e-3)).any(1)
    # Only agglomerate seeds may be isolated (a seed that got no neighbour).
    assert int((~touching).sum()) <= max_agglomerates
    if max_agglomerates == 1:
        assert touching.all()


def test_stacked_placement_rests_above_substrate() -> None:
    g = _gen(5)
    p, tol = 40, 0.05
    radii = 10.0 + 4.0 * torch.rand(p, generator=g)
    cfg = PlacementConfig(mode="poisson", max_agglomerates=1, stacked=True, overlap_tolerance=tol)
    pl = place(radii, radii.clone(), (300.0, 300.0), cfg, g)
    c = pl.centres[pl.placed]
    r = radii[pl.placed]
    assert pl.placed.sum() >= p - 2
    assert (c[:, 2] >= r - 1e-4).all()
    assert (c[:, 2] > r + 1.0).any()  # some particles really rest on others
    dist, contact = _pairwise(c, r)
    assert (dist >= contact * (1 - tol) - 1e-4).all()


def test_stacked_placement_never_sinks_into_the_substrate() -> None:
    """Big particles attached to small ones: spots on top of a small anchor can lie below a big
    particle's resting height; those must not be taken (it rests beside the anchor instead)."""
    g = _gen(7)
    radii = torch.tensor([2.0] * 4 + [12.0] * 12)
    cfg = PlacementConfig(mode="poisson", max_agglomerates=1, stacked=True, overlap_tolerance=0.05)
    for _ in range(10):
        pl = place(radii, radii.clone(), (400.0, 400.0), cfg, g)
        c = pl.centres[pl.placed]
        assert (c[:, 2] >= radii[pl.placed] - 1e-4).all()


def test_random_placement_in_field_with_margin() -> None:
    g = _gen(6)
    radii = torch.full((30,), 3.0)
    cfg = PlacementConfig(mode="random", margin=0.1, overlap_tolerance=0.0)
    pl = place(radii, radii.clone(), (200.0, 100.0), cfg, g)
    assert pl.placed.all()
    x, y = pl.centres[:, 0], pl.centres[:, 1]
    assert (x >= -20).all() and (x <= 220).all() and (y >= -10).all() and (y <= 110).all()
    dist, contact = _pairwise(pl.centres, radii)
    assert (dist >= contact - 1e-4).all()


def test_impossible_request_warns_and_drops(make_material: Callable[..., MaterialConfig]) -> None:
    m = make_material(
        image_size=16,
        size={"median_nm": 40.0, "sigma": 0.0},
        count={"kind": "fixed", "n": 30},
        placement={
            "mode": "random",
            "overlap_tolerance": 0.0,
            "margin": 0.0,
            "max_tries": 2,
            "candidates": 8,
        },
    )
    with pytest.warns(RuntimeWarning, match="could not be placed"):
        layout = sample_layout(m, seed=11)
    assert layout.n_requested == 30
    assert 1 <= layout.n < layout.n_requested
    assert layout.xyzs.shape == (layout.n, 4)
    assert layout.rotation.shape == (layout.n, 3, 3)
    assert layout.shape_index.shape == (layout.n,)


def test_sample_layout_determinism(make_material: Callable[..., MaterialConfig]) -> None:
    m = make_material(count={"kind": "uniform", "low": 4, "high": 9})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a feasible request places everything silently
        a, b, c = sample_layout(m, 5), sample_layout(m, 5), sample_layout(m, 6)
    assert torch.equal(a.xyzs, b.xyzs) and torch.equal(a.rotation, b.rotation)
    assert a.shape_seed == b.shape_seed and a.to_dict() == b.to_dict()
    assert a.xyzs.shape != c.xyzs.shape or not torch.equal(a.xyzs, c.xyzs)
    assert not torch.equal(a.rotation[:1], c.rotation[:1])
    # The layout fully determines the geometry.
    pa, pb = build_particles(a, m), build_particles(b, m)
    assert torch.equal(pa.verts, pb.verts) and torch.equal(pa.faces, pb.faces)


def test_layout_rests_particles_on_substrate(make_material: Callable[..., MaterialConfig]) -> None:
    m = make_material(count={"kind": "fixed", "n": 6}, placement={"stacked": False})
    layout = sample_layout(m, 3)
    parts = build_particles(layout, m)
    lowest = parts.verts[..., 2].min(1).values
    assert torch.allclose(lowest, torch.zeros_like(lowest), atol=1e-3)
    # Sizes are volume-equivalent diameters: the mesh volume matches pi d^3 / 6.
    from diffrendergan.geometry.shapes import mesh_volume

    vol = mesh_volume(parts.verts, parts.faces)
    d = layout.xyzs[:, 3]
    assert torch.allclose(vol, torch.pi * d**3 / 6, rtol=1e-3)


def test_layouts_to_tensor(make_material: Callable[..., MaterialConfig]) -> None:
    m = make_material(count={"kind": "uniform", "low": 2, "high": 9})
    layouts = [sample_layout(m, s) for s in range(4)]
    ns = [lay.n for lay in layouts]
    max_p, fov, ref = 6, 64.0, 10.0
    x, mask = layouts_to_tensor(layouts, max_particles=max_p, fov_nm=fov, size_ref_nm=ref)
    assert x.shape == (4, max_p, 4) and mask.shape == (4, max_p) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [min(n, max_p) for n in ns]
    assert max(ns) > max_p  # truncation is exercised
    for b, lay in enumerate(layouts):
        k = min(lay.n, max_p)
        assert torch.allclose(x[b, :k, :3], lay.xyzs[:k, :3] / fov)
        assert torch.allclose(x[b, :k, 3], lay.xyzs[:k, 3] / ref)
        assert (x[b, k:] == 0).all()
        assert mask[b, :k].all() and not mask[b, k:].any()


def test_guard_band_window_shows_a_crop_of_a_larger_specimen(
    make_material: Callable[..., MaterialConfig],
) -> None:
    """With a guard band the layout is the centre window of a field with the same particle density:
    every kept particle reaches into the image, and particles centred outside it (border slivers)
    occur, as in a crop of a larger micrograph."""
    kw = {"image_size": 64, "size": {"median_nm": 12.0}, "count": {"kind": "fixed", "n": 8}}
    m = make_material(placement={"mode": "random", "guard": 0.25}, **kw)
    window = 64.0
    inside = outside = 0
    for seed in range(40):
        lay = sample_layout(m, seed)
        assert lay.n_requested == round(8 * 1.5**2)  # counts scale with the field's area
        xy = lay.xyzs[:, :2]
        reach = build_particles(lay, m).verts[..., :2]
        assert ((reach.amax(1) > 0) & (reach.amin(1) < window)).all()  # each reaches into the image
        centred_in = ((xy >= 0) & (xy < window)).all(1)
        inside += int(centred_in.sum())
        outside += int((~centred_in).sum())
    assert inside / 40 == pytest.approx(8, rel=0.1)  # the count law is per image area
    assert outside > 0.2 * inside
    assert sample_layout(m, 3).to_dict() == sample_layout(m, 3).to_dict()


def test_guard_band_is_validated(make_material: Callable[..., MaterialConfig]) -> None:
    from diffrendergan.errors import ConfigError

    with pytest.raises(ConfigError, match=r"material\.placement\.guard"):
        make_material(placement={"guard": -0.1})


@pytest.mark.parametrize("name", ["tio2", "sio2"])
def test_shipped_fields_grow_touching_agglomerates_without_overlap(
    name: str, shipped_material: Callable[..., MaterialConfig]
) -> None:
    """The placement laws on the shipped materials' whole fields (guard band included), 30 seeds:
    every particle but the first of its agglomerate touches a member of it (at the contact
    distance), no pair overlaps beyond the tolerance, and a particle rests on the substrate or
    (stacked) sits on a lower particle that supports it."""
    m = shipped_material(name)
    tol = m.placement.overlap_tolerance
    total = detached = elevated = 0
    for seed in range(30):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the shipped counts fit: nothing is left unplaced
            f = sample_field(m, seed)
        pl = f.placement
        assert pl.placed.all()
        c = pl.centres.double()
        dist, contact = _pairwise(c, f.radii)
        assert (dist >= contact * (1 - tol) - 1e-3).all()
        on_substrate = torch.isclose(c[:, 2], f.bottoms.double(), atol=1e-3)
        first = torch.zeros(len(c), dtype=torch.bool)  # each agglomerate's first placed particle
        for g in pl.agglomerate.unique():
            first[(pl.agglomerate == g).nonzero()[0]] = True
        attached = pl.anchor >= 0
        a = pl.anchor[attached]
        i = attached.nonzero().flatten()
        assert not (attached & first).any()
        assert torch.equal(pl.agglomerate[a], pl.agglomerate[i])
        touch = (f.radii[i] + f.radii[a]).double() * (1 - tol / 2)
        assert torch.allclose(dist[i, a], touch, rtol=1e-5, atol=1e-3)
        # Resting: on the substrate, or (stacked only) above the anchor that carries it.
        lifted = ~on_substrate
        assert (c[:, 2] >= f.bottoms - 1e-3).all()
        if not m.placement.stacked:
            assert not lifted.any()
        assert (attached | ~lifted).all()
        assert (c[pl.anchor[lifted], 2] < c[lifted, 2]).all()
        total += len(c)
        detached += int((~attached & ~first).sum())  # found no contact spot, dropped at random
        elevated += int(lifted.sum())
    assert detached <= 0.01 * total
    if m.placement.stacked:
        assert elevated > 0.2 * total  # stacking really happens


_LAYOUT_DIGEST = """
import hashlib, pathlib, torch, yaml
from diffrendergan.config import material_from_dict
from diffrendergan.scene.layout import sample_layout
torch.set_num_threads({threads})
h = hashlib.sha256()
for name in ("tio2", "sio2", "agnw"):
    raw = yaml.safe_load((pathlib.Path({materials!r}) / (name + ".yaml")).read_text())
    for seed in (0, 1, 7):
        lay = sample_layout(material_from_dict(raw), seed)
        for t in (lay.xyzs, lay.rotation, lay.shape_index, lay.size_eps):
            h.update(t.contiguous().numpy().tobytes())
print(h.hexdigest())
"""


def _layout_digest(threads: int) -> str:
    materials = Path(__file__).resolve().parents[2] / "configs" / "material"
    code = _LAYOUT_DIGEST.format(materials=str(materials), threads=threads)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return res.stdout.strip().splitlines()[-1]


def test_layouts_are_bitwise_deterministic_across_calls_threads_and_processes(
    shipped_material: Callable[..., MaterialConfig],
) -> None:
    """Same seed, same layout: twice in one process, and in fresh processes with one thread and
    with several (layouts run single-threaded whatever the caller's setting, and restore it)."""
    m = shipped_material("tio2")
    threads = torch.get_num_threads()
    a, b = sample_layout(m, 3), sample_layout(m, 3)
    assert torch.get_num_threads() == threads
    for x, y in [(a.xyzs, b.xyzs), (a.rotation, b.rotation), (a.size_eps, b.size_eps)]:
        assert torch.equal(x, y)
    assert a.to_dict() == b.to_dict()
    assert not torch.equal(a.xyzs[:1], sample_layout(m, 4).xyzs[:1])
    assert _layout_digest(1) == _layout_digest(4)
