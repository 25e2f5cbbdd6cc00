"""Quantile matching: the renders' grey levels and band-pass texture against the real training
patches', as a calibrated start of the parameter network and as a term of the generator's loss.

The start: before the GAN's first step the network's output bias is fitted so that its renders
match the real statistics. From the range midpoints (sigmoid(0) for every parameter) the first
critic verdicts are about the film, which covers ~85 % of a TiO2 patch and starts far from the
real one; every seed drove it below the real level (epochs 4-9) and recovered only as fast as
the decaying learning rates allowed, by a different amount per seed.

The statistics are quantiles of the pixel values and of each band of a Laplacian pyramid (the
bands the realism metric's SWD compares), so brightness, contrast, noise and the film's blobs all
count; each is scaled by the real spread of its values so that no band dominates. For the start
only the head's bias (one unit logit per parameter) moves: the network's weights, and so how the
parameters vary with the layout, stay at their initialisation.

The term: the critics' verdicts move shared parameters (gain, offset, the film's yield) for the
sake of the grains and drag the film away from the real one on the way (from the calibrated start
TiO2 seed 2 darkened it again and its realism metric doubled before it recovered); the gap, weighted
into the generator's loss, holds these statistics while the critics shape the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from diffrendergan.metrics.realism import laplacian_pyramid
from diffrendergan.models.generator import Generator
from diffrendergan.scene.layout import Layout

CALIBRATION_SEED_BASE = 2_000_000_011  # calibration layouts never collide with training or evaluation
BANDS = 3  # Laplacian band-pass levels: 1, 2 and 4 px scales (noise, edges, the film's blobs)
BAND_STATISTICS = BANDS + 1  # and the grey levels
QUANTILES = 128


@dataclass(frozen=True)
class CalibrationResult:
    """The quantile gap before and after the fit, and the mean unit parameters (K,) it predicts."""

    loss_before: float
    loss_after: float
    unit: torch.Tensor


def band_quantiles(images: torch.Tensor) -> torch.Tensor:
    """Quantiles of the pixel values and of ``BANDS`` Laplacian band-pass levels (finest first).

    images: (N, 1, H, W) -> (BAND_STATISTICS, QUANTILES); differentiable (through sorting).
    """
    levels = laplacian_pyramid(images, BANDS + 1)[:BANDS]
    rows = [images.flatten()] + [lvl.flatten() for lvl in levels]
    # Sorted values at the quantiles' ranks, not torch.quantile: that refuses more than 2**24
    # values (~256 patches of 256 px), and the real set is measured at once.
    probs = (torch.arange(QUANTILES, device=images.device) + 0.5) / QUANTILES
    out = []
    for values in rows:
        ranks = (probs * len(values)).long().clamp(max=len(values) - 1)
        out.append(values.sort().values[ranks])
    return torch.stack(out)


def quantile_spread(real: torch.Tensor) -> torch.Tensor:
    """(S,) spread of each statistic of real quantiles (S, Q): its gap's unit."""
    return (real[:, -1] - real[:, 0]).clamp_min(1e-6)


def quantile_gap(fake: torch.Tensor, real: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean absolute quantile difference per statistic (rows of (S, Q)), each divided by its real
    spread ``scale`` (S,), summed over statistics: a scalar."""
    return ((fake - real).abs().mean(1) / scale).sum()


def calibrate_start(
    generator: Generator,
    real_q: torch.Tensor,
    steps: int,
    lr: float,
    batch: int,
    seed: int = 0,
    draw: Callable[[list[int]], list[Layout]] | None = None,
) -> CalibrationResult:
    """Fit ``generator.net``'s head bias so that renders match real quantiles ``real_q`` (S, Q)
    (:func:`band_quantiles` of the real patches).

    Renders of a fixed pool of ``4 * batch`` layouts (``batch`` per step, with noise) are compared
    with them; Adam on the bias for ``steps`` steps. ``draw`` gives the layouts of seeds from the
    law training starts with (a learnable law's start, not the material's; default the
    generator's). The generator's EMA, if any, is the caller's to align (the GAN module does,
    after sharing rank 0's fit).
    """
    real_q = real_q.cpu()
    scale = quantile_spread(real_q)
    net = generator.net
    bias = net.head.bias
    was_training = net.training
    net.eval()  # no dropout: the bias sees the predictions the network makes
    others = [p for p in net.parameters() if p is not bias]
    frozen = [p.requires_grad for p in others]
    for p in others:
        p.requires_grad_(False)
    pool = (draw or generator.layouts)([CALIBRATION_SEED_BASE + seed * 10_007 + i for i in range(4 * batch)])
    noise = torch.Generator(device="cpu").manual_seed(seed)
    opt = torch.optim.Adam([bias], lr=lr, betas=(0.9, 0.999))

    def loss_at(step: int) -> torch.Tensor:
        chosen = [pool[(step * batch + i) % len(pool)] for i in range(batch)]
        unit = net(*generator.encode(chosen))
        gb = generator.renderer.gbuffer(chosen, device=unit.device)
        image = generator.renderer.shade(gb, unit, noise, refine=generator.neural_shader).image
        return quantile_gap(band_quantiles(image.cpu()), real_q, scale)

    try:
        with torch.no_grad():
            before = float(sum(loss_at(i) for i in range(4)) / 4)
        for step in range(steps):
            opt.zero_grad()
            loss_at(step).backward()
            opt.step()
        with torch.no_grad():
            after = float(sum(loss_at(i) for i in range(4)) / 4)
            unit = net(*generator.encode(pool)).mean(0).cpu()
    finally:
        for p, flag in zip(others, frozen):
            p.requires_grad_(flag)
        net.train(was_training)
    return CalibrationResult(before, after, unit)
