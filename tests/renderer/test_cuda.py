"""CUDA paths agree with the CPU: hard and soft rasterization, size-law gradients, generator
renders. Skipped without a GPU (CI has none); run on a GPU machine with ``pytest -m gpu``."""

from __future__ import annotations

import copy

import pytest
import torch

from diffrendergan.config import RendererConfig
from diffrendergan.models.generator import Generator
from diffrendergan.rendering.rasterize import rasterize_windowed
from diffrendergan.rendering.soft import soft_coverage
from diffrendergan.scene.layout import build_particles, sample_layout

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
SIZE = 128


@pytest.fixture
def tio2(shipped_material):
    return shipped_material("tio2", image_size=SIZE)


def test_windowed_rasterization_on_cuda_matches_cpu(tio2) -> None:
    layouts = [sample_layout(tio2, s) for s in range(4)]
    parts = [build_particles(lay, tio2) for lay in layouts]
    cpu = rasterize_windowed(parts, SIZE, tio2.pixel_size_nm, thickness=True)
    gpu = rasterize_windowed([p.to("cuda") for p in parts], SIZE, tio2.pixel_size_nm, thickness=True)
    assert gpu.instance.is_cuda and gpu.thickness is not None and gpu.thickness.is_cuda
    gpu = gpu.to("cpu")
    assert (cpu.instance > 0).float().mean() > 0.05  # particles are there
    same = cpu.instance == gpu.instance
    assert same.float().mean() > 0.999  # at most a few edge pixels may flip between kernels
    torch.testing.assert_close(gpu.height[same], cpu.height[same], atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(gpu.normal.permute(0, 2, 3, 1)[same], cpu.normal.permute(0, 2, 3, 1)[same],
                               atol=1e-3, rtol=1e-3)  # fmt: skip
    assert cpu.thickness is not None
    torch.testing.assert_close(gpu.thickness[same], cpu.thickness[same], atol=1e-2, rtol=1e-3)


def test_soft_coverage_and_size_gradients_on_cuda_match_cpu(tio2) -> None:
    layout = sample_layout(tio2, 3)
    weight = torch.linspace(0, 1, SIZE * SIZE).view(1, 1, SIZE, SIZE)  # an asymmetric loss
    results = {}
    for dev in ("cpu", "cuda"):
        sizes = layout.xyzs[:, 3].clone().to(dev).requires_grad_(True)
        parts = build_particles(layout, tio2, sizes=sizes)
        assert parts.verts.device.type == dev
        cov = soft_coverage([parts], SIZE, tio2.pixel_size_nm, blur_px=1.0, faces_per_pixel=8)
        assert cov.device.type == dev
        (cov * weight.to(dev)).sum().backward()
        results[dev] = (cov.detach().cpu(), sizes.grad.cpu())
    torch.testing.assert_close(results["cuda"][0], results["cpu"][0], atol=2e-4, rtol=1e-3)
    grad_cpu, grad_gpu = results["cpu"][1], results["cuda"][1]
    assert grad_cpu.abs().max() > 0
    torch.testing.assert_close(grad_gpu, grad_cpu, atol=1e-3 * float(grad_cpu.abs().max()), rtol=1e-2)


def test_generator_renders_the_same_on_cuda(tio2) -> None:
    torch.manual_seed(0)
    g_cpu = Generator(tio2, RendererConfig()).eval()
    g_gpu = copy.deepcopy(g_cpu).to("cuda")
    layouts = g_cpu.layouts([11, 12, 13])
    with torch.no_grad():
        cpu = g_cpu(layouts, noise=False).image
        g_gpu.renderer._cache.clear()  # force the CUDA rasterizer, not the CPU-filled cache
        gpu = g_gpu(layouts, noise=False).image
    assert gpu.is_cuda
    off = ((gpu.cpu() - cpu).abs() > 1e-3).float().mean()
    assert off < 0.005  # equal up to a few silhouette pixels
