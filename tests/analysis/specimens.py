"""Tiny micrographs with known particles, written with the metadata microscopes write, and an
untrained segmenter checkpoint (the analysis plumbing is tested, not the network). A named module,
not conftest: ``from conftest import`` finds whichever test folder's conftest came first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import torch

H, W, BAR = 96, 128, 12  # image size and data-bar rows at the bottom
PIXEL_NM = 2.0
# (row, col, radius) of bright discs; the last one is cut by the right border.
DISCS = ((20, 24, 9), (24, 70, 7), (60, 40, 10), (56, 96, 8), (40, 124, 7))


def specimen(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) uint8 micrograph (noisy discs, data bar with a text stripe) and its 0/255 mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    mask = np.zeros((H, W), np.uint8)
    for r, c, rad in DISCS:
        mask[(yy - r) ** 2 + (xx - c) ** 2 <= rad**2] = 255
    mask[H - BAR :] = 0
    img = np.clip(np.where(mask > 0, 200.0, 50.0) + rng.normal(0, 6, (H, W)), 0, 255).astype(np.uint8)
    img[H - BAR :] = 0
    img[H - BAR + 3 : H - BAR + 6, 10:50] = 255
    return img, mask


def cz_sem_tag(nm: float) -> tuple:
    """A minimal Zeiss SmartSEM tag (34118) that tifffile parses to ``ap_image_pixel_size``."""
    text = "\r\n".join(
        ["0", "AP_IMAGE_PIXEL_SIZE", f"Image Pixel Size = {nm} nm", "DP_DETECTOR", "Detector = InLens", ""]
    )
    return (34118, "s", 0, text, True)


def write_zeiss(path: Path, img: np.ndarray, nm: float = PIXEL_NM) -> Path:
    tifffile.imwrite(path, img, extratags=[cz_sem_tag(nm)])
    return path


def write_resolution(path: Path, img: np.ndarray, nm: float = PIXEL_NM) -> Path:
    """TIFF whose XResolution/YResolution say ``nm`` per pixel in pixels per centimetre."""
    tifffile.imwrite(path, img, resolution=(1e7 / nm, 1e7 / nm), resolutionunit="CENTIMETER")
    return path


def save_segmenter(path: Path, train_pixel_size_nm: float | None = PIXEL_NM) -> Path:
    """An untrained segmenter.ckpt written the way training writes it (Lightning checkpoint)."""
    import pytorch_lightning as pl

    from diffrendergan.segmentation.module import SegModule
    from diffrendergan.segmentation.recipe import segmenter_from_dict

    torch.manual_seed(0)
    recipe = segmenter_from_dict(
        {"profile": "cpu", "precision": "32", "accelerator": "cpu", "min_size_px": 4}
    )
    module = SegModule(recipe.resolved().as_dict(), train_pixel_size_nm)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path
