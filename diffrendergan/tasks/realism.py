"""Realism of a synthetic set against real micrographs, from two folders of images.

Both sides are cut into equal square patches (the SWD compares equal-sized images): real
micrographs lose their data bar first, then every image gives its non-overlapping
``patch_size`` tiles. Pixel values keep their absolute brightness ("full" normalisation), since
a brightness/contrast mismatch is exactly what the histogram distance should see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffrendergan.data.databar import crop_data_bar
from diffrendergan.data.readers import list_images, read_micrograph
from diffrendergan.errors import ConfigError, DataError
from diffrendergan.metrics.realism import realism_report
from diffrendergan.utils.io import atomic_write_json


def image_folder(folder: str | Path) -> Path:
    """The image folder inside an export (``images/``) or a prepare output (``patches/``)."""
    folder = Path(folder)
    for sub in ("images", "patches"):
        if (folder / sub).is_dir():
            return folder / sub
    return folder


def load_images(folder: str | Path, crop_bar: bool, crop_bottom_px: int | None) -> list[np.ndarray]:
    """(H, W) float32 images in [0, 1], data bar removed when ``crop_bar``."""
    out = []
    for f in list_images(image_folder(folder)):
        img = read_micrograph(f, normalize="full")
        out.append(np.asarray(crop_data_bar(img, crop_bottom_px) if crop_bar else img))
    return out


def to_patches(images: list[np.ndarray], size: int, max_patches: int | None) -> torch.Tensor:
    """Non-overlapping ``size`` tiles of every image -> (N, 1, size, size)."""
    tiles = [
        img[y : y + size, x : x + size]
        for img in images
        for y in range(0, img.shape[0] - size + 1, size)
        for x in range(0, img.shape[1] - size + 1, size)
    ]
    if max_patches is not None:
        tiles = tiles[:max_patches]
    if not tiles:
        raise DataError("<images>", f"no image is at least {size}x{size} px")
    return torch.from_numpy(np.stack(tiles)).float()[:, None]


def realism_from_folders(
    real_dir: str | Path,
    fake_dir: str | Path,
    out_path: str | Path | None = None,
    patch_size: int | None = None,
    crop_bottom_px: int | None = None,
    max_patches: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """SWD (x1e3, mean and per level) and grey-level histogram W1 between two image folders.

    ``patch_size`` None = the smallest image side (capped at 256). ``crop_bottom_px`` applies to
    the real images (None = detect the data bar). Writes ``out_path`` (JSON) when given.
    """
    real = load_images(real_dir, crop_bar=True, crop_bottom_px=crop_bottom_px)
    fake = load_images(fake_dir, crop_bar=False, crop_bottom_px=None)
    side = min(min(i.shape) for i in real + fake)
    size = min(side, 256) if patch_size is None else int(patch_size)
    if size < 16:
        raise ConfigError("patch_size", f"must be >= 16 px, got {size}")
    r, f = to_patches(real, size, max_patches), to_patches(fake, size, max_patches)
    report = realism_report(r, f, seed=seed)
    result = {
        "swd": float(report["swd"]),
        "swd_levels": [float(v) for v in report["swd_levels"]],
        "hist_w1": float(report["hist_w1"]),
        "n_real_patches": int(r.shape[0]),
        "n_fake_patches": int(f.shape[0]),
        "patch_size": size,
        "real_dir": str(real_dir),
        "fake_dir": str(fake_dir),
    }
    if out_path is not None:
        atomic_write_json(out_path, result)
    return result
