"""Grain-centred windows: what a second discriminator judges so that the grains, not the film, decide.

A PatchGAN over whole 256 px patches spends most of its verdicts on film: grains cover ~10 % of a
TiO2 patch. Trained on real patches against a GAN's renders, its verdicts hardly separate the two
(per-patch AUC 0.77-0.92, mean outputs 0.01-0.02 apart), while the same network trained on 48 px
windows centred on grains tells real grains from rendered ones with AUC 0.92-0.999 (README, "What
the discriminator sees of the grains"; off by default, on in ``experiment=real`` together with the
neural shader that lets the generator answer it). The windows are found the same way on
both sides, without masks: bright blobs of the lightly smoothed image above one threshold, Otsu's
over the real training patches (real patches are percentile-stretched and the renders are matched
to them, so one grey level means the same on both sides). The crop is differentiable in the image;
where it lies is not.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.filters import gaussian, threshold_otsu
from skimage.measure import label, regionprops

SMOOTHING_PX = 1.0  # noise must not split a grain into specks or join film pixels to it


def otsu_grain_level(images: torch.Tensor) -> float:
    """Otsu's threshold over all pixels of ``images`` (N, 1, H, W): grains against film."""
    return float(threshold_otsu(images.detach().float().cpu().numpy().ravel()))


def bright_blobs(image: np.ndarray, threshold: float | None) -> np.ndarray:
    """Labelled bright blobs (H, W) int of ``image`` (H, W): the lightly smoothed image above
    ``threshold`` (None: the smoothed image's own Otsu level), 0 elsewhere. What counts as a grain
    for the grain critic and for profile matching, the same on real patches and renders."""
    smooth = gaussian(image, SMOOTHING_PX)
    return label(smooth > (threshold_otsu(smooth) if threshold is None else threshold))


def window_corners(
    image: np.ndarray, threshold: float, window: int, min_area_px: int, limit: int
) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of up to ``limit`` windows of ``window`` px centred on the largest
    blobs of at least ``min_area_px`` px above ``threshold`` in ``image`` (H, W), kept inside it."""
    h, w = image.shape
    blobs = [b for b in regionprops(bright_blobs(image, threshold)) if b.area >= min_area_px]
    blobs.sort(key=lambda b: -b.area)
    corners = []
    for blob in blobs[:limit]:
        cy, cx = blob.centroid
        y = int(np.clip(round(cy) - window // 2, 0, h - window))
        x = int(np.clip(round(cx) - window // 2, 0, w - window))
        corners.append((y, x))
    return corners


def grain_windows(
    images: torch.Tensor, threshold: float, window: int = 48, min_area_px: int = 150, per_image: int = 8
) -> torch.Tensor:
    """(N, 1, window, window) crops of ``images`` (B, 1, H, W) centred on grains; N may be 0.

    Gradients flow from the crops into ``images``; the crops' positions are found on a detached
    copy."""
    if min(images.shape[-2:]) < window:
        raise ValueError(f"images of {tuple(images.shape[-2:])} px are smaller than the {window} px window")
    plain = images.detach().float().cpu().numpy()[:, 0]
    crops = [
        images[i, :, y : y + window, x : x + window]
        for i, img in enumerate(plain)
        for y, x in window_corners(img, threshold, window, min_area_px, per_image)
    ]
    if not crops:
        return images.new_zeros(0, images.shape[1], window, window)
    return torch.stack(crops)
