"""Size and count laws (sizes in nm), sampled with a seeded ``torch.Generator``.

Size draws are written as ``transform(eps)`` of standard normals so that the same code path can
later carry reparameterised gradients (topography learning).
"""

from __future__ import annotations

import math

import torch

from diffrendergan.config import CountLaw, SizeLaw


def sample_size_noise(law: SizeLaw, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The randomness behind n size draws: standard normals eps (n,) and, for bimodal laws, which
    mode each particle belongs to (n,) bool. Sizes are a deterministic function of these."""
    eps = torch.randn(n, generator=gen)
    if law.kind == "bimodal":
        second = torch.rand(n, generator=gen) < law.weight
    else:
        second = torch.zeros(n, dtype=torch.bool)
    return eps, second


def sizes_from_noise(
    kind: str,
    eps: torch.Tensor,
    second: torch.Tensor,
    loc: torch.Tensor | float,
    scale: torch.Tensor | float,
    loc2: torch.Tensor | float = 0.0,
    scale2: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Reparameterised sizes (nm). lognormal: loc = ln(median), scale = sigma; gaussian/bimodal:
    loc/scale = mean/std (nm) of the first mode, loc2/scale2 of the second. Differentiable in the
    law parameters when they are tensors."""
    if kind == "lognormal":
        return torch.exp(loc + scale * eps)
    if kind == "gaussian":
        return loc + scale * eps
    if kind == "bimodal":
        return torch.where(second, loc2 + scale2 * eps, loc + scale * eps)
    raise ValueError(f"unknown size law {kind!r}")


def law_location(law: SizeLaw) -> dict[str, float]:
    """The (loc, scale, loc2, scale2) of :func:`sizes_from_noise` for a configured law."""
    if law.kind == "lognormal":
        return {"loc": math.log(law.median_nm), "scale": law.sigma, "loc2": 0.0, "scale2": 0.0}
    return {"loc": law.mean_nm, "scale": law.std_nm, "loc2": law.mean2_nm, "scale2": law.std2_nm}


def sample_sizes_and_noise(
    law: SizeLaw, n: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Equivalent diameters (n,) in nm, clipped to [min_nm, max_nm], with the noise (eps, second)
    they were made from (layouts keep it for reparameterised topography gradients)."""
    eps, second = sample_size_noise(law, n, gen)
    d = sizes_from_noise(law.kind, eps, second, **law_location(law))
    return d.clamp(law.min_nm, law.max_nm), eps, second


def sample_sizes(law: SizeLaw, n: int, gen: torch.Generator) -> torch.Tensor:
    """Equivalent diameters (n,) in nm, clipped to [min_nm, max_nm]."""
    return sample_sizes_and_noise(law, n, gen)[0]


def size_law_moments(law: SizeLaw) -> dict[str, float]:
    """Mean and std (nm) of the law before clipping; used as ground truth for topography fits."""
    if law.kind == "lognormal":
        mean = law.median_nm * math.exp(0.5 * law.sigma**2)
        std = mean * math.sqrt(math.exp(law.sigma**2) - 1.0)
    elif law.kind == "gaussian":
        mean, std = law.mean_nm, law.std_nm
    else:
        w = law.weight
        mean = (1 - w) * law.mean_nm + w * law.mean2_nm
        second = (1 - w) * (law.std_nm**2 + law.mean_nm**2) + w * (law.std2_nm**2 + law.mean2_nm**2)
        std = math.sqrt(max(second - mean**2, 0.0))
    return {"mean_size_nm": mean, "std_size_nm": std}


def max_count(law: CountLaw) -> int:
    """The most particles one image can hold under the law (parameter-network and topography slots)."""
    return int(law.n if law.kind in ("fixed", "binomial") else law.high)


def expected_count(law: CountLaw) -> float:
    """Mean particles per image (Poisson: before clipping)."""
    if law.kind == "fixed":
        return float(law.n)
    if law.kind == "uniform":
        return 0.5 * (law.low + law.high)
    return float(law.mean)


def sample_count(law: CountLaw, gen: torch.Generator) -> int:
    """Number of particles in one image."""
    if law.kind == "fixed":
        return int(law.n)
    if law.kind == "uniform":
        return int(torch.randint(law.low, law.high + 1, (1,), generator=gen).item())
    if law.kind == "binomial":
        occupied = torch.rand(int(law.n), generator=gen) < float(law.mean) / max(int(law.n), 1)
        return int(occupied.sum().item())
    lam = torch.tensor([float(law.mean)])
    return int(torch.poisson(lam, generator=gen).clamp(law.low, law.high).item())
