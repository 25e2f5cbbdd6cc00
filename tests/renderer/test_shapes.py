"""Particle shape families: winding, normalisation, normals, user meshes and their errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from pytorch3d.io import save_obj
from pytorch3d.utils import ico_sphere

from diffrendergan.config import ShapeConfig
from diffrendergan.errors import ConfigError, DataError
from diffrendergan.geometry.shapes import (
    make_unit_shapes,
    mesh_volume,
    random_rotations,
    user_meshes,
    vertex_normals,
)

UNIT_VOLUME = math.pi / 6  # volume of a sphere of diameter 1

FAMILIES = {
    "sphere": ShapeConfig(family="sphere", ico_level=2, roughness=0.05),
    "faceted": ShapeConfig(family="faceted", ico_level=2, n_facets=9, rounding=0.4, roughness=0.03),
    "wire": ShapeConfig(family="wire", aspect_min=5.0, aspect_max=12.0, bend=0.15),
}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_outward_winding(family: str) -> None:
    shapes = make_unit_shapes(6, FAMILIES[family], _gen())
    vol = mesh_volume(shapes.verts, shapes.faces)
    assert vol.shape == (6,)
    assert (vol > 0).all(), f"{family}: inward-facing winding gives negative volume {vol}"


@pytest.mark.parametrize("family", ["sphere", "faceted"])
def test_unit_volume_equivalent_diameter(family: str) -> None:
    shapes = make_unit_shapes(6, FAMILIES[family], _gen(1))
    vol = mesh_volume(shapes.verts, shapes.faces)
    assert torch.allclose(vol, torch.full_like(vol, UNIT_VOLUME), atol=1e-4)


def test_wire_has_unit_diameter_and_sampled_length() -> None:
    cfg = FAMILIES["wire"]
    shapes = make_unit_shapes(8, cfg, _gen(2))
    v = shapes.verts
    # Cross-section: rings of 5 vertices, a pentagon of circumradius 0.5 (diameter 1) in the y-z
    # plane around the (bent) axis; the last two vertices are the tips.
    rings = v[:, :-2].reshape(8, cfg.wire_segments + 1, 5, 3)
    radius = (rings - rings.mean(2, keepdim=True)).norm(dim=-1)
    assert torch.allclose(radius, torch.full_like(radius, 0.5), atol=1e-5)
    length = v[..., 0].max(1).values - v[..., 0].min(1).values  # aspect + two tips of 0.35
    assert (length >= cfg.aspect_min + 0.7 - 1e-4).all()
    assert (length <= cfg.aspect_max + 0.7 + 1e-4).all()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_vertex_normals_unit_and_outward(family: str) -> None:
    shapes = make_unit_shapes(4, FAMILIES[family], _gen(3))
    normals = vertex_normals(shapes.verts, shapes.faces)
    assert normals.shape == shapes.verts.shape
    assert torch.allclose(normals.norm(dim=-1), torch.ones(normals.shape[:2]), atol=1e-5)
    radial = shapes.verts - shapes.verts.mean(1, keepdim=True)
    cos = (normals * radial / radial.norm(dim=-1, keepdim=True)).sum(-1)  # (P, V)
    assert (cos.mean(1) > 0.2).all()
    assert ((cos > 0).float().mean(1) > 0.9).all()


def test_sphere_normals_are_radial() -> None:
    shapes = make_unit_shapes(2, ShapeConfig(family="sphere", ico_level=3), _gen())
    normals = vertex_normals(shapes.verts, shapes.faces)
    radial = shapes.verts / shapes.verts.norm(dim=-1, keepdim=True)
    assert (normals * radial).sum(-1).min() > 0.995


def test_same_seed_same_shapes() -> None:
    for cfg in FAMILIES.values():
        a = make_unit_shapes(5, cfg, _gen(42))
        b = make_unit_shapes(5, cfg, _gen(42))
        c = make_unit_shapes(5, cfg, _gen(43))
        assert torch.equal(a.verts, b.verts)
        assert torch.equal(a.faces, b.faces)
        assert not torch.equal(a.verts, c.verts)


def test_unknown_family_names_config_key() -> None:
    with pytest.raises(ConfigError, match=r"material\.shape\.family") as info:
        make_unit_shapes(2, ShapeConfig(family="blob"), _gen())
    assert "blob" in str(info.value)
    assert info.value.key == "material.shape.family"


def test_random_rotations_are_proper() -> None:
    for flat in (False, True):
        rot = random_rotations(16, _gen(5), flat=flat)
        eye = torch.eye(3).expand(16, 3, 3)
        assert torch.allclose(rot @ rot.transpose(1, 2), eye, atol=1e-5)
        assert torch.allclose(torch.linalg.det(rot), torch.ones(16), atol=1e-5)
        if flat:  # rotation about z only keeps z fixed
            assert torch.allclose(rot[:, 2], torch.tensor([0.0, 0.0, 1.0]).expand(16, 3))


# --- user meshes -------------------------------------------------------------------------------


def _write_icosphere(path: Path, level: int, scale: float, shift: float) -> None:
    mesh = ico_sphere(level)
    save_obj(str(path), mesh.verts_packed() * scale + shift, mesh.faces_packed())


def _cube(side: float) -> tuple[torch.Tensor, torch.Tensor]:
    verts = torch.tensor(
        [[x, y, z] for x in (0.0, side) for y in (0.0, side) for z in (0.0, side)]
    )  # index = 4x + 2y + z
    faces = torch.tensor(
        [
            [0, 1, 3], [0, 3, 2],  # x = 0
            [4, 6, 7], [4, 7, 5],  # x = side
            [0, 4, 5], [0, 5, 1],  # y = 0
            [2, 3, 7], [2, 7, 6],  # y = side
            [0, 2, 6], [0, 6, 4],  # z = 0
            [1, 5, 7], [1, 7, 3],  # z = side
        ]
    )  # fmt: skip
    return verts, faces


def test_user_mesh_cube_scaled_to_unit_equivalent_diameter(tmp_path: Path) -> None:
    path = tmp_path / "cube.obj"
    save_obj(str(path), *_cube(7.0))  # side 7, off-centre
    shapes = user_meshes(3, ShapeConfig(family="mesh", mesh_paths=(str(path),)), _gen())
    vol = mesh_volume(shapes.verts, shapes.faces)
    assert torch.allclose(vol, torch.full((3,), UNIT_VOLUME), atol=1e-4)
    # Centred at the origin; a cube of volume pi/6 has side (pi/6)^(1/3).
    assert torch.allclose(shapes.verts.mean(1), torch.zeros(3, 3), atol=1e-5)
    side = shapes.verts[0, :, 0].max() - shapes.verts[0, :, 0].min()
    assert side == pytest.approx(UNIT_VOLUME ** (1 / 3), rel=1e-4)


def test_user_meshes_of_different_sizes_are_padded(tmp_path: Path) -> None:
    small, big = tmp_path / "ico0.obj", tmp_path / "ico2.obj"
    _write_icosphere(small, 0, 3.0, 5.0)
    _write_icosphere(big, 2, 11.0, -2.0)
    cfg = ShapeConfig(family="mesh", mesh_paths=(str(small), str(big)))
    shapes = make_unit_shapes(12, cfg, _gen(7))
    assert shapes.faces.shape == (12, 320, 3)  # level-2 icosphere has 320 faces
    padded = (shapes.faces < 0).all(-1).sum(1)
    assert set(padded.tolist()) == {0, 320 - 20}  # both meshes were picked for this seed
    vol = mesh_volume(shapes.verts, shapes.faces)
    assert torch.allclose(vol, torch.full((12,), UNIT_VOLUME), atol=1e-4)
    normals = vertex_normals(shapes.verts, shapes.faces)
    assert torch.isfinite(normals).all()


def test_unreadable_mesh_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage_particle.obj"
    path.write_text("v 1 2\nf 1 2 banana\n")
    with pytest.raises(DataError, match=r"garbage_particle\.obj"):
        user_meshes(1, ShapeConfig(family="mesh", mesh_paths=(str(path),)), _gen())


def test_missing_mesh_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "does_not_exist.ply"
    with pytest.raises(DataError, match=r"does_not_exist\.ply"):
        user_meshes(1, ShapeConfig(family="mesh", mesh_paths=(str(path),)), _gen())


def test_wrong_mesh_extension_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "particle.stl"
    path.write_text("solid x\nendsolid x\n")
    with pytest.raises(DataError, match=r"particle\.stl.*expected \.obj or \.ply"):
        user_meshes(1, ShapeConfig(family="mesh", mesh_paths=(str(path),)), _gen())


def test_mesh_without_faces_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "points_only.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    with pytest.raises(DataError, match=r"points_only\.obj.*no faces"):
        user_meshes(1, ShapeConfig(family="mesh", mesh_paths=(str(path),)), _gen())
