"""Benchmark: GAN step vs. discriminator-only cost, export throughput, scaling; prints one JSON.

    python -m benchmarks.run            # quick (the figures the README quotes)
    python -m benchmarks.run --full     # + particle/pixel scaling curves and peak memory

Every figure is the median of >= 5 repeats after a warm-up, measured in this process, next to the
in-run baseline it is compared against (naive full-image PyTorch3D rasterization, no cache).
Targets (benchmarks/README.md): gan_step_s <= 1.25 x disc_step_s; export >= 4 images/s at 256 px
with 20-50 particles; cost at most linear in particles and pixels; peak RSS < 4 GB; one tio2
layout <= 30 ms; a GAN step with fresh layouts <= 1.3 x one with cached layouts.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from diffrendergan.config import CountLaw, MaterialConfig, RendererConfig, material_from_dict
from diffrendergan.data.scenes import SceneBatch, ScenePlan, SceneStream
from diffrendergan.models.discriminator import PatchDiscriminator
from diffrendergan.models.gan_losses import lsgan_d, lsgan_g
from diffrendergan.models.generator import Generator
from diffrendergan.scene.layout import build_particles, sample_layout

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {
    "render_share": "<= 0.25 (gan_step_s <= 1.25 x disc_step_s)",
    "export_images_per_s": ">= 4 at 256 px, 20-50 particles (CPU)",
    "scaling": "at most linear in particles and pixels",
    "peak_rss_gb": "< 4 at 1024 px, 200 particles",
    "layout_sample_ms": "<= 30 per tio2 layout (CPU)",
    "fresh_over_cached": "<= 1.3: a step with fresh layouts (one scene worker) over one with cached layouts",
}


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def load_material(name: str, **over: object) -> MaterialConfig:
    m = material_from_dict(yaml.safe_load((ROOT / "configs" / "material" / f"{name}.yaml").read_text()))
    return replace(m, **over)  # type: ignore[arg-type]


def fixed_count(m: MaterialConfig, n: int) -> MaterialConfig:
    """Exactly n particles laid out on the image itself (no guard band), so that the figures are
    per rendered particle whatever the material's default guard."""
    return replace(m, count=CountLaw(kind="fixed", n=n), placement=replace(m.placement, guard=0.0))


class StepBench:
    """One GAN step (paper order: G step then D step) with batch B, and its D-only part."""

    def __init__(self, material: MaterialConfig, renderer: RendererConfig, batch: int, device: str = "cpu"):
        torch.manual_seed(0)
        self.g = Generator(material, renderer).to(device)
        self.d = PatchDiscriminator().to(device)
        self.opt_g = torch.optim.Adam(self.g.parameters(), 2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.d.parameters(), 1e-4, betas=(0.5, 0.999))
        self.real = torch.rand(batch, 1, material.image_size, material.image_size, device=device)
        self.seeds = list(range(batch))
        self.fake_leaf = torch.rand_like(self.real)

    def d_part(self, fake: torch.Tensor) -> None:
        """Everything the discriminator costs in one GAN step: D(fake) for the G loss and its
        backward, then D(real), D(fake) and the D update."""
        self.opt_g.zero_grad()
        lsgan_g(self.d(fake)).backward()
        self.opt_d.zero_grad()
        lsgan_d(self.d(self.real), self.d(fake.detach())).backward()
        self.opt_d.step()

    def disc_only(self) -> None:
        self.d_part(self.fake_leaf.clone().requires_grad_(True))

    def full(self) -> None:
        fake = self.g(self.g.layouts(self.seeds)).image
        self.d_part(fake)
        self.opt_g.step()

    def full_fresh(self) -> None:
        """A step whose layouts are new (layout_pool=0): rasterization included."""
        self.g.renderer._cache.clear()
        self.full()

    def scene_step(self, scenes: SceneBatch) -> None:
        """A step on a training batch's scenes (layouts, and their G-buffers when a loader made them)."""
        fake = self.g(scenes.layouts, gbuffer=scenes.gbuffer).image
        self.d_part(fake)
        self.opt_g.step()

    def render_fwd_bwd(self) -> None:
        out = self.g(self.g.layouts(self.seeds)).image
        out.mean().backward()


def gan_step_figures(batch: int, repeats: int) -> dict:
    sio2 = fixed_count(load_material("sio2"), 20)
    fast = StepBench(sio2, RendererConfig(), batch)
    naive = StepBench(sio2, RendererConfig(windowed=False, cache_fragments=False), batch)
    disc = median_time(fast.disc_only, repeats)
    full = median_time(fast.full, repeats)
    base = median_time(naive.full, max(3, repeats // 2))
    return {
        "batch": batch,
        "disc_step_s": disc,
        "gan_step_s": full,
        "render_share": (full - disc) / disc,
        "baseline_gan_step_s": base,
        "speedup": base / full,
        "per_image_gan_step_s": full / batch,
    }


def synchronize(device: str) -> None:
    """Wait for a GPU's queued kernels, so that wall time counts them (no-op on the CPU)."""
    if device != "cpu":
        torch.cuda.synchronize()


def scene_figures(
    batch: int = 4, steps: int = 12, skip: int = 2, device: str = "cpu", workers: tuple[int, ...] = (0, 1)
) -> dict:
    """TiO2 GAN steps (batch ``batch``, 256 px) with a fresh layout for every image
    (``layout_pool: 0``), fed by the training scene loader (:mod:`diffrendergan.data.scenes`) with
    0 workers (layouts drawn and rasterized inside the step, on ``device``) or N workers (on the
    CPU, while the previous steps run), against the step with cached layouts. Per-step figures are
    the mean wall time of ``steps - skip`` steps, so that waiting for the loader counts."""
    m = load_material("tio2")
    bench = StepBench(m, RendererConfig(), batch, device)
    stream = SceneStream(ScenePlan(seed=0, pool=0), m, RendererConfig())
    on_gpu = device != "cpu"

    def per_step(n_workers: int) -> float:
        loader = replace(stream, workers=n_workers).loader(batch * steps, batch, on_gpu=on_gpu)
        scenes = iter(loader)
        for _ in range(skip):
            bench.scene_step(next(scenes))
        synchronize(device)
        t = time.perf_counter()
        for batch_scenes in scenes:
            bench.scene_step(batch_scenes)
        synchronize(device)
        return (time.perf_counter() - t) / (steps - skip)

    def cached_step() -> None:
        bench.full()
        synchronize(device)

    cached = median_time(cached_step, 5)
    out: dict = {"material": "tio2", "batch": batch, "device": device, "cached_layouts_s": cached}
    for n in workers:
        name = "fresh_in_step" if n == 0 else f"fresh_{n}_worker" + "s" * (n > 1)
        out[f"{name}_s"] = per_step(n)
        out[f"{name}_over_cached"] = out[f"{name}_s"] / cached
    return out


def export_figure(n_images: int = 16, particles: int = 30) -> dict:
    from diffrendergan.export.writer import ExportOptions, export_dataset

    m = fixed_count(load_material("sio2"), particles)
    g = Generator(m, RendererConfig())
    with tempfile.TemporaryDirectory() as tmp:
        export_dataset(g, Path(tmp) / "warm", 2, ExportOptions(seed=99, batch_size=8, progress=False))
        t = time.perf_counter()
        export_dataset(g, Path(tmp) / "out", n_images, ExportOptions(seed=0, batch_size=8, progress=False))
        dt = time.perf_counter() - t
    return {
        "export_images_per_s": n_images / dt,
        "export_particles": particles,
        "export_images": n_images,
    }


def layout_figures(seeds: int = 20) -> dict:
    """Median ms per ``sample_layout`` (shipped configs, guard band included) over ``seeds`` seeds
    after a warm-up: the CPU work behind every fresh layout of a GAN step or an export."""
    out: dict = {"seeds": seeds}
    for name in ("tio2", "sio2", "agnw"):
        m = load_material(name)
        seed = iter(range(seeds + 1))
        out[name] = 1e3 * median_time(lambda m=m, seed=seed: sample_layout(m, next(seed)), seeds)
    return out


def vertex_normal_figure(repeats: int) -> dict:
    """Vertex normals of one tio2 layout's particles: ours (one gather + scatter) vs PyTorch3D's
    ``Meshes.verts_normals_padded`` (same values); ours is kept where it is faster."""
    from pytorch3d.structures import Meshes

    from diffrendergan.geometry.shapes import vertex_normals

    m = load_material("tio2")
    parts = build_particles(sample_layout(m, 3), m)
    v, f = parts.verts, parts.faces
    ours = median_time(lambda: vertex_normals(v, f), 10 * repeats)
    library = median_time(lambda: Meshes(verts=v, faces=f).verts_normals_padded(), 10 * repeats)
    diff = (vertex_normals(v, f) - Meshes(verts=v, faces=f).verts_normals_padded()).abs().max()
    return {"particles": int(v.shape[0]), "ours_ms": 1e3 * ours, "pytorch3d_ms": 1e3 * library,
            "pytorch3d_over_ours": library / ours, "max_abs_difference": float(diff)}  # fmt: skip


def detector_blur_figure(repeats: int) -> dict:
    """The detector's per-image probe blur, forward + backward with sigma learned, at 256 px
    (batch 8, training) and 1024 px (batch 1, a large export): ours (shifted-slice sums) vs
    ``kornia.filters.gaussian_blur2d`` with a per-image sigma (same kernel and reflect padding,
    same values); ours is kept while it is not slower at either size."""
    from kornia.filters import gaussian_blur2d

    from diffrendergan.noise.detector import gaussian_blur

    out: dict = {}
    for batch, size in ((8, 256), (1, 1024)):
        x = torch.rand(batch, 1, size, size)
        sigma = torch.linspace(0.3, 1.8, batch).requires_grad_(True)

        def ours(x=x, sigma=sigma) -> torch.Tensor:
            return gaussian_blur(x, sigma, radius=5)

        def library(x=x, sigma=sigma) -> torch.Tensor:
            return gaussian_blur2d(x, (11, 11), sigma[:, None].expand(-1, 2), border_type="reflect")

        t_ours = median_time(lambda fn=ours: fn().square().mean().backward(), 3 * repeats)
        t_lib = median_time(lambda fn=library: fn().square().mean().backward(), 3 * repeats)
        with torch.no_grad():
            diff = float((ours() - library()).abs().max())
        out[f"batch{batch}_{size}px"] = {
            "ours_ms": 1e3 * t_ours,
            "kornia_ms": 1e3 * t_lib,
            "kornia_over_ours": t_lib / t_ours,
            "max_abs_difference": diff,
        }
    return out


def soft_coverage_figure(repeats: int) -> dict:
    """Topography learning's geometry gradient: soft coverage forward + backward for a batch of 4
    (sio2, 128 px, 3-8 particles), closed-form distances vs PyTorch3D's rasterizer backward."""
    from diffrendergan.models.topography import Topography
    from diffrendergan.rendering.soft import soft_coverage

    m = replace(load_material("sio2"), image_size=128, count=CountLaw("uniform", low=3, high=8))
    m = replace(m, shape=replace(m.shape, ico_level=1))
    topo = Topography(m, learn_count=False)
    lays = topo.layouts([0, 1, 2, 3])

    def run(reference: bool) -> None:
        parts = [build_particles(lay, m, sizes=topo.sizes(lay)) for lay in lays]
        soft_coverage(parts, 128, m.pixel_size_nm, 1.0, 8, rasterizer_grad=reference).sum().backward()

    fast = median_time(lambda: run(False), repeats)
    ref = median_time(lambda: run(True), max(3, repeats // 2))
    return {
        "particles": sum(lay.n for lay in lays),
        "fwd_bwd_s": fast,
        "rasterizer_backward_fwd_bwd_s": ref,
        "speedup": ref / fast,
    }


def render_figures(material: MaterialConfig, particles: int, size: int, repeats: int) -> dict:
    """Render-only costs: rasterize (uncached), shade forward, shade forward+backward, naive raster."""
    m = replace(fixed_count(material, particles), image_size=size)
    g = Generator(m, RendererConfig())
    lays = g.layouts([0])
    r = g.renderer

    def raster_uncached() -> None:
        r._cache.clear()
        r.gbuffer(lays)

    gb = r.gbuffer(lays)
    unit = torch.full((1, r.space.dim), 0.5, requires_grad=True)

    def fwd() -> None:
        with torch.no_grad():
            r.shade(gb, unit)

    def fwd_bwd() -> None:
        r.shade(gb, unit).image.mean().backward()

    out = {
        "particles": particles,
        "size": size,
        "faces": int((build_particles(lays[0], m).faces >= 0).all(-1).sum()),
        "raster_windowed_s": median_time(raster_uncached, repeats),
        "shade_fwd_s": median_time(fwd, repeats),
        "shade_fwd_bwd_s": median_time(fwd_bwd, repeats),
    }
    if size * size * particles <= 256 * 256 * 50:  # the naive path is too slow beyond this
        naive = Generator(m, RendererConfig(windowed=False, cache_fragments=False)).renderer
        out["raster_naive_s"] = median_time(lambda: naive.gbuffer(lays), max(3, repeats // 2))
        out["naive_over_windowed"] = out["raster_naive_s"] / out["raster_windowed_s"]
    out["uncached_fwd_bwd_s"] = out["raster_windowed_s"] + out["shade_fwd_bwd_s"]
    out["cached_fwd_bwd_s"] = out["shade_fwd_bwd_s"]
    return out


def cuda_figures(repeats: int, gpu: str = "cuda") -> dict:
    """GPU vs the same machine's CPU, one process: rasterization (the face-major tensor ops on
    CUDA vs on the CPU), GAN steps with fresh and cached layouts, export."""
    from diffrendergan.export.writer import ExportOptions, export_dataset

    def timed(fn: Callable[[], object], n: int = repeats) -> float:
        def synced() -> None:
            fn()
            synchronize(gpu)

        return median_time(synced, n)

    tio2 = load_material("tio2")
    name = torch.cuda.get_device_name() if gpu == "cuda" else gpu
    out: dict = {"gpu": name, "cpu_threads": torch.get_num_threads()}
    for n in (30, 200):
        m = fixed_count(tio2, n)
        on = {dev: Generator(m, RendererConfig()).to(dev) for dev in ("cpu", gpu)}
        lays = on["cpu"].layouts(list(range(8)))

        def raster(dev: str, lays=lays, on=on) -> None:
            on[dev].renderer._cache.clear()
            on[dev].renderer.gbuffer(lays, device=dev)

        cpu_s, gpu_s = timed(lambda: raster("cpu"), 3), timed(lambda: raster(gpu), 3)
        out[f"raster_batch8_256px_{n}p"] = {"cpu_s": cpu_s, "cuda_s": gpu_s, "speedup": cpu_s / gpu_s}
    sio2 = fixed_count(load_material("sio2"), 20)
    steps = {
        "cuda_raster": StepBench(sio2, RendererConfig(), 8, gpu),
        "cpu_raster": StepBench(sio2, RendererConfig(raster_device="cpu"), 8, gpu),
    }
    fresh = {k: timed(b.full_fresh) for k, b in steps.items()}
    out["gan_step_batch8"] = {
        "fresh_layouts_s": fresh["cuda_raster"],
        "fresh_layouts_cpu_raster_s": fresh["cpu_raster"],
        "cached_layouts_s": timed(steps["cuda_raster"].full),
        "disc_only_s": timed(steps["cuda_raster"].disc_only),
        "cpu_cached_layouts_s": median_time(StepBench(sio2, RendererConfig(), 8).full, 3),
    }
    m = fixed_count(tio2, 30)
    rate = {}
    for dev in ("cpu", gpu):
        g = Generator(m, RendererConfig()).to(dev)
        with tempfile.TemporaryDirectory() as tmp:
            export_dataset(g, Path(tmp) / "warm", 2, ExportOptions(seed=99, batch_size=16, progress=False))
            t = time.perf_counter()
            export_dataset(g, Path(tmp) / "out", 32, ExportOptions(seed=0, batch_size=16, progress=False))
            rate[dev] = 32 / (time.perf_counter() - t)
    out["export_256px_30p_images_per_s"] = {**rate, "speedup": rate[gpu] / rate["cpu"]}
    out["fresh_layouts_tio2_batch8"] = scene_figures(8, 14, 4, gpu, (0, 4, 12))
    return out


def peak_rss(case: str) -> float:
    """Peak RSS (GB) of a fresh process doing one GAN step or one export at 1024 px, 200 particles."""
    code = (
        "import resource, tempfile, torch; from pathlib import Path; "
        "from benchmarks.run import *; "
        "m = replace(fixed_count(load_material('sio2'), 200), image_size=1024); "
    )
    if case == "gan":
        code += "b = StepBench(m, RendererConfig(), 1); b.full(); "
    else:
        code += (
            "from diffrendergan.export.writer import ExportOptions, export_dataset; "
            "export_dataset(Generator(m, RendererConfig()), Path(tempfile.mkdtemp()), 2, "
            "ExportOptions(progress=False)); "
        )
    code += "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(res.stdout.strip().splitlines()[-1]) / 1024**2


def environment() -> dict:
    import pytorch3d

    return {
        "torch": torch.__version__,
        "pytorch3d": pytorch3d.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "device": "cpu",
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="add scaling curves and peak memory")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cuda", action="store_true", help="only the GPU-vs-CPU figures (needs CUDA)")
    args = ap.parse_args(argv)
    res: dict = {"environment": environment(), "targets": TARGETS}
    if args.cuda:
        if not torch.cuda.is_available():
            ap.error("--cuda: torch sees no CUDA device")
        res["cuda"] = cuda_figures(args.repeats)
        print(json.dumps(res, indent=2))
        return res
    step1 = gan_step_figures(1, args.repeats)
    res.update(
        {k: step1[k] for k in ("gan_step_s", "disc_step_s", "render_share", "baseline_gan_step_s", "speedup")}
    )
    res["baseline"] = "naive full-image PyTorch3D rasterization, no fragment cache, same process"
    res["layout_sample_ms"] = layout_figures()
    res["layout_over_disc_step"] = res["layout_sample_ms"]["tio2"] / 1e3 / step1["disc_step_s"]
    res["batch8"] = gan_step_figures(8, max(3, args.repeats // 2))
    res["fresh_layouts"] = scene_figures()
    res["fresh_over_cached"] = res["fresh_layouts"]["fresh_1_worker_over_cached"]
    res.update(export_figure())
    sio2 = load_material("sio2")
    res["render_256"] = [render_figures(sio2, n, 256, args.repeats) for n in (10, 50, 200)]
    res["soft_coverage"] = soft_coverage_figure(args.repeats)
    res["vertex_normals"] = vertex_normal_figure(args.repeats)
    res["detector_blur"] = detector_blur_figure(args.repeats)
    if args.full:
        res["scaling_pixels"] = [render_figures(sio2, 50, s, 3) for s in (256, 512, 1024)]
        res["peak_rss_gb"] = {
            "gan_step_1024px_200p": peak_rss("gan"),
            "export_1024px_200p": peak_rss("export"),
        }
    res["peak_rss_this_process_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
