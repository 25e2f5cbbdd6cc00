"""Adversarial losses on discriminator logits: LSGAN (paper), hinge, non-saturating.

Generator losses take an optional per-logit ``weight`` (same shape as the logits, or
broadcastable): a PatchGAN judges every overlapping patch separately, and weighting the patches
that hold particles makes the generator answer for the particles' appearance, not mostly for the
substrate that covers most of an image.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from diffrendergan.errors import ConfigError


def lsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake)))


def _weighted_mean(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return x.mean()
    w = weight.expand_as(x)
    return (x * w).sum() / w.sum().clamp_min(1e-12)


def lsgan_g(fake: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    return _weighted_mean((fake - 1.0) ** 2, weight)


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g(fake: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    return _weighted_mean(-fake, weight)


def ns_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def ns_g(fake: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    return _weighted_mean(F.softplus(-fake), weight)


GAN_LOSSES: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "lsgan": (lsgan_d, lsgan_g),
    "hinge": (hinge_d, hinge_g),
    "ns": (ns_d, ns_g),
}


def get_losses(name: str):
    """-> (d_loss(real_logits, fake_logits), g_loss(fake_logits, weight=None))."""
    try:
        return GAN_LOSSES[name]
    except KeyError:
        raise ConfigError(
            "model.loss.name", f"unknown GAN loss {name!r}; expected one of {sorted(GAN_LOSSES)}"
        ) from None
