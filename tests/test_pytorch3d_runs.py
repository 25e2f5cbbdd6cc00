"""Foundation check: PyTorch3D is installed *and* its compiled CPU rasterizer really runs."""

from __future__ import annotations

import torch


def _square(x0: float, y0: float, side: float, z: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Axis-aligned square (two triangles) in NDC, lower corner (x0, y0), side length ``side``."""
    verts = torch.tensor([[x0, y0, z], [x0 + side, y0, z], [x0 + side, y0 + side, z], [x0, y0 + side, z]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    return verts, faces


def _pixel_centres_ndc(size: int) -> torch.Tensor:
    """NDC coordinate of pixel centres along one axis (PyTorch3D: +x left, +y up, index 0 at +1)."""
    return 1.0 - (2.0 * torch.arange(size) + 1.0) / size


def test_pytorch3d_version() -> None:
    import pytorch3d

    print("pytorch3d", pytorch3d.__version__)
    # The wheel (easypytorch3d) reports a PEP 440 post release of 0.7.9, e.g. "0.7.9.post1".
    assert pytorch3d.__version__.split(".post")[0] == "0.7.9"


def test_rasterized_square_covers_analytic_area() -> None:
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    size = 64
    px = 2.0 / size
    # 0.5 x 0.5 NDC at 64 px: one pixel is 2/64 NDC wide, so the square spans exactly 16 x 16 px.
    # Its edges sit a fraction of a pixel off the pixel boundaries (different in x and y) so that no
    # pixel centre lies exactly on an edge: PyTorch3D's inside test is strict, and an aligned
    # square's shared diagonal would pass through 16 pixel centres that neither triangle claims.
    verts, faces = _square(-0.25 + 0.25 * px, -0.25 + 0.125 * px, 0.5)
    meshes = Meshes(verts=[verts], faces=[faces])
    p2f, zbuf, bary, _ = rasterize_meshes(
        meshes, image_size=size, blur_radius=0.0, faces_per_pixel=1, bin_size=0
    )
    hit = p2f[0, ..., 0] >= 0
    assert int(hit.sum()) == 16 * 16
    # The covered block is the expected 16 x 16 window, not just the right count.
    rows, cols = hit.nonzero(as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (24, 39, 24, 39)
    # Depth is the plane's z; face ids are the two triangles; barycentrics sum to one.
    assert torch.allclose(zbuf[0, ..., 0][hit], torch.full((256,), 0.5))
    assert set(p2f[0, ..., 0][hit].tolist()) == {0, 1}
    assert torch.allclose(bary[0, ..., 0, :][hit].sum(-1), torch.ones(256), atol=1e-5)
    assert (zbuf[0, ..., 0][~hit] == -1).all()


def test_unaligned_square_matches_pixel_centre_count() -> None:
    """A square off the pixel grid covers exactly the pixel centres that fall inside it."""
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    size = 48
    x0, y0, side = -0.41, 0.07, 0.63
    verts, faces = _square(x0, y0, side)
    p2f, _, _, _ = rasterize_meshes(
        Meshes(verts=[verts], faces=[faces]), image_size=size, blur_radius=0.0, faces_per_pixel=1
    )
    c = _pixel_centres_ndc(size)
    inside_x = ((c > x0) & (c < x0 + side)).sum()
    inside_y = ((c > y0) & (c < y0 + side)).sum()
    expected = int(inside_x * inside_y)
    assert expected > 0
    assert int((p2f[0, ..., 0] >= 0).sum()) == expected


def test_mesh_rasterizer_with_orthographic_camera() -> None:
    """The high-level path (camera + MeshRasterizer) agrees with the analytic area as well."""
    from pytorch3d.renderer import (
        FoVOrthographicCameras,
        MeshRasterizer,
        RasterizationSettings,
    )
    from pytorch3d.structures import Meshes

    px = 2.0 / 64
    verts, faces = _square(-0.25 + 0.25 * px, -0.25 + 0.125 * px, 0.5, z=2.0)
    cameras = FoVOrthographicCameras(znear=0.1, zfar=10.0)  # identity view: world == NDC in x, y
    settings = RasterizationSettings(image_size=64, blur_radius=0.0, faces_per_pixel=1, bin_size=0)
    fragments = MeshRasterizer(cameras=cameras, raster_settings=settings)(
        Meshes(verts=[verts], faces=[faces])
    )
    assert int((fragments.pix_to_face[0, ..., 0] >= 0).sum()) == 256
