"""Detector chain after shading: probe blur, gain/offset, shot and read noise, clamp.

Noise is reparameterised (x + σ(params) · ε with ε ~ N(0, 1) drawn independently of the
parameters), so gradients reach the noise levels. Shot noise uses the Gaussian limit of Poisson
statistics: variance proportional to the signal.

Real SEM noise is not white: the detector's amplifier bandwidth and the scan's overlapping dwell
spots correlate neighbouring pixels. On the Rühle TiO2 SEM substrate the high-passed noise has a
lag-1 correlation of 0.35 (along rows) / 0.30 (along columns) and none at lag 2, what a Gaussian of
σ ≈ 0.55 px gives. The noise field is therefore smoothed by a Gaussian of learned σ
(``noise_corr_px``) and rescaled to keep its per-pixel standard deviation, so the shot and read
levels keep their meaning; σ = 0 is white noise, as before the parameter existed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffrendergan.params.space import Domain
from diffrendergan.shading.base import Params, per_image

DETECTOR_RANGES = {
    "blur_px": (0.3, 1.8),
    "gain": (0.8, 1.2),
    "offset": (-0.05, 0.1),
    "shot_noise": (0.0, 0.15),
    "read_noise": (0.0, 0.08),
    "noise_corr_px": (0.0, 1.0),
}

# Blur and noise levels are standard deviations, the gain a factor: non-negative. Images live in
# [0, 1], so an offset beyond +-1 leaves nothing but a clamped, constant image.
DETECTOR_DOMAINS = {
    "blur_px": Domain(0.0, meaning="probe blur sigma, px"),
    "gain": Domain(0.0, meaning="detector gain"),
    "offset": Domain(-1.0, 1.0, meaning="detector offset, image units"),
    "shot_noise": Domain(0.0, meaning="shot-noise level"),
    "read_noise": Domain(0.0, meaning="read-noise sigma"),
    "noise_corr_px": Domain(0.0, meaning="correlation length (Gaussian sigma) of the noise, px"),
}

# Detector parameters added after checkpoints were written, with the values that render as those
# did (white noise); see ``Shader.introduced``.
DETECTOR_INTRODUCED = {"noise_corr_px": 0.0}


def gaussian_kernel(sigma_px: torch.Tensor, radius: int, like: torch.Tensor) -> torch.Tensor:
    """Per-image normalised 1-D Gaussian taps (B, 2r+1) for sigma (B,); sigma -> 0 is a delta."""
    t = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    k = torch.exp(-0.5 * (t[None] / sigma_px[:, None].clamp_min(1e-3)) ** 2)
    return k / k.sum(1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma_px: torch.Tensor, radius: int = 5) -> torch.Tensor:
    """Per-image separable Gaussian blur, differentiable in sigma. x (B, 1, H, W), sigma (B,).

    Written as weighted sums of shifted slices (2 x (2r+1) full-image multiply-adds) rather than
    ``kornia.filters.gaussian_blur2d`` (a convolution): same values (4e-7), as fast at 256 px and
    about 5x faster forward+backward at 1024 px on a 2-core CPU (`make bench`, ``detector_blur``).
    """
    return separable_blur(x, gaussian_kernel(sigma_px, radius, x))


def separable_blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """x (B, 1, H, W) filtered along both axes by per-image taps (B, 2r+1), reflect-padded."""
    radius = (taps.shape[1] - 1) // 2
    k = taps[:, :, None, None, None]  # (B, 2r+1, 1, 1, 1)
    h, w = x.shape[-2:]
    xp = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    rows = sum(k[:, i] * xp[..., :, i : i + w] for i in range(2 * radius + 1))  # (B, 1, H+2r, W)
    return sum(k[:, i] * rows[..., i : i + h, :] for i in range(2 * radius + 1))


def optics(signal: torch.Tensor, p: Params, supersample: int = 1) -> torch.Tensor:
    """Probe blur (in output pixels) then gain/offset; average-pools a supersampled signal."""
    x = gaussian_blur(signal, p["blur_px"] * supersample, radius=5 * supersample)
    if supersample > 1:
        x = F.avg_pool2d(x, supersample)
    return per_image(p["gain"]) * x + per_image(p["offset"])


NOISE_RADIUS = 3  # 3 σ of the widest noise correlation allowed by default (1 px)


def correlated(noise: torch.Tensor, sigma_px: torch.Tensor) -> torch.Tensor:
    """Smooth a noise field (B, 1, H, W) by a per-image Gaussian of sigma (B,) px and rescale it to
    its per-pixel standard deviation. With the separable kernel k (sum 1) the smoothed white
    noise's variance is (Σ k²)², so dividing by Σ k² restores it; σ → 0 is the identity."""
    k = gaussian_kernel(sigma_px, NOISE_RADIUS, noise)
    return separable_blur(noise, k) / per_image(k.pow(2).sum(1))


def add_noise(
    x: torch.Tensor,
    p: Params,
    generator: torch.Generator | None = None,
    geometry_free: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reparameterised shot + read noise, correlated over ``noise_corr_px``, then the
    digitiser's clamp to [0, 1]. x (B, 1, H, W): the output of :func:`optics` (``p["offset"]``
    says how much of it is the amplifier's offset rather than signal).

    A hard clamp passes no gradient on clipped pixels, so once a grain saturates nothing tells the
    shading parameters to darken it again (4.5–15.6 % of grain pixels stayed clipped, with rims too
    bright). ``geometry_free`` is the same image computed with the geometry detached (for a fixed
    G-buffer that is ``x`` itself): on clipped pixels its gradient passes straight through, so the
    appearance parameters learn as if unclipped while the geometry keeps the hard clamp's
    gradient. A straight-through clamp on everything biased the size law (the topography proof
    learned σ 23 % too wide). ``None`` is the hard clamp alone."""
    dev = generator.device if generator is not None else x.device
    e1 = torch.randn(x.shape, generator=generator, device=dev).to(x)
    e2 = torch.randn(x.shape, generator=generator, device=dev).to(x)
    noisy = _noisy(x, p, e1, e2)
    out = noisy.clamp(0.0, 1.0)
    if geometry_free is None:
        return out
    through = noisy if geometry_free is x else _noisy(geometry_free, p, e1, e2)
    clipped = (noisy.detach() != out.detach()).to(x)
    return out + clipped * (through - through.detach())


def _noisy(x: torch.Tensor, p: Params, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
    """x plus its noise for the unit draws e1 (shot) and e2 (read), before the clamp. The shot
    noise follows the detected signal, before the amplifier's offset: the brightness knob shifts
    the image, not the electron count. (Drawn after it, the negative offsets the GAN learns on
    TiO2, about -0.03, took up to a third of the film's shot noise; README, "Shot noise before
    the detector offset".)"""
    counts = x - per_image(p["offset"])
    shot = per_image(p["shot_noise"]) * counts.clamp_min(0).add(1e-6).sqrt() * e1
    noise = shot + per_image(p["read_noise"]) * e2
    return x + correlated(noise, p["noise_corr_px"])
