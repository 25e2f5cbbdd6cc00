"""Detector chain after shading: probe blur, gain/offset, shot and read noise, clamp.

Noise is reparameterised (x + σ(params) · ε with ε ~ N(0, 1) drawn independently of the
parameters), so gradients reach the noise levels. Shot noise uses the Gaussian limit of Poisson
statistics: variance proportional to the signal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffrendergan.shading.base import Params, per_image

DETECTOR_RANGES = {
    "blur_px": (0.3, 1.8),
    "gain": (0.8, 1.2),
    "offset": (-0.05, 0.1),
    "shot_noise": (0.0, 0.15),
    "read_noise": (0.0, 0.08),
}


def gaussian_blur(x: torch.Tensor, sigma_px: torch.Tensor, radius: int = 5) -> torch.Tensor:
    """Per-image Gaussian blur, differentiable in sigma. x (B, 1, H, W), sigma (B,)."""
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t[None] / sigma_px[:, None].clamp_min(1e-3)) ** 2)
    k = k / k.sum(1, keepdim=True)  # (B, 2r+1)
    b = x.shape[0]
    xp = F.pad(x, (radius, radius, radius, radius), mode="reflect").transpose(0, 1)  # (1, B, H', W')
    y = F.conv2d(xp, k.reshape(b, 1, 1, -1), groups=b)
    y = F.conv2d(y, k.reshape(b, 1, -1, 1), groups=b)
    return y.transpose(0, 1)


def optics(signal: torch.Tensor, p: Params, supersample: int = 1) -> torch.Tensor:
    """Probe blur (in output pixels) then gain/offset; average-pools a supersampled signal."""
    x = gaussian_blur(signal, p["blur_px"] * supersample, radius=5 * supersample)
    if supersample > 1:
        x = F.avg_pool2d(x, supersample)
    return per_image(p["gain"]) * x + per_image(p["offset"])


def add_noise(x: torch.Tensor, p: Params, generator: torch.Generator | None = None) -> torch.Tensor:
    """Reparameterised shot + read noise, then clamp to [0, 1]. x (B, 1, H, W)."""
    dev = generator.device if generator is not None else x.device
    e1 = torch.randn(x.shape, generator=generator, device=dev).to(x)
    e2 = torch.randn(x.shape, generator=generator, device=dev).to(x)
    x = (
        x
        + per_image(p["shot_noise"]) * x.clamp_min(0).add(1e-6).sqrt() * e1
        + per_image(p["read_noise"]) * e2
    )
    return x.clamp(0.0, 1.0)
