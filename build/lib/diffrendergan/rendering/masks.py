"""Ground-truth maps from exact instance maps: the paper's 3-class target.

Classes: 0 background, 1 particle, 2 boundary. "Boundary" is the 1-px line that separates
touching or overlapping particles, so that the 4-connected components of the particle class are
exactly the particle instances. Rendered masks and real annotated masks are converted by the same
rule, so a segmenter trained on one is scored consistently on the other:

* rendered (instances touch, depth known): a pixel of particle ``a`` whose 4-neighbour belongs to
  a particle ``b`` lying in front of it (higher surface) becomes boundary: the outer 1-px rim of the
  front particle, drawn on the occluded one;
* annotated (instances separated by background lines, as in hand-made masks): a background pixel
  whose 3x3 neighbourhood touches two or more different instances becomes boundary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BACKGROUND, PARTICLE, BOUNDARY = 0, 1, 2

_OFFSETS_4 = ((0, 1), (0, -1), (1, 0), (-1, 0))


def _shift(x: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    """x shifted so that out[..., i, j] = x[..., i + dy, j + dx] (``fill`` outside). x: (B, H, W)."""
    pad = (max(-dx, 0), max(dx, 0), max(-dy, 0), max(dy, 0))  # left, right, top, bottom
    padded = F.pad(x[:, None].to(torch.float64), pad, value=fill)[:, 0]
    h, w = x.shape[-2:]
    y0, x0 = max(dy, 0), max(dx, 0)
    return padded[:, y0 : y0 + h, x0 : x0 + w]


def occlusion_boundary(instance: torch.Tensor, height: torch.Tensor) -> torch.Tensor:
    """Pixels of a particle that touch a different particle lying in front of them.

    Args:
        instance: (B, H, W) integer instance ids, 0 = background.
        height: (B, H, W) surface height (any unit, larger = closer to the detector).
    Returns:
        (B, H, W) bool.
    """
    inst = instance.to(torch.float64)
    h = height.to(torch.float64)
    out = torch.zeros(instance.shape, dtype=torch.bool, device=instance.device)
    for dy, dx in _OFFSETS_4:
        n_inst = _shift(inst, dy, dx, 0.0)
        n_h = _shift(h, dy, dx, float("-inf"))
        other = (n_inst > 0) & (n_inst != inst) & (inst > 0)
        in_front = (n_h > h) | ((n_h == h) & (n_inst > inst))
        out |= other & in_front
    return out


def separating_lines(instance: torch.Tensor) -> torch.Tensor:
    """Background pixels 4-adjacent to a particle whose 3x3 neighbourhood holds >= 2 instances.

    Args:
        instance: (B, H, W) integer instance ids, 0 = background.
    Returns:
        (B, H, W) bool.
    """
    inst = instance.to(torch.float64)
    big = float(instance.max().item()) + 1.0 if instance.numel() else 1.0
    lo = torch.full_like(inst, big)
    hi = torch.zeros_like(inst)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            n = _shift(inst, dy, dx, 0.0)
            lo = torch.minimum(lo, torch.where(n > 0, n, torch.full_like(n, big)))
            hi = torch.maximum(hi, n)
    touches = torch.zeros(instance.shape, dtype=torch.bool, device=instance.device)
    for dy, dx in _OFFSETS_4:
        touches |= _shift(inst, dy, dx, 0.0) > 0
    return (inst == 0) & touches & (lo < hi)


def remove_small_instances(instance: torch.Tensor, min_px: int) -> torch.Tensor:
    """Set instances with fewer than ``min_px`` pixels to background. instance: (B, H, W)."""
    if min_px <= 0:
        return instance
    out = instance.clone()
    for b in range(instance.shape[0]):
        ids, counts = torch.unique(instance[b], return_counts=True)
        small = ids[(counts < min_px) & (ids > 0)]
        if small.numel():
            out[b][torch.isin(instance[b], small)] = 0
    return out


def classes_from_rendered(
    instance: torch.Tensor, height: torch.Tensor, min_instance_px: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """3-class target and cleaned instance map from a rendered (exact, touching) instance map.

    Args:
        instance: (B, H, W) long, 0 = background, k > 0 = particle k.
        height: (B, H, W) surface height (larger = in front).
        min_instance_px: visible instances smaller than this become background in both outputs.
    Returns:
        classes (B, H, W) uint8 in {0, 1, 2} and the instance map (B, H, W) long with small ones removed.
    """
    instance = remove_small_instances(instance, min_instance_px)
    classes = (instance > 0).to(torch.uint8)
    classes[occlusion_boundary(instance, height)] = BOUNDARY
    return classes, instance


def classes_from_annotation(instance: torch.Tensor) -> torch.Tensor:
    """3-class target from an annotated instance map. instance: (B, H, W); returns (B, H, W) uint8.

    Binary hand-made masks separate touching particles by background lines, which become the
    boundary class. Label images may let two ids touch directly: there the 1-px rim of the lower
    id on the higher one becomes boundary, so that class 1 never joins two particles.
    """
    classes = (instance > 0).to(torch.uint8)
    classes[separating_lines(instance)] = BOUNDARY
    classes[occlusion_boundary(instance, torch.zeros_like(instance))] = BOUNDARY
    return classes


def background_fraction(classes: torch.Tensor) -> torch.Tensor:
    """Fraction of background pixels per image. classes: (B, H, W) -> (B,)."""
    return (classes == BACKGROUND).flatten(1).to(torch.float32).mean(1)
