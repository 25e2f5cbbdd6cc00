"""Preview grids: what the renderer draws for a material, next to real images if given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffrendergan.config import MaterialConfig, RendererConfig
from diffrendergan.data.readers import list_images, read_micrograph
from diffrendergan.errors import ConfigError
from diffrendergan.rendering.renderer import MicroscopyRenderer
from diffrendergan.scene.layout import sample_layout
from diffrendergan.training.callbacks import image_grid, save_png


def render_preview(
    material: MaterialConfig,
    renderer: RendererConfig,
    out: Path,
    n_images: int = 6,
    seed: int = 0,
    params: str = "mid",
    real_dir: Path | None = None,
) -> Path:
    """Write ``out`` (PNG): real (if any) | synthetic | synthetic with mask overlay."""
    r = MicroscopyRenderer(material, renderer)
    layouts = [sample_layout(material, seed * 10_000 + i) for i in range(n_images)]
    gen = torch.Generator().manual_seed(seed)
    if params == "mid":
        unit = torch.full((n_images, r.space.dim), 0.5)
    elif params == "random":
        unit = r.space.sample_uniform(n_images, gen)
    else:
        raise ConfigError("params", f"expected mid or random, got {params!r}")
    with torch.no_grad():
        fake = r.render(layouts, unit, gen).image[:, 0].numpy()
    classes, _ = r.masks(layouts)
    size = material.image_size
    if real_dir is not None:
        real = np.stack([_crop(read_micrograph(p), size) for p in list_images(real_dir)[:n_images]])
    else:
        real = np.zeros_like(fake)
    save_png(out, image_grid(real, fake, classes.numpy()))
    return out


def _crop(img: np.ndarray, size: int) -> np.ndarray:
    """Centre crop (zero-padded when smaller) to size x size."""
    out = np.zeros((size, size), np.float32)
    h, w = img.shape
    y0, x0 = max((h - size) // 2, 0), max((w - size) // 2, 0)
    c = img[y0 : y0 + size, x0 : x0 + size]
    out[: c.shape[0], : c.shape[1]] = c
    return out
