"""Hard rasterization: windowed path vs full reference, areas, clipping, empty scenes, thickness."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from diffrendergan.config import MaterialConfig
from diffrendergan.rendering.rasterize import rasterize_full, rasterize_windowed
from diffrendergan.scene.layout import Layout, Particles, build_particles, sample_layout

# Dense scenes whatever the shipped count law: the paths must agree where particles crowd and stack.
DENSE = {"kind": "fixed", "n": 12}


@pytest.mark.parametrize("seed", [3, 5])
def test_windowed_matches_full_reference(seed: int, shipped_material: Callable[..., MaterialConfig]) -> None:
    m = shipped_material("tio2", image_size=128, count=DENSE)
    layout = sample_layout(m, seed)
    assert layout.n >= 5
    parts = [build_particles(layout, m)]
    win = rasterize_windowed(parts, 128, m.pixel_size_nm)
    ref = rasterize_full(parts, 128, m.pixel_size_nm)
    assert win.instance.shape == ref.instance.shape == (1, 128, 128)
    assert (ref.instance > 0).float().mean() > 0.1  # a real scene, not an empty one
    differ = win.instance != ref.instance
    assert differ.float().mean() <= 1e-3  # only exact depth ties may be resolved differently
    same = ~differ
    # Window and full-image NDC differ in float32 rounding, so at creases of rough particles the
    # two paths may pick neighbouring faces of the same particle: tiny height/normal differences.
    assert (win.height - ref.height).abs()[same].max() <= 2e-3 * ref.height.max()
    assert (win.normal - ref.normal).abs().permute(0, 2, 3, 1)[same].max() <= 2e-2
    assert win.thickness is None


@pytest.mark.parametrize("name", ["tio2", "sio2", "agnw"])
@pytest.mark.parametrize("reverse_winding", [False, True])
def test_every_shipped_shape_matches_the_reference_with_either_winding(
    name: str, reverse_winding: bool, shipped_material: Callable[..., MaterialConfig]
) -> None:
    """The fast path keeps only faces turned towards the camera, judged by the mesh's volume
    sign: with the faces wound either way it gives PyTorch3D's pixels, heights, normals and
    path lengths (seen from above and from below)."""
    m = shipped_material(name, image_size=96, count=DENSE)
    parts = build_particles(sample_layout(m, 4), m)
    if reverse_winding:
        parts = Particles(parts.verts, parts.faces.flip(-1), parts.normals)
    win = rasterize_windowed([parts], 96, m.pixel_size_nm, thickness=True)
    ref = rasterize_full([parts], 96, m.pixel_size_nm, thickness=True)
    assert (ref.instance > 0).sum() > 100
    assert torch.equal(win.instance, ref.instance)
    assert (win.height - ref.height).abs().max() <= 1e-4 * ref.height.max()
    assert (win.normal - ref.normal).abs().max() <= 1e-3
    # A path length is a back depth minus a front depth, each rounded like a height: twice the
    # height's tolerance (tio2's 220 nm grains: 0.03 nm at one edge pixel, 1.4e-4 of the longest path).
    assert (
        ref.thickness.max() > 0 and (win.thickness - ref.thickness).abs().max() <= 2e-4 * ref.thickness.max()
    )


def test_windowed_batch_equals_single_images(
    shipped_material: Callable[..., MaterialConfig],
) -> None:
    m = shipped_material("sio2", image_size=64)
    layouts = [sample_layout(m, s) for s in (1, 2)]
    parts = [build_particles(lay, m) for lay in layouts]
    both = rasterize_windowed(parts, 64, m.pixel_size_nm)
    for b in range(2):
        one = rasterize_windowed(parts[b : b + 1], 64, m.pixel_size_nm)
        assert torch.equal(both.instance[b], one.instance[0])
        assert torch.allclose(both.normal[b], one.normal[0], atol=1e-5)
        # Heights are relative to a shared depth origin; allow float32 rounding of that origin.
        assert torch.allclose(both.height[b], one.height[0], atol=1e-3)


def _sphere(
    make_material: Callable[..., MaterialConfig], make_layout: Callable[..., Layout], rows
) -> tuple[MaterialConfig, Layout]:
    m = make_material(shape={"family": "sphere", "ico_level": 3}, pixel_size_nm=1.0, image_size=64)
    return m, make_layout(rows)


@pytest.mark.parametrize("r", [5.0, 12.0])
def test_sphere_silhouette_area(r: float, make_material, make_layout) -> None:
    m, layout = _sphere(make_material, make_layout, [[31.3, 32.6, r, 2 * r]])
    maps = rasterize_windowed([build_particles(layout, m)], 64, 1.0)
    covered = int((maps.instance == 1).sum())
    # Pixel-centre sampling of a disc: error up to ~ half a pixel along the perimeter, plus the
    # area of the polygonal silhouette vs the disc (level-3 icosphere: under 2 % of pi r^2).
    tol = 2 * math.pi * r * 0.5 + 0.02 * math.pi * r**2
    assert covered == pytest.approx(math.pi * r**2, abs=tol)
    assert set(maps.instance.unique().tolist()) == {0, 1}
    # Height: the sphere top (2r) at the centre, and only where the particle is.
    assert maps.height.max().item() == pytest.approx(2 * r, rel=0.02)
    assert (maps.height[maps.instance == 0] == 0).all()
    # Normals are unit vectors, pointing up at the top and sideways at the rim.
    assert torch.allclose(maps.normal.norm(dim=1), torch.ones(1, 64, 64), atol=1e-4)
    nz = maps.normal[0, 2]
    assert nz[32, 31] > 0.95
    assert nz[maps.instance[0] == 1].min() < 0.6


def test_particles_partly_outside_are_clipped(make_material, make_layout) -> None:
    m, layout = _sphere(
        make_material,
        make_layout,
        [[-3.0, 20.0, 8.0, 16.0], [66.5, 40.0, 8.0, 16.0], [30.0, -200.0, 8.0, 16.0]],
    )
    maps = rasterize_windowed([build_particles(layout, m)], 64, 1.0)
    ref = rasterize_full([build_particles(layout, m)], 64, 1.0)
    assert torch.equal(maps.instance, ref.instance)
    counts = [int((maps.instance == k).sum()) for k in (1, 2, 3)]
    full_disc = math.pi * 64
    assert 0.15 * full_disc < counts[0] < 0.5 * full_disc  # centre 3 px outside the left edge
    assert 0.05 * full_disc < counts[1] < 0.4 * full_disc  # centre 2.5 px beyond the right edge
    assert counts[2] == 0  # entirely outside the field
    assert (maps.instance[0, :, :2] == 1).any() and (maps.instance[0, :, -2:] == 2).any()


def test_empty_layout_is_all_substrate(make_material, make_layout) -> None:
    m = make_material()
    empty = make_layout([])
    assert empty.n == 0
    parts = [build_particles(empty, m), build_particles(empty, m)]
    for maps in (
        rasterize_windowed(parts, 32, 1.0, thickness=True),
        rasterize_full(parts, 32, 1.0),
    ):
        assert maps.instance.shape == (2, 32, 32) and (maps.instance == 0).all()
        assert (maps.height == 0).all()
        assert torch.equal(maps.normal, torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(2, 3, 32, 32))
        if maps.thickness is not None:
            assert (maps.thickness == 0).all()


def test_sphere_thickness_at_centre(make_material, make_layout) -> None:
    r = 10.0
    # Centre 0.2 px off the pixel centre (32.5, 32.5): the central chord is 2 sqrt(r^2 - 0.08).
    m, layout = _sphere(make_material, make_layout, [[32.3, 32.6, r, 2 * r]])
    maps = rasterize_windowed([build_particles(layout, m)], 64, 1.0, thickness=True)
    assert maps.thickness is not None and maps.thickness.shape == (1, 64, 64)
    assert maps.thickness[0, 32, 32].item() == pytest.approx(2 * r, rel=0.03)
    assert maps.thickness.max().item() == pytest.approx(2 * r, rel=0.03)
    assert (maps.thickness[maps.instance == 0] == 0).all()
    # Thickness falls towards the rim like a chord: 2 sqrt(r^2 - rho^2) at 6 px from the centre.
    assert maps.thickness[0, 32, 26].item() == pytest.approx(2 * math.sqrt(r**2 - 6.3**2), rel=0.05)


def test_overlapping_spheres_higher_one_wins(make_material, make_layout) -> None:
    # A big sphere (top at 24 nm) and a small one (top at 12 nm) overlapping in projection.
    m, layout = _sphere(make_material, make_layout, [[26.3, 32.2, 12.0, 24.0], [40.1, 32.7, 6.0, 12.0]])
    maps = rasterize_windowed([build_particles(layout, m)], 64, 1.0)
    ref = rasterize_full([build_particles(layout, m)], 64, 1.0)
    assert torch.equal(maps.instance, ref.instance)
    # Pixel (32, 35) lies inside both discs; the big sphere is higher there.
    assert maps.instance[0, 32, 35] == 1
    assert (maps.instance == 2).sum() > 0
