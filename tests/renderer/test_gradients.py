"""Gradients: float64 gradcheck of shaders, optics, noise and the parameter map; geometry mode."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields

import pytest
import torch
from torch.autograd import gradcheck

from diffrendergan.config import MaterialConfig, RendererConfig
from diffrendergan.noise.detector import add_noise, gaussian_blur, optics
from diffrendergan.rendering.gbuffer import GBuffer, build_gbuffer
from diffrendergan.rendering.rasterize import rasterize_windowed
from diffrendergan.rendering.renderer import MicroscopyRenderer, param_space_for
from diffrendergan.rendering.soft import soft_coverage
from diffrendergan.scene.layout import Layout, build_particles
from diffrendergan.shading import SHADERS

SIZE = 12


@pytest.fixture
def gbuffer64(make_material, make_layout) -> GBuffer:
    """A real two-image 12 x 12 G-buffer (spheres, with thickness), float tensors in float64."""
    m = make_material(image_size=16)
    layouts = [
        make_layout([[4.3, 5.2, 3.0, 6.0], [8.6, 7.4, 2.5, 5.0]], seed=1),
        make_layout([[6.1, 6.3, 4.0, 8.0]], seed=2),
    ]
    maps = rasterize_windowed([build_particles(lay, m) for lay in layouts], SIZE, 1.0, thickness=True)
    gb = build_gbuffer(maps, 1.0, azimuth_deg=60.0, texture_seeds=[1, 2])
    kw = {}
    for f in fields(GBuffer):
        v = getattr(gb, f.name)
        kw[f.name] = v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
    # Residue islands are ~20 nm features: none fit a 12 px image at 1 nm/px; give the film field
    # values around the residue levels, so that outlines cross it.
    noise = torch.randn(kw["film"].shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    kw["film"] = 1.3 + 0.1 * noise
    kw["film_coarse"] = 0.1 * torch.roll(noise, 5, dims=-1)  # blended in, the field stays near them
    out = GBuffer(**kw)
    assert out.particle.sum() > 10 and (out.particle == 0).sum() > 10  # both regions present
    assert out.shadow.max() > 0 and out.thickness.max() > 0
    return out


def _midpoints(ranges, batch: int = 2) -> torch.Tensor:
    """(B, K) float64 parameter values between 30 % and 70 % of each range (away from clamps)."""
    g = torch.Generator().manual_seed(0)
    lo = torch.tensor([r[0] for r in ranges.values()], dtype=torch.float64)
    hi = torch.tensor([r[1] for r in ranges.values()], dtype=torch.float64)
    u = 0.3 + 0.4 * torch.rand(batch, len(ranges), generator=g, dtype=torch.float64)
    return lo + (hi - lo) * u


@pytest.mark.parametrize("name", sorted(SHADERS))
def test_shader_gradcheck(name: str, gbuffer64: GBuffer) -> None:
    shader = SHADERS[name]
    names = list(shader.ranges)
    theta = _midpoints(shader.ranges).requires_grad_(True)

    def fn(t: torch.Tensor) -> torch.Tensor:
        return shader(gbuffer64, {n: t[:, i] for i, n in enumerate(names)})

    out = fn(theta)
    assert out.shape == (2, 1, SIZE, SIZE) and out.dtype == torch.float64
    assert gradcheck(fn, (theta,), eps=1e-6, atol=1e-6, rtol=1e-4)
    # Every parameter actually influences the image.
    out.sum().backward()
    assert (theta.grad.abs().sum(0) > 0).all(), dict(zip(names, theta.grad.abs().sum(0).tolist()))


def test_optics_gradcheck() -> None:
    g = torch.Generator().manual_seed(1)
    signal = torch.rand(2, 1, SIZE, SIZE, generator=g, dtype=torch.float64).requires_grad_(True)
    blur = torch.tensor([0.7, 1.3], dtype=torch.float64, requires_grad=True)
    gain = torch.tensor([0.9, 1.1], dtype=torch.float64, requires_grad=True)
    offset = torch.tensor([0.02, -0.01], dtype=torch.float64, requires_grad=True)

    def fn(x, b, k, o):
        return optics(x, {"blur_px": b, "gain": k, "offset": o})

    # Fast mode (random projections of the Jacobian): the full Jacobian of the grouped
    # convolutions costs one backward pass per output pixel, seconds on two CPU cores.
    assert gradcheck(fn, (signal, blur, gain, offset), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)
    # The blur width alone, against a central difference of the summed squared output.
    b = blur.detach().clone().requires_grad_(True)
    (fn(signal.detach(), b, gain, offset) ** 2).sum().backward()
    h = 1e-5
    for i in range(2):
        db = torch.zeros(2, dtype=torch.float64)
        db[i] = h
        up = (fn(signal.detach(), blur.detach() + db, gain, offset) ** 2).sum()
        down = (fn(signal.detach(), blur.detach() - db, gain, offset) ** 2).sum()
        assert b.grad[i].item() == pytest.approx(((up - down) / (2 * h)).item(), rel=1e-5)
    # Blur preserves the mean of a constant image (normalised kernel, reflect padding).
    flat = torch.full((2, 1, SIZE, SIZE), 0.4, dtype=torch.float64)
    out = fn(flat, blur, torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(out, flat)


def test_probe_blur_matches_kornia() -> None:
    """Our shifted-slice blur (kept for speed at 1024 px, see `make bench`) against the library's
    Gaussian blur with the same per-image sigma, kernel size and reflect padding."""
    from kornia.filters import gaussian_blur2d

    x = torch.rand(3, 1, 40, 33, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    sigma = torch.tensor([0.3, 1.0, 2.2], dtype=torch.float64)
    for radius in (2, 5):
        ours = gaussian_blur(x, sigma, radius=radius)
        kernel = (2 * radius + 1, 2 * radius + 1)
        theirs = gaussian_blur2d(x, kernel, sigma[:, None].expand(-1, 2), border_type="reflect")
        assert torch.allclose(ours, theirs, atol=1e-12), (ours - theirs).abs().max()


def test_add_noise_gradcheck() -> None:
    g = torch.Generator().manual_seed(2)
    x = (0.3 + 0.4 * torch.rand(2, 1, SIZE, SIZE, generator=g, dtype=torch.float64)).requires_grad_(True)
    shot = torch.tensor([0.02, 0.04], dtype=torch.float64, requires_grad=True)
    read = torch.tensor([0.01, 0.02], dtype=torch.float64, requires_grad=True)
    corr = torch.tensor([0.4, 0.7], dtype=torch.float64, requires_grad=True)
    offset = torch.tensor([0.02, -0.03], dtype=torch.float64)
    gen = torch.Generator()

    def fn(x_, s, r, c):
        gen.manual_seed(123)  # the same noise draw on every evaluation
        return add_noise(x_, {"shot_noise": s, "read_noise": r, "noise_corr_px": c, "offset": offset}, gen)

    y = fn(x, shot, read, corr)
    assert ((y > 0) & (y < 1)).all()  # no clamping, so the map is smooth
    assert not torch.equal(y, x)  # noise was added
    assert gradcheck(fn, (x, shot, read, corr), eps=1e-6, atol=1e-6, rtol=1e-4)


def _noise(sigma: float, size: int = 256) -> torch.Tensor:
    """Read noise of std 0.01 on a flat mid-grey image, correlated over sigma px: (1, 1, H, W)."""
    flat = torch.full((1, 1, size, size), 0.5, dtype=torch.float64)
    p = {
        "shot_noise": torch.zeros(1),
        "read_noise": torch.full((1,), 0.01),
        "noise_corr_px": torch.full((1,), sigma),
        "offset": torch.zeros(1),
    }
    return add_noise(flat, {k: v.double() for k, v in p.items()}, torch.Generator().manual_seed(0)) - 0.5


def _lag_corr(x: torch.Tensor, lag: int) -> float:
    a, b = x[..., :, :-lag].flatten(), x[..., :, lag:].flatten()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_noise_correlation_keeps_the_noise_level_and_matches_the_gaussian() -> None:
    """sigma 0.55 px: lag-1 correlation 2 w1 (1 + w2) / (1 + 2 w1^2 + 2 w2^2) of the taps w (what
    the real TiO2 substrate shows: 0.30-0.35), per-pixel std kept; sigma 0 is white noise."""
    white, corr = _noise(0.0), _noise(0.55)
    w1, w2 = math.exp(-0.5 / 0.55**2), math.exp(-2 / 0.55**2)
    expected = (2 * w1 + 2 * w1 * w2) / (1 + 2 * w1**2 + 2 * w2**2)
    assert abs(_lag_corr(corr, 1) - expected) < 0.02
    assert abs(_lag_corr(white, 1)) < 0.02
    assert abs(float(corr.std()) / 0.01 - 1) < 0.03
    assert abs(float(white.std()) / 0.01 - 1) < 0.03


def test_zero_noise_correlation_renders_as_white_noise() -> None:
    """noise_corr_px = 0 (how checkpoints from before it load) reproduces the old draw, to rounding:
    the two noise terms are now summed before they are correlated."""
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 1, SIZE, SIZE, generator=g)
    p = {
        "shot_noise": torch.tensor([0.03, 0.05]),
        "read_noise": torch.tensor([0.02, 0.01]),
        "offset": torch.zeros(2),
    }
    new = add_noise(x, {**p, "noise_corr_px": torch.zeros(2)}, torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    e1, e2 = torch.randn(x.shape, generator=gen), torch.randn(x.shape, generator=gen)
    old = (
        x
        + p["shot_noise"].view(-1, 1, 1, 1) * x.add(1e-6).sqrt() * e1
        + p["read_noise"].view(-1, 1, 1, 1) * e2
    )
    assert torch.allclose(new, old.clamp(0, 1), rtol=0, atol=1e-6)


def test_the_offset_shifts_the_image_not_its_shot_noise() -> None:
    """The amplifier's offset is added after detection: with the same draw, an image of signal
    0.2 at offset -0.1 is the image at offset 0 shifted by -0.1, noise included."""
    signal = torch.full((1, 1, 64, 64), 0.2, dtype=torch.float64)
    p = {"shot_noise": torch.tensor([0.1]), "read_noise": torch.zeros(1), "noise_corr_px": torch.zeros(1)}
    p = {k: v.double() for k, v in p.items()}
    images = {}
    for offset in (0.0, -0.1):
        shifted = signal + offset  # what optics gives: gain x signal + offset
        draw = torch.Generator().manual_seed(4)
        images[offset] = add_noise(
            shifted, {**p, "offset": torch.tensor([offset], dtype=torch.float64)}, draw
        )
    assert torch.allclose(images[-0.1], (images[0.0] - 0.1).clamp(0, 1), atol=1e-12)
    assert float(images[0.0].std()) == pytest.approx(0.1 * 0.2**0.5, rel=0.05)


def test_param_space_to_physical_gradcheck(shipped_material) -> None:
    space = param_space_for(shipped_material("tio2", image_size=64))
    u = torch.rand(3, space.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    u.requires_grad_(True)

    def fn(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        phys = space.to_physical(t)
        return tuple(phys[n] for n in space.learned)

    assert gradcheck(fn, (u,), eps=1e-6, atol=1e-6, rtol=1e-4)
    phys = space.to_physical(u.detach())
    for i, n in enumerate(space.learned):
        r = space.ranges[n]
        expected = r.low + (r.high - r.low) * u.detach()[:, i]
        assert torch.allclose(phys[n], expected, atol=1e-6)
    assert torch.allclose(space.to_unit({k: v.float() for k, v in phys.items()}).double(), u, atol=1e-5)


def test_renderer_shade_gradcheck(make_material, make_layout) -> None:
    """End to end from unit parameters through shader, optics and noise, in float64."""
    m = make_material(image_size=16)
    r = MicroscopyRenderer(m, RendererConfig())
    gb = r.gbuffer([make_layout([[5.3, 6.2, 3.0, 6.0], [10.6, 9.4, 2.5, 5.0]])])
    assert 0 < gb.particle.mean() < 1
    # Lowish unit values keep (almost) every pixel off the [0, 1] clamp.
    u = 0.25 + 0.1 * torch.rand(
        1, r.space.dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )
    u.requires_grad_(True)
    gen = torch.Generator()

    def fn(t: torch.Tensor) -> torch.Tensor:
        gen.manual_seed(5)
        return r.shade(gb, t, gen).image

    img = fn(u)
    assert img.dtype == torch.float64
    assert ((img > 0) & (img < 1)).float().mean() > 0.95
    assert gradcheck(fn, (u,), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


# --- geometry-gradient mode ----------------------------------------------------------------------


def _sphere_material(make_material: Callable[..., MaterialConfig], size: int) -> MaterialConfig:
    return make_material(shape={"family": "sphere", "ico_level": 2}, image_size=size)


def test_soft_coverage_size_gradient_matches_finite_difference(make_material, make_layout) -> None:
    m = _sphere_material(make_material, 48)
    d0 = 20.0
    layout: Layout = make_layout([[24.3, 23.6, d0 / 2, d0]])

    def coverage(d: torch.Tensor) -> torch.Tensor:
        parts = build_particles(layout, m, sizes=d)
        return soft_coverage([parts], 48, 1.0, blur_px=1.0, faces_per_pixel=24)

    d = torch.tensor([d0], requires_grad=True)
    cov = coverage(d)
    assert cov.shape == (1, 1, 48, 48)
    assert cov.min() >= 0 and cov.max() <= 1
    cov.sum().backward()
    h = 0.05
    with torch.no_grad():
        fd = (coverage(torch.tensor([d0 + h])).sum() - coverage(torch.tensor([d0 - h])).sum()) / (2 * h)
    assert d.grad.item() > 0
    assert d.grad.item() == pytest.approx(fd.item(), rel=0.03)


def test_soft_coverage_size_gradient_matches_disc_area(make_material, make_layout) -> None:
    """d(sum of coverage)/dd ~ d(pi d^2 / 4)/dd = pi d / 2 per particle.

    One sphere's pixel-sampled gradient depends strongly on where its silhouette falls between
    pixel centres (the soft edge is narrower than a pixel), so the estimate averages 16 identical
    spheres whose centres are stratified over a 4 x 4 grid of sub-pixel offsets."""
    size, k, d0 = 128, 4, 24.0
    m = _sphere_material(make_material, size)
    cell = size / k
    ij = torch.stack(torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij"), -1)
    ij = ij.reshape(-1, 2).float()
    xy = ij * cell + cell / 2 + (ij + 0.5) / k
    n = xy.shape[0]
    layout = make_layout(torch.cat([xy, torch.full((n, 1), d0 / 2), torch.full((n, 1), d0)], 1).tolist())
    d = torch.tensor(d0, requires_grad=True)
    cov = soft_coverage(
        [build_particles(layout, m, sizes=d.expand(n))], size, 1.0, blur_px=0.5, faces_per_pixel=24
    )
    cov.sum().backward()
    per_particle = d.grad.item() / n
    assert per_particle == pytest.approx(math.pi * d0 / 2, rel=0.05)
    # The summed coverage itself is close to the discs' area (soft edges add a thin rim).
    assert cov.sum().item() / n == pytest.approx(math.pi * d0**2 / 4, rel=0.08)


def test_face_distances_match_pytorch3d_rasterizer() -> None:
    """The closed-form distances that carry the soft-coverage gradient equal PyTorch3D's ``dists``
    (px²) on every selected outside pixel, for random triangles in two meshes."""
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    from diffrendergan.rendering.soft import face_distance_px2

    size, blur = 24, 2.0
    g = torch.Generator().manual_seed(3)
    verts_px = torch.rand(2, 9, 2, generator=g) * (size - 6) + 3
    faces = torch.arange(9).reshape(3, 3).expand(2, 3, 3).contiguous()
    px_ndc = 2.0 / size
    ndc = torch.cat([1.0 - verts_px * px_ndc, torch.rand(2, 9, 1, generator=g) + 1], -1)
    p2f, _, _, dists = rasterize_meshes(
        Meshes(verts=ndc, faces=faces),
        image_size=size,
        blur_radius=(blur * px_ndc) ** 2,
        faces_per_pixel=3,
        bin_size=0,
        perspective_correct=False,
    )
    outside = (p2f >= 0) & (dists > 0)
    assert outside.sum() > 100
    ours = face_distance_px2(verts_px, faces, p2f)
    assert torch.allclose(ours[outside], (dists / px_ndc**2)[outside], atol=1e-3, rtol=1e-3)


def test_soft_coverage_closed_form_gradient_equals_rasterizer_gradient(make_material, make_layout) -> None:
    """Fast path (closed-form distances) vs reference (PyTorch3D's backward): same values and
    the same size gradient, with a non-uniform upstream gradient."""
    m = make_material(shape={"family": "faceted", "ico_level": 1, "n_facets": 6}, image_size=48)
    layout = make_layout([[14.3, 20.6, 5.0, 10.0], [30.2, 26.1, 6.0, 12.0], [24.0, 38.4, 4.0, 8.0]])
    weight = torch.linspace(0.2, 1.0, 48)[None, None, :, None]
    out = []
    for reference in (False, True):
        d = torch.tensor([10.0, 12.0, 8.0], requires_grad=True)
        cov = soft_coverage([build_particles(layout, m, sizes=d)], 48, 1.0, 1.0, 8, rasterizer_grad=reference)
        (cov * weight).sum().backward()
        out.append((cov.detach(), d.grad))
    assert torch.allclose(out[0][0], out[1][0], atol=1e-5)
    assert out[0][1].abs().min() > 0
    assert torch.allclose(out[0][1], out[1][1], rtol=1e-3, atol=1e-4)


def test_clipped_pixels_pass_gradient_to_appearance_only() -> None:
    """x = a * g (a: an appearance factor, g: a geometry factor) clips on part of the image. With
    ``geometry_free = a * g.detach()`` the appearance factor gets the unclipped gradient on every
    pixel, the geometry the hard clamp's (0 where clipped); the image itself is the clamped one."""
    g0 = torch.Generator().manual_seed(3)
    base = 0.2 + 1.2 * torch.rand(1, 1, SIZE, SIZE, generator=g0, dtype=torch.float64)
    p = {
        k: torch.zeros(1, dtype=torch.float64)
        for k in ("shot_noise", "read_noise", "noise_corr_px", "offset")
    }

    def grads(geometry_free: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = torch.ones(1, dtype=torch.float64, requires_grad=True)
        g = base.clone().requires_grad_(True)
        x = a * g
        y = add_noise(x, p, torch.Generator().manual_seed(0), (a * g.detach()) if geometry_free else None)
        y.sum().backward()
        return y.detach(), a.grad, g.grad

    hard, split = grads(False), grads(True)
    clipped = base > 1
    assert clipped.any() and (~clipped).any()
    assert torch.equal(hard[0], split[0]) and torch.equal(hard[0], base.clamp(0, 1))
    assert torch.equal(hard[2], split[2])  # geometry: the hard clamp's gradient
    assert torch.equal(hard[2][clipped], torch.zeros(int(clipped.sum()), dtype=torch.float64))
    assert torch.allclose(hard[1], base[~clipped].sum().reshape(1))  # only unclipped pixels
    assert torch.allclose(split[1], base.sum().reshape(1))  # every pixel, as if unclipped


def test_soft_render_geometry_gradient_ignores_clipped_pixels(make_material, make_layout) -> None:
    """In geometry mode saturated pixels give the particle size no gradient (the hard clamp's),
    while the appearance parameters still get one from them (straight through)."""
    m = _sphere_material(make_material, 32)
    r = MicroscopyRenderer(m, RendererConfig(geometry_grad=True, cache_fragments=False))
    layout: Layout = make_layout([[16.3, 15.6, 6.0, 12.0]])
    d = torch.tensor([12.0], requires_grad=True)
    unit = torch.ones(1, r.space.dim, requires_grad=True)  # every range at its top: bright

    def render(u: torch.Tensor) -> torch.Tensor:
        return r.render_soft(
            [layout], [build_particles(layout, m, sizes=d)], None, u, torch.Generator().manual_seed(0)
        ).image

    image = render(unit)
    saturated = image.detach() >= 1
    assert 0 < float(saturated.float().mean()) < 1
    (image * saturated).sum().backward()
    assert d.grad is None or float(d.grad.abs().sum()) == 0.0
    assert float(unit.grad.abs().sum()) > 0
    (grad_all,) = torch.autograd.grad(render(unit.detach()).sum(), d)
    assert float(grad_all.abs().sum()) > 0  # unclipped pixels do carry the size's gradient
