"""Adversarial losses on discriminator logits: LSGAN (paper), hinge, non-saturating.

Generator losses take an optional per-logit ``weight`` (same shape as the logits, or
broadcastable): a PatchGAN judges every overlapping patch separately, and weighting the patches
that hold particles makes the generator answer for the particles' appearance, not mostly for the
substrate that covers most of an image. Discriminator losses take one weight per side
(``weight_real``, ``weight_fake``); a weight that is the same function of the image on both sides
leaves the optimal discriminator unchanged and only moves its attention.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from diffrendergan.errors import ConfigError

Weight = torch.Tensor | None


def _weighted_mean(x: torch.Tensor, weight: Weight) -> torch.Tensor:
    if weight is None:
        return x.mean()
    w = weight.expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1e-12)


def lsgan_d(real: torch.Tensor, fake: torch.Tensor, weight_real: Weight = None, weight_fake: Weight = None):
    return 0.5 * (_weighted_mean((real - 1.0) ** 2, weight_real) + _weighted_mean(fake**2, weight_fake))


def lsgan_g(fake: torch.Tensor, weight: Weight = None) -> torch.Tensor:
    return _weighted_mean((fake - 1.0) ** 2, weight)


def hinge_d(real: torch.Tensor, fake: torch.Tensor, weight_real: Weight = None, weight_fake: Weight = None):
    return _weighted_mean(F.relu(1.0 - real), weight_real) + _weighted_mean(F.relu(1.0 + fake), weight_fake)


def hinge_g(fake: torch.Tensor, weight: Weight = None) -> torch.Tensor:
    return _weighted_mean(-fake, weight)


def ns_d(real: torch.Tensor, fake: torch.Tensor, weight_real: Weight = None, weight_fake: Weight = None):
    return _weighted_mean(F.softplus(-real), weight_real) + _weighted_mean(F.softplus(fake), weight_fake)


def ns_g(fake: torch.Tensor, weight: Weight = None) -> torch.Tensor:
    return _weighted_mean(F.softplus(-fake), weight)


# A "bright" pixel is above its image's 85th percentile: about the particle coverage of a TiO2
# patch (~10 %) plus their brightest surroundings, found the same way on real and rendered images.
BRIGHT_QUANTILE = 0.85


def bright_patch_weight(images: torch.Tensor, grid: tuple[int, int], strength: float) -> torch.Tensor:
    """(B, 1, H, W) images -> (B, 1, h, w) weights 1 + strength * (fraction of bright pixels in each
    logit's cell). The same function of the image for real and rendered patches, so, used as both
    discriminator weights, it steers the discriminator's capacity towards the particles (real
    images have no masks) without changing what it converges to. No gradient flows through it."""
    x = images.detach()
    level = torch.quantile(x.flatten(1).float(), BRIGHT_QUANTILE, dim=1).to(x.dtype)  # (B,)
    bright = (x > level[:, None, None, None]).to(x.dtype)
    return 1.0 + strength * F.adaptive_avg_pool2d(bright, grid)


GAN_LOSSES: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "lsgan": (lsgan_d, lsgan_g),
    "hinge": (hinge_d, hinge_g),
    "ns": (ns_d, ns_g),
}


def get_losses(name: str):
    """-> (d_loss(real_logits, fake_logits, weight_real=None, weight_fake=None),
    g_loss(fake_logits, weight=None))."""
    try:
        return GAN_LOSSES[name]
    except KeyError:
        raise ConfigError(
            "model.loss.name", f"unknown GAN loss {name!r}; expected one of {sorted(GAN_LOSSES)}"
        ) from None
